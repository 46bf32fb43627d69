#!/bin/bash
# Like the official image's /entrypoint: `bash ...` and `python ...` run as given, `airflow ...` and any other
# arguments run as an airflow command (`scheduler`, `celery worker`, ...); _AIRFLOW_DB_MIGRATE migrates first.
set -euo pipefail
if [[ "${_AIRFLOW_DB_MIGRATE:-}" == "true" ]]; then
  airflow db migrate
fi
case "${1:-}" in
  bash | python | /bin/bash | /bin/sh | sh) exec "$@" ;;
  airflow) shift ;;
esac
exec airflow "$@"
