"""The lease operators against the real state database (the config's ``state_db`` connection): the holder is the
run, a busy set waits by rescheduling (no held worker) and then fails naming the holder, the release at the end
gives back what the run holds."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from tradeops.changes.operators import AcquireDeploymentLockOperator, ReleaseDeploymentLockOperator


def context(run_id: str, first_try: datetime | None = None) -> dict:
    ti = types.SimpleNamespace(get_first_reschedule_date=lambda _context: first_try)
    return {"dag": types.SimpleNamespace(dag_id="emergency_rollback"), "run_id": run_id, "ti": ti}


def acquire(namespace: str, wait: float = 0) -> AcquireDeploymentLockOperator:
    return AcquireDeploymentLockOperator(
        task_id="lock", namespace=namespace, deployments=["api", "engine"], wait=wait, ttl=600
    )


def test_acquire_holds_for_the_run_and_release_gives_it_back(locks, namespace, airflow_connections):
    taken = acquire(namespace).execute(context("manual__1"))

    assert taken == {"holder": "emergency_rollback/manual__1", "namespace": namespace, "deployments": ["api", "engine"]}
    assert {lease.holder for lease in locks.held(namespace)} == {"emergency_rollback/manual__1"}
    acquire(namespace).execute(context("manual__1"))  # a retry of the same run renews

    released = ReleaseDeploymentLockOperator(task_id="release").execute(context("manual__1"))

    assert released == 2
    assert locks.held(namespace) == []


def test_a_busy_set_waits_by_rescheduling_then_fails_naming_the_holder(locks, namespace, airflow_connections):
    locks.acquire(namespace, ["engine"], "weekly_maintenance/scheduled__2026-11-29", timedelta(minutes=5))

    with pytest.raises(AirflowRescheduleException):
        acquire(namespace, wait=60).execute(context("manual__2"))
    with pytest.raises(AirflowFailException, match="held by weekly_maintenance/scheduled__2026-11-29"):
        acquire(namespace, wait=60).execute(context("manual__2", datetime.now(UTC) - timedelta(seconds=61)))
    with pytest.raises(AirflowFailException, match="held by weekly_maintenance/scheduled__2026-11-29"):
        acquire(namespace, wait=0).execute(context("manual__3"))

    assert {lease.deployment: lease.holder for lease in locks.held(namespace)} == {
        "engine": "weekly_maintenance/scheduled__2026-11-29"
    }


def test_release_runs_whatever_the_run_ended_with():
    assert ReleaseDeploymentLockOperator(task_id="release").trigger_rule == "all_done"
