#!/usr/bin/env bash
# Build the compose stack's images on a machine without a container registry (tests, CI):
#   1. local/bookworm:minbase   a debootstrapped Debian bookworm rootfs (about 30 s);
#   2. local/tradeops-airflow-base:<hash>   python3.11 + the lock + pg_dump + the airflow user (base.Dockerfile);
#   3. tradeops-postgres:15, tradeops-redis:7   the datastores from Debian's packages;
#   4. tradeops-airflow:3.3.2   the repository's Dockerfile on top of (2) instead of apache/airflow.
# Each image is built only when missing (the base is keyed by a hash of the lock and its build files), so a second
# run takes seconds. Prints the env lines docker-compose needs to use these images (see .env.example).
# Needs root (debootstrap) and a running dockerd. Usage: devstack/docker/build.sh [--env-file FILE]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
env_file=""
if [[ "${1:-}" == "--env-file" ]]; then env_file="$2"; fi
PG_MAJOR=15
CA_BUNDLE="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
# apt's configured Debian mirror (the first `URIs:` of debian.sources), or deb.debian.org.
MIRROR="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\/*\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1 || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

has_image() { docker image inspect "$1" >/dev/null 2>&1; }
step() { echo "[build.sh $(date -u +%T)] $*"; }

rootfs_image=local/bookworm:minbase
if ! has_image "$rootfs_image"; then
  step "debootstrap bookworm from $MIRROR"
  rootfs="$(mktemp -d /tmp/tradeops-rootfs.XXXXXX)"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/tmp/tradeops-debootstrap.log 2>&1 \
    || { tail -20 /tmp/tradeops-debootstrap.log; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$rootfs_image" >/dev/null
  rm -rf "$rootfs"
fi

key="$(cat "$repo/requirements.txt" "$here/base.Dockerfile" "$here/entrypoint.sh" | sha256sum | cut -c1-12)"
base_image="local/tradeops-airflow-base:$key"
if ! has_image "$base_image"; then
  step "base image $base_image (python3.11, the lock, pg_dump $PG_MAJOR)"
  context="$(mktemp -d /tmp/tradeops-base.XXXXXX)"
  cp "$repo/requirements.txt" "$here/entrypoint.sh" "$context/"
  cp "$CA_BUNDLE" "$context/ca-certificates.crt"
  docker build --network host --build-arg PG_MAJOR=$PG_MAJOR -f "$here/base.Dockerfile" -t "$base_image" "$context" >/tmp/tradeops-base-build.log 2>&1 \
    || { tail -30 /tmp/tradeops-base-build.log; exit 1; }
  rm -rf "$context"
fi

for kind in postgres redis; do
  tag="tradeops-$kind:$([[ $kind == postgres ]] && echo $PG_MAJOR || echo 7)"
  if ! has_image "$tag"; then
    step "$tag"
    docker build -q --network host --build-arg PG_MAJOR=$PG_MAJOR -f "$here/$kind.Dockerfile" -t "$tag" "$here"
  fi
done

step "tradeops-airflow:3.3.2 from $base_image"
docker build -q --network host --build-arg "AIRFLOW_BASE_IMAGE=$base_image" --build-arg PG_MAJOR=$PG_MAJOR \
  -t tradeops-airflow:3.3.2 "$repo" >/dev/null

lines="AIRFLOW_BASE_IMAGE=$base_image
POSTGRES_IMAGE=tradeops-postgres:$PG_MAJOR
REDIS_IMAGE=tradeops-redis:7"
if [[ -n "$env_file" ]]; then echo "$lines" >>"$env_file"; fi
echo "$lines"
