"""A scheduled runbook that fails pages: its failed tasks open one incident per DAG, deduplicated across tasks and
runs; the verdict on failed checks opens nothing more; and the callback never changes the task's outcome. The
callback on its own, then a real scheduled DAG run in-process (``dag.test()``) against the sandbox's PostgreSQL."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import psycopg
import pytest
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.base import RESULT_KEY, CheckResult, Status
from tradeops.dagkit import scheduled_dag
from tradeops.incidents import store
from tradeops.incidents.callbacks import OpenRunbookIncidentOnFailure
from tradeops.incidents.service import IncidentService, runbook_key

CHECKS = ("system_status", "agents")


def failing_task_context(results: dict[str, CheckResult | None], error: BaseException | None) -> dict:
    """What Airflow hands a failure callback of the health check's ``summary``: its ti (with the checks' XComs)
    and the exception."""
    pushed = {task_id: result.to_dict() if result else None for task_id, result in results.items()}
    ti = SimpleNamespace(
        dag_id="daily_health_check",
        run_id="scheduled__test",
        task_id="summary",
        try_number=1,
        xcom_pull=lambda task_ids, key: pushed.get(task_ids) if key == RESULT_KEY else None,
    )
    return {"ti": ti, "exception": error}


def result(task_id: str, status: Status) -> CheckResult:
    return CheckResult(name=task_id, title=task_id, status=status, summary=status.value)


@pytest.fixture
def opened(monkeypatch) -> list:
    """The incidents the callback opens, recorded instead of written."""
    calls: list = []
    monkeypatch.setattr(IncidentService, "open", lambda self, new, **kwargs: calls.append(new))
    return calls


@pytest.mark.parametrize(
    ("case", "results", "error", "opens"),
    [
        ("the verdict on a failed check", {"system_status": Status.FAIL, "agents": Status.OK}, "verdict", False),
        ("the verdict on a check that never reported", {"system_status": None, "agents": Status.OK}, "verdict", False),
        ("the checks passed, yet it failed", {"system_status": Status.OK, "agents": Status.WARN}, "verdict", True),
        ("it crashed while a check failed", {"system_status": Status.FAIL, "agents": Status.OK}, "crash", True),
    ],
)
def test_the_summarys_verdict_on_failed_checks_opens_nothing_more(opened, case, results, error, opens):
    callback = OpenRunbookIncidentOnFailure("P2", verdict_on=CHECKS)
    exception = AirflowFailException("1 of 2 health checks failed") if error == "verdict" else OSError("disk full")
    checks = {task_id: result(task_id, status) if status else None for task_id, status in results.items()}
    callback(failing_task_context(checks, exception))
    assert bool(opened) is opens, case
    if opens:
        [new] = opened
        assert (new.dedup_key, new.severity, new.task_id) == ("runbook:daily_health_check", "P2", "summary")
        assert new.details["error"] == f"{type(exception).__name__}: {exception}"


def test_a_callback_that_cannot_open_the_incident_logs_it_and_raises_nothing(monkeypatch, caplog):
    def unreachable(self, new, **kwargs):
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(IncidentService, "open", unreachable)
    with caplog.at_level(logging.ERROR):
        OpenRunbookIncidentOnFailure("P2")(failing_task_context({}, RuntimeError("boom")))
    [record] = [r for r in caplog.records if "could not be opened" in r.getMessage()]
    assert "daily_health_check" in record.getMessage() and record.exc_info[0] is psycopg.OperationalError


# --- against the sandbox's PostgreSQL, with real DAG runs ----------------------------------------------------------


def fail(message: str):
    def run():
        raise RuntimeError(message)

    return run


def incidents_of_dag(state_dsn: str, dag_id: str, since_id: int = 0) -> list[dict]:
    with store.connect(state_dsn) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dag_id = %s AND id > %s ORDER BY id", (dag_id, since_id)
        ).fetchall()


def resolve_all(state_dsn: str) -> int:
    """Resolve what earlier tests left open (the runbook key is the DAG's, shared with them); the last id so far."""
    with store.connect(state_dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now() WHERE status <> 'resolved'"
        )
        return conn.execute("SELECT coalesce(max(id), 0) AS id FROM tradeops.incidents").fetchone()["id"]


def test_a_failing_scheduled_runbook_opens_one_incident_and_later_failures_add_to_it(
    incidents, state_dsn, airflow_db, config
):
    # dag.test() runs only a DAG id of the DAG folder: these tasks stand in for the real DAG's.
    dag_id = "daily_db_maintenance"
    policy = config.incidents.model_copy(update={"critical_tasks": {dag_id: {"critical_step": "P1"}}})
    before = resolve_all(state_dsn)
    with scheduled_dag(
        dag_id,
        owner="tests",
        description="d",
        doc_md="x",
        schedule="@daily",
        retries=0,
        verdict=True,
        config=config.model_copy(update={"incidents": policy}),
    ) as dag:
        step = PythonOperator(task_id="step", python_callable=fail("disk full"))
        cleanup = PythonOperator(task_id="cleanup", python_callable=fail("still full"), trigger_rule="all_done")
        PythonOperator(task_id="critical_step", python_callable=fail("no quorum"))
        step >> cleanup

    first = dag.test()
    second = dag.test()

    assert first.state == second.state == "failed"
    rows = incidents_of_dag(state_dsn, dag_id, since_id=before)
    [runbook] = [row for row in rows if row["dedup_key"] == runbook_key(dag_id)]
    assert (runbook["severity"], runbook["status"], runbook["source"]) == ("P3", "open", "task_failure")
    assert (runbook["task_id"], runbook["run_id"], runbook["title"]) == ("step", first.run_id, f"{dag_id} failed")
    assert runbook["details"]["error"] == "RuntimeError: disk full"
    assert runbook["summary"] == f"`step` failed in run `{first.run_id}`: RuntimeError: disk full"
    assert runbook["occurrences"] == 4, "step and cleanup, in two runs"
    last = runbook["details"]["last_occurrence"]
    assert (last["task_id"], last["run_id"], last["error"]) == ("cleanup", second.run_id, "RuntimeError: still full")
    events = [event.kind for event in incidents.timeline(runbook["id"])]
    assert events.count("paged") == 1 and events.count("deduplicated") == 3
    # The critical task keeps its own incident per run, at its own severity; the verdict opened nothing.
    others = sorted((row["dedup_key"], row["severity"], row["task_id"]) for row in rows if row["id"] != runbook["id"])
    assert others == sorted((f"failure:{dag_id}:{run.run_id}", "P1", "critical_step") for run in (first, second))


def test_a_resolved_runbook_incident_opens_again_at_the_next_failure(incidents, state_dsn, airflow_connections):
    dag_id = f"runbook_probe_{uuid.uuid4().hex[:8]}"
    callback = OpenRunbookIncidentOnFailure("P3")
    ti = SimpleNamespace(dag_id=dag_id, run_id="scheduled__1", task_id="step", try_number=1)
    first = callback.open(ti, RuntimeError("one"))
    incidents.resolve(first.incident.id, "tests")
    again = callback.open(ti, RuntimeError("two"))
    assert again.created and again.incident.id != first.incident.id
    assert [row["status"] for row in incidents_of_dag(state_dsn, dag_id)] == ["resolved", "open"]


def test_checks_that_cannot_be_read_count_as_no_verdict_so_the_failure_pages(opened):
    def unreadable(task_ids, key):
        raise ConnectionError("the supervisor is gone")

    context = failing_task_context({}, AirflowFailException("3 of 10 health checks failed"))
    context["ti"].xcom_pull = unreadable
    OpenRunbookIncidentOnFailure("P2", verdict_on=CHECKS)(context)
    [new] = opened
    assert new.details["error"] == "AirflowFailException: 3 of 10 health checks failed"


def test_a_failure_the_task_paged_for_itself_opens_nothing_more(opened):
    from tradeops.positions.operators import PositionsLeftOpen

    callback = OpenRunbookIncidentOnFailure("P2")
    context = failing_task_context({}, PositionsLeftOpen("1 position(s) still open after 5 read-backs: ES 2"))
    context["ti"].task_id = "close_positions"
    callback(context)
    assert opened == []
    callback({**context, "exception": AirflowFailException("the platform refused the order")})
    assert [new.dedup_key for new in opened] == ["runbook:daily_health_check"]
