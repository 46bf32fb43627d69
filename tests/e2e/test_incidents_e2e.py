"""Incidents under the real scheduler, triggerer and api-server (demo policy, P2: L2 8 s after L1, then every 10 s):
a missed deadline pages L1 within 5 s, escalates on time, a signed Slack click acknowledges (a forged one changes
nothing), the Airflow form resolves, the audit trail has every step; and the same after killing the scheduler and
the triggerer mid-escalation."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.client import parse
from devstack.drill import Drill, posted_at
from tradeops.incidents.policy import CATCH_UP_AFTER, EscalationPolicy

pytestmark = pytest.mark.e2e
PAGES = ("paged", "escalated", "repeated")


@pytest.fixture(scope="module")
def policy(stack):
    return EscalationPolicy(stack.config.escalation)


@pytest.fixture(scope="module")
def drill(stack):
    drill = Drill(stack)
    drill.wait_for_engine()
    return drill


def escalation_steps(incident: dict, timeline: list[dict], policy) -> list[dict]:
    """Each page in the audit trail with when the policy wanted it."""
    anchor = parse(incident["escalation_anchor"])
    steps = []
    for event in timeline:
        if event["kind"] in PAGES:
            due = anchor + policy.offset(incident["severity"], event["level"], event["detail"]["loop"])
            steps.append(
                {
                    "level": event["level"],
                    "loop": event["detail"]["loop"],
                    "at": parse(event["at"]),
                    "due": due,
                    "catch_up": event["detail"]["catch_up"],
                }
            )
    return steps


def test_a_missed_deadline_escalates_until_acknowledged_in_slack_and_is_resolved_from_airflow(drill, stack, policy):
    run_id, due = drill.trigger()
    page = drill.wait_for_page(run_id, due, timeout=90)
    assert 0 <= page.latency_s < 5, f"L1 page {page.latency_s:.2f}s after the deadline"
    assert page.message["text"].endswith(f"#{page.incident_id} escalation_drill missed its 'drill' deadline")
    assert "L1 On-call engineer: #trading-alerts @oncall-primary" in str(page.message["blocks"])

    l2 = drill.wait_for_level(page.incident_id, 2, "#ops-management", timeout=30)
    incident, _ = drill.incident(page.incident_id)
    # Due 8 s after the incident's anchor (when it opened), not after L1's post, which may itself be late.
    after_anchor = (posted_at(l2) - parse(incident["escalation_anchor"])).total_seconds()
    assert 8 - 0.5 <= after_anchor < 8 + 2.5, f"L2 {after_anchor:.2f}s after the incident opened (policy: 8 s)"
    assert "@ops-manager" in l2["text"]
    thread = [m for m in drill.messages(page.incident_id, "#trading-alerts") if m["thread_ts"] == page.message["ts"]]
    assert any(m["text"].startswith(":arrow_double_up: Escalated to L2") for m in thread)

    forged = drill.acknowledge_in_slack(page, user="mallory", sign=False)
    assert forged["status"] == 401
    incident, timeline = drill.incident(page.incident_id)
    assert incident["status"] == "open" and "acknowledged" not in [e["kind"] for e in timeline]

    clicked = drill.acknowledge_in_slack(page, user="oncall-primary")
    assert clicked["status"] == 200, clicked["body"]
    incident, _ = drill.incident(page.incident_id)
    assert incident["status"] == "acknowledged" and incident["acknowledged_by"] == "@oncall-primary (Slack)"

    l3_due = parse(incident["escalation_anchor"]) + policy.offset("P2", 3, 0)
    time.sleep(max((l3_due - datetime.now(UTC)).total_seconds() + 3, 0))
    assert list(drill.messages(page.incident_id, "#exec-escalations")) == [], "no L3 once acknowledged"

    resolved = drill.resolve_in_airflow(page.incident_id, "drill over")
    assert resolved["state"] == "success"
    user = resolved["triggering_user_name"]  # the authenticated user, never a typed name
    incident, timeline = drill.incident(page.incident_id)
    assert incident["status"] == "resolved" and incident["resolved_by"] == user
    steps = [(e["kind"], e["actor"], e["level"]) for e in timeline if e["kind"] not in ("notified", "status_update")]
    assert steps == [
        ("opened", "tradeops", None),
        ("paged", "tradeops", 1),
        ("escalated", "tradeops", 2),
        ("acknowledged", "@oncall-primary (Slack)", 2),
        ("resolved", user, 2),
    ]
    notified = [e for e in timeline if e["kind"] == "notified"]
    assert all(e["slack_ts"] for e in notified), "every notification is recorded with its Slack message"
    assert {e["slack_channel"] for e in notified} == {"#trading-alerts", "#ops-management"}
    page_html = stack.client.incidents_page()
    assert f"<strong>#{page.incident_id} escalation_drill missed its &#39;drill&#39; deadline</strong>" in page_html
    assert "@oncall-primary (Slack)" in page_html and "Escalated to L2" in page_html


def test_escalation_survives_killing_the_scheduler_and_the_triggerer(drill, stack, policy):
    run_id, due = drill.trigger()
    page = drill.wait_for_page(run_id, due, timeout=90)

    killed_at = datetime.now(UTC)
    stack.airflow.restart(("scheduler", "triggerer"))  # SIGKILL, then start again
    healthy_at = datetime.now(UTC)

    drill.wait_for_level(page.incident_id, 2, "#ops-management", timeout=120)
    # Let the ladder go on a little under the restarted components, then acknowledge.
    time.sleep(12)
    assert drill.acknowledge_in_slack(page, user="oncall-primary")["status"] == 200
    assert drill.resolve_in_airflow(page.incident_id, "restart drill over")["state"] == "success"
    incident, timeline = drill.incident(page.incident_id)
    steps = escalation_steps(incident, timeline, policy)

    assert len({(s["level"], s["loop"]) for s in steps}) == len(steps), f"a step was paged twice: {steps}"
    # The ladder's order: L1..L4, then again from L1 when it repeats (a slow acknowledgement may see a repeat).
    assert [(s["loop"], s["level"]) for s in steps] == sorted((s["loop"], s["level"]) for s in steps)
    for step in steps:
        late = (step["at"] - step["due"]).total_seconds()
        assert late > -0.5, f"L{step['level']} paged {-late:.1f}s early"
        assert step["catch_up"] == (late > CATCH_UP_AFTER.total_seconds()), step
    resumed_at = next(s["at"] for s in steps if s["at"] > killed_at)
    on_time = [s for s in steps if s["due"] > resumed_at + timedelta(seconds=1)]
    assert on_time, f"no step fell due after the engine resumed at {resumed_at} (restart took until {healthy_at})"
    for step in on_time:
        assert (step["at"] - step["due"]).total_seconds() < 3, f"after the restart, timing resumes: {step}"

    acknowledged = next(parse(e["at"]) for e in timeline if e["kind"] == "acknowledged")
    assert all(s["at"] < acknowledged for s in steps), "nothing paged after the acknowledgement"
    assert [e["kind"] for e in timeline][-2:] == ["resolved", "notified"]
    messages_l2 = [
        m
        for m in drill.messages(page.incident_id, "#ops-management")
        if m["text"].startswith(":arrow_double_up: Escalated to L2")
    ]
    assert len(messages_l2) == len([s for s in steps if s["level"] == 2]), "one Slack message per step"


TASK_DEADLINE_DAG = '''
"""
### e2e_task_deadline (tests only)

