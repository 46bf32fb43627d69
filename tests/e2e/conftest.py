"""One real Airflow stack (scheduler, dag-processor, triggerer, api-server + sandbox) for all end-to-end tests."""

from __future__ import annotations

import time
import types
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests

from devstack.drill import ENGINE_DAG
from devstack.stack import DEMO_CONFIG, LocalStack

PROBE_DAGS = sorted((Path(__file__).parent / "dags").glob("*.py"))


@pytest.fixture(scope="session")
def stack(run_dir):
    """The stack `make demo` runs: the production config with a seconds-scale escalation policy."""
    with LocalStack(
        run_dir("stack"),
        auto_ports=True,
        extra_dag_files=PROBE_DAGS,
        log=lambda message: None,
        config_path=DEMO_CONFIG,
        extra_env={
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            # A killed triggerer's triggers move to a live one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
        },
    ) as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def scheduled_dags_paused_after_each_module(stack):
    """The stack runs for the whole session on the real clock: a scheduled DAG a module unpaused and left so would
    start its real run when its event comes, in the middle of a later module's tests (the session's open starts a
    watch that lasts until the close). Each module unpauses what it runs; the escalation engine is never touched (a
    test checks that nobody did)."""
    yield
    stack.client.pause_scheduled(keep={ENGINE_DAG})


def _watch_task(stack, dag_id, run_id, task_id, timeout):
    """Poll a task's state every 0.1 s; return the final task instance, the seconds spent in each state and when
    each state was first seen (time in ``running`` is time a worker slot was held)."""
    seconds: dict[str, float] = {}
    first_seen: dict[str, datetime] = {}
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    state = "none"
    while time.monotonic() < deadline:
        ti = stack.client.task_instance(dag_id, run_id, task_id)
        now = time.monotonic()
        state = ti["state"] or "none"
        seconds[state] = seconds.get(state, 0.0) + (now - last)
        first_seen.setdefault(state, datetime.now(UTC))
        last = now
        if state in ("success", "failed", "skipped", "upstream_failed"):
            return ti, seconds, first_seen
        time.sleep(0.1)
    raise TimeoutError(f"{task_id} still {state} after {timeout}s")


@pytest.fixture(scope="session")
def watch_task():
    return _watch_task


@pytest.fixture
def alertmanager(stack):
    """The stack's Alertmanager notifying the api-server's TradeOps app (the stack's default receiver), each
    notification twice. Afterwards no alert of the test fires (the daily health check's alerts check would fail on
    it) and no incident of it pages on through later tests."""
    base = stack.settings["alertmanager"]["url"]
    stack.sandbox.set_alert_receiver(stack.alert_webhook_url, repeat=2)
    posted: list[dict] = []
    yield types.SimpleNamespace(url=base, posted=posted)
    stack.sandbox.set_alert_receiver(stack.alert_webhook_url)
    ended = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    requests.post(base + "/api/v2/alerts", json=[{**a, "endsAt": ended} for a in posted], timeout=5)
    with psycopg.connect(stack.settings["postgres"]["state_dsn"]) as state:  # no P1 escalating through later tests
        state.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE source = 'alert' AND status <> 'resolved'"
        )
