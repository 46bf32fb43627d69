# The TradeOps Airflow image: the official Airflow 3.3.2 image plus exactly the locked dependencies and pg_dump of
# the PostgreSQL server's major version (the backups). Production builds FROM the official image (the default);
# machines without a registry build FROM a local stand-in (devstack/docker/build.sh: --build-arg AIRFLOW_BASE_IMAGE).
ARG AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_BASE_IMAGE}
ARG PG_MAJOR=15
USER root
RUN [ -x /usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump ] \
    || (apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql-client-${PG_MAJOR} \
        && rm -rf /var/lib/apt/lists/*)
ENV TRADEOPS_PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin
# Owned by airflow so that docker-compose's named volumes mounted here start out writable by it.
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/airflow/reports /opt/airflow/backups /opt/airflow/sandbox \
    && chown airflow:root /opt/airflow/logs /opt/airflow/auth /opt/airflow/reports /opt/airflow/backups \
       /opt/airflow/sandbox
USER airflow
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir --no-deps -r /opt/airflow/requirements.txt && pip check
