"""End to end: the real scheduler, dag-processor, triggerer and api-server against the sandbox, as `make demo`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.client import parse
from devstack.demo import DEMO_PLAN, run_plan
from devstack.drill import DRILL_DAG, ENGINE_DAG, Drill
from tradeops.calendar.deadlines import ExchangeSessionDeadline
from tradeops.calendar.events import events_for
from tradeops.calendar.sessions import sessions_for

NEW_YORK = ZoneInfo("America/New_York")

pytestmark = pytest.mark.e2e


def test_every_dag_runs_to_its_planned_state_under_the_real_scheduler(stack):
    outcomes = run_plan(stack)
    assert [(o.dag_id, o.state) for o in outcomes] == [(run.dag_id, run.expect) for run in DEMO_PLAN]
    health = next(o for o in outcomes if o.dag_id == "daily_health_check")
    assert health.tasks == {"success": 13}
    engine = stack.client.xcom("daily_health_check", health.run_id, "escalation_engine")
    assert engine["status"] == "ok" and engine["summary"].startswith("running: last heartbeat"), engine
    # The task-level deadline watched the checks from the triggerer and saw them green in time.
    watchdog = stack.client.xcom("daily_health_check", health.run_id, "checks_green_by_deadline")
    assert watchdog["met"] is True and set(watchdog["states"].values()) == {"success"}

    messages = stack.sandbox.slack_messages("#trading-ops")
    assert any(m["text"].startswith(":large_yellow_circle: Daily health check: all 10 checks passed") for m in messages)
    # The weekly window (forced) failed only where the sandbox plants expiring certificates; the rest succeeded.
    weekly = next(o for o in outcomes if o.dag_id == "weekly_maintenance")
    assert weekly.tasks == {"success": 25, "failed": 2, "skipped": 1}  # no automatic rollback
    states = stack.client.task_states("weekly_maintenance", weekly.run_id)
    assert {t for t, state in states.items() if state == "failed"} == {"certificate_check", "verdict"}
    restored = stack.client.xcom("db_restore", next(o.run_id for o in outcomes if o.dag_id == "db_restore"), "restore")
    backup = stack.client.xcom("weekly_maintenance", weekly.run_id, "backup")
    assert restored["backup"] == backup["id"] and restored["rows"] > 0
    security = next(o for o in outcomes if o.dag_id == "daily_security_check")
    # six checks with a planted problem and the report failed; the vulnerability scan and track_findings succeeded
    assert security.tasks == {"failed": 7, "success": 2}
    found = stack.client.xcom("daily_security_check", security.run_id, "track_findings")
    assert {"tls:grandmodel/legacy-admin-tls", "login:spray:185.220.101.47"} <= set(found["new"] + found["still open"])
    access = next(o for o in outcomes if o.dag_id == "monthly_access_review")
    assert access.tasks == {"success": 1, "skipped": 2}  # a dry run: reviewed, nothing asked, nothing removed
    review = stack.client.xcom("monthly_access_review", access.run_id, "review")
    assert {r["id"] for r in review["removals"]} == {
        "RoleBinding/grandmodel/user39-edit",
        "RoleBinding/grandmodel/legacy-reporter",
    }
    reports = {r.stem for r in (stack.airflow.reports_dir / "daily_health_check").glob("*.json")}
    assert health.run_id.replace(":", "_").replace("+", "_") in reports  # one per run (other tests run it too)


def test_the_escalation_engine_runs_from_the_first_start_without_anyone_unpausing_it(stack):
    drill = Drill(stack)
    window = drill.wait_for_engine()  # refuses a paused engine; nothing here or in the other tests unpauses it
    assert stack.client.dag(ENGINE_DAG)["is_paused"] is False
    assert stack.client.event_logs(ENGINE_DAG, "patch_dag") == [], "nobody paused or unpaused it"
    stack.client.set_paused(DRILL_DAG, False)  # a manual DAG: unpausing it starts nothing
    assert stack.client.event_logs(DRILL_DAG, "patch_dag"), "Airflow's audit log records an unpause"
    runs = stack.client.dag_runs(ENGINE_DAG)
    assert runs[-1]["run_type"] == "scheduled", "its first window was started by the scheduler (run_immediately)"
    heartbeat = drill.engine_heartbeat()
    assert heartbeat is not None and heartbeat.run_id in {run["dag_run_id"] for run in runs}
    assert window in {run["dag_run_id"] for run in runs}


def test_the_scheduler_plans_the_next_run_on_the_exchange_calendar(stack):
    dag = stack.client.dag("daily_health_check")
    assert dag["timetable_summary"] == "90 min before XNYS open"
    next_run = parse(dag["next_dagrun_run_after"])
    _, expected = sessions_for("XNYS").next_event("open", timedelta(minutes=-90), datetime.now(UTC), inclusive=True)
    assert next_run == expected
    assert expected.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") == "08:00"


@pytest.mark.parametrize(
    "dag_id, weekdays", [("daily_db_maintenance", {0, 1, 2, 3, 4, 5}), ("weekly_maintenance", {6})]
)
def test_the_maintenance_runs_are_planned_at_2am_new_york_time(stack, config, dag_id, weekdays):
    next_run = parse(stack.client.dag(dag_id)["next_dagrun_run_after"])
    events = events_for(config.schedules[dag_id], "XNYS")
    now = datetime.now(UTC)
    assert next_run in (events.next(now, inclusive=False), events.next(now - timedelta(minutes=10), inclusive=False))
    local = next_run.astimezone(NEW_YORK)
    assert local.strftime("%H:%M") == "02:00" and local.weekday() in weekdays


def test_the_database_maintenance_run_gets_its_clock_and_session_anchored_deadlines(stack, config):
    stack.client.set_paused("daily_db_maintenance", False)
    run_id = stack.client.trigger("daily_db_maintenance")
    run_after = parse(stack.client.dag_run("daily_db_maintenance", run_id)["run_after"])
    expected = sorted(
        ExchangeSessionDeadline(tier.by, "XNYS").due_for(run_after) for tier in config.deadlines["daily_db_maintenance"]
    )
    created = stack.client.deadlines("daily_db_maintenance", run_id)
    assert sorted(parse(d["deadline_time"]) for d in created) == expected
    assert expected[0].astimezone(NEW_YORK).strftime("%H:%M") in ("03:00", "07:30")
    assert stack.client.wait_for_run("daily_db_maintenance", run_id, timeout=300)["state"] == "success"
    assert stack.client.deadlines("daily_db_maintenance", run_id) == []


def test_each_run_gets_its_market_anchored_deadlines_and_success_prunes_them(stack, config):
    def deadlines(run_id):
        return stack.client.deadlines("daily_health_check", run_id)

    stack.client.set_paused("daily_health_check", False)
    run_id = stack.client.trigger("daily_health_check")
    created = deadlines(run_id)
    run = stack.client.dag_run("daily_health_check", run_id)
    run_after = parse(run["run_after"])
    expected = sorted(
        ExchangeSessionDeadline(tier.by, "XNYS").due_for(run_after) for tier in config.deadlines["daily_health_check"]
    )
    assert sorted(parse(d["deadline_time"]) for d in created) == expected
    for moment in expected:
        assert moment.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M") in ("09:00", "09:20")

    assert stack.client.wait_for_run("daily_health_check", run_id, timeout=300)["state"] == "success"
    assert deadlines(run_id) == [], "a run that succeeds in time prunes its deadlines"
