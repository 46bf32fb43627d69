"""Which worker ran a task: Airflow records ``[core] hostname_callable``'s answer on every task instance. Celery
workers on separate hosts differ by hostname already; several workers on one host (``make up-celery``, a big VM)
set ``TRADEOPS_WORKER_NAME`` and this callable tells them apart: ``AIRFLOW__CORE__HOSTNAME_CALLABLE=
tradeops.workers.worker_hostname``."""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "TRADEOPS_WORKER_NAME"


def worker_hostname() -> str:
    """``<worker name>.<host's FQDN>`` when ``TRADEOPS_WORKER_NAME`` is set (a worker), else the FQDN."""
    fqdn = socket.getfqdn()
    name = os.environ.get(WORKER_NAME_ENV)
    return f"{name}.{fqdn}" if name else fqdn
