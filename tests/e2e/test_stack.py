"""End to end: the real scheduler, dag-processor, triggerer and api-server against the sandbox, as `make demo`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.demo import DEMO_PLAN, run_plan
from devstack.stack import LocalStack
from tradeops.calendar.sessions import sessions_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(run_dir):
    with LocalStack(run_dir("stack"), auto_ports=True, log=lambda message: None) as running:
        yield running


def test_every_dag_runs_to_its_planned_state_under_the_real_scheduler(stack):
    outcomes = run_plan(stack)
    assert [(o.dag_id, o.state) for o in outcomes] == [(run.dag_id, run.expect) for run in DEMO_PLAN]
    health = next(o for o in outcomes if o.dag_id == "daily_health_check")
    assert health.tasks == {"success": 10}

    messages = stack.sandbox.slack_messages("#trading-ops")
    assert any(m["text"].startswith(":large_yellow_circle: Daily health check: all 9 checks passed") for m in messages)
    reports = list((stack.airflow.reports_dir / "daily_health_check").glob("*.json"))
    assert [r.stem for r in reports] == [health.run_id.replace(":", "_").replace("+", "_")]


def test_the_scheduler_plans_the_next_run_on_the_exchange_calendar(stack):
    dag = stack.client._call("GET", "/dags/daily_health_check")
    assert dag["timetable_summary"] == "90 min before XNYS open"
    next_run = datetime.fromisoformat(dag["next_dagrun_run_after"].replace("Z", "+00:00"))
    _, expected = sessions_for("XNYS").next_event("open", timedelta(minutes=-90), datetime.now(UTC), inclusive=True)
    assert next_run == expected
    assert expected.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "08:00"
