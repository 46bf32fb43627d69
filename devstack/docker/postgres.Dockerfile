# PostgreSQL from Debian bookworm's packages, configured like the official postgres image (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, PGDATA; pg_isready for the healthcheck).
ARG ROOTFS_IMAGE=local/bookworm:minbase
FROM ${ROOTFS_IMAGE}
ARG PG_MAJOR=15
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PG_MAJOR=${PG_MAJOR} PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends postgresql-${PG_MAJOR} \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/run/postgresql "$PGDATA" && chown -R postgres:postgres /var/run/postgresql "$PGDATA"
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint"]
