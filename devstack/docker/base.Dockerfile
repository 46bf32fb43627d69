# The local stand-in for apache/airflow:3.3.2-python3.11, for machines without a registry (tests, CI):
# Debian bookworm's python3.11 with exactly the lock installed, pg_dump of the server's major version, the
# official image's `airflow` user (uid 50000, gid 0), AIRFLOW_HOME=/opt/airflow and an /entrypoint like its own.
# Built by devstack/docker/build.sh from a debootstrapped rootfs; the context holds requirements.txt, the host's CA
# bundle (pip needs it) and entrypoint.sh. Debian's python is 3.11.2, for which redis-py also needs async-timeout
# (its marker: python < 3.11.3; the lock was made on a newer 3.11).
ARG ROOTFS_IMAGE=local/bookworm:minbase
FROM ${ROOTFS_IMAGE}
ARG PG_MAJOR=15
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 AIRFLOW_HOME=/opt/airflow PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3.11 python3.11-venv ca-certificates curl procps \
       postgresql-client-${PG_MAJOR} \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home airflow \
    && mkdir -p /opt/airflow /opt/venv && chown -R airflow:0 /opt/airflow /opt/venv
COPY ca-certificates.crt /etc/ssl/certs/build-ca.crt
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
USER airflow
RUN python3.11 -m venv /opt/venv \
    && PIP_CERT=/etc/ssl/certs/build-ca.crt pip install -q --no-cache-dir --no-deps -r /opt/airflow/requirements.txt \
       async-timeout==5.0.1 \
    && pip check
COPY entrypoint.sh /entrypoint
WORKDIR /opt/airflow
ENTRYPOINT ["/entrypoint"]
CMD ["--help"]