`slow_step` is still busy at {at} XNYS local time: the task-level deadline opens an incident.
"""

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG

from tradeops.incidents.operators import TaskDeadlineWatchOperator

with DAG(
    dag_id="e2e_task_deadline",
    description="task-level deadline probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={{"owner": "tests", "retries": 0}},
    tags=["tests"],
    doc_md=__doc__,
):
    TimeDeltaSensor(task_id="slow_step", delta=timedelta(seconds=150), deferrable=True)
    TaskDeadlineWatchOperator(task_id="slow_step_by_deadline", tasks=["slow_step"], deadline_name="slow-step",
                              by={{"anchor": "clock", "at": "{at}", "when_closed": False}}, severity="P3")
'''


def test_a_task_level_deadline_opens_an_incident_without_holding_a_worker(stack, watch_task):
    ny = ZoneInfo("America/New_York")
    due = (datetime.now(UTC) + timedelta(seconds=100)).replace(second=0, microsecond=0)
    (stack.dags_folder / "e2e_task_deadline.py").write_text(
        TASK_DEADLINE_DAG.format(at=due.astimezone(ny).strftime("%H:%M"))
    )
    stack.client.wait_for_dags({"e2e_task_deadline"}, timeout=60)
    stack.client.set_paused("e2e_task_deadline", False)
    run_id = stack.client.trigger("e2e_task_deadline")

    ti, seconds, _ = watch_task(stack, "e2e_task_deadline", run_id, "slow_step_by_deadline", timeout=200)
    assert ti["state"] == "success"
    assert seconds.get("running", 0) < 3, f"the wait happened in the triggerer: {seconds}"
    ended = parse(ti["end_date"])
    assert timedelta(0) <= ended - due < timedelta(seconds=5), f"ended {ended - due} after the deadline"
    result = stack.client.xcom("e2e_task_deadline", run_id, "slow_step_by_deadline")
    assert result["met"] is False and result["late"] == ["slow_step"]
    incident, timeline = stack.client.incident(result["incident_id"])
    assert incident["title"] == "e2e_task_deadline: 'slow-step' not done in time"
    assert incident["severity"] == "P3" and incident["task_id"] == "slow_step"
    page = next(
        m
        for m in stack.sandbox.slack_messages("#trading-alerts")
        if f"#{incident['id']} " in m["text"] and not m["thread_ts"]
    )
    assert 0 <= (posted_at(page) - due).total_seconds() < 5
    assert "`slow_step` (deferred)" in incident["summary"]
