"""The CeleryExecutor's packages work together: the executor imports and a real ``airflow celery worker`` starts on
the sandbox's Redis (broker) and PostgreSQL (result backend) and answers a ping. Celery 5.7.0 broke this with the
locked Celery provider (it removed ``celery.backends.database.retry``), and nothing else would have noticed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _redis_db(url: str, db: int) -> str:
    """The sandbox's Redis URL on database ``db``: the broker's queues stay out of what the platform keeps."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture
def celery_env(sandbox_settings, airflow_db, tmp_path):
    state = urlsplit(sandbox_settings["postgres"]["state_dsn"])
    return {
        **os.environ,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": _redis_db(sandbox_settings["redis"]["url"], 14),
        "AIRFLOW__CELERY__RESULT_BACKEND": urlunsplit(state._replace(scheme="db+postgresql+psycopg")),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
    }


def test_the_celery_executor_imports_with_the_locked_packages():
    from airflow.providers.celery.executors.celery_executor import CeleryExecutor

    assert CeleryExecutor.__name__ == "CeleryExecutor"


def test_a_celery_worker_starts_and_answers_a_ping(celery_env, tmp_path):
    hostname = f"tradeops-test-{os.getpid()}@{socket.gethostname()}"
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [AIRFLOW, "celery", "worker", "--concurrency", "1", "--celery-hostname", hostname, "--queues", "default"],
            env=celery_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ping = (
        "from airflow.providers.celery.executors.celery_executor import app;"
        "print(sorted(k for r in app.control.ping(timeout=3) for k in r))"
    )
    try:
        answered = ""
        deadline = time.monotonic() + 90
        while hostname not in answered and time.monotonic() < deadline:
            assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{log.read_text()[-3000:]}"
            result = subprocess.run([sys.executable, "-c", ping], env=celery_env, capture_output=True, text=True)
            answered = result.stdout
        assert hostname in answered, f"no pong from {hostname}: {answered!r}\n{log.read_text()[-3000:]}"
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
