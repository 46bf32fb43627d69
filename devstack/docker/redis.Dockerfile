# Redis from Debian bookworm's packages (the Celery broker); `redis-cli ping` for the healthcheck.
ARG ROOTFS_IMAGE=local/bookworm:minbase
FROM ${ROOTFS_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
