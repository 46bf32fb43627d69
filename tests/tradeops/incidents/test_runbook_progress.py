"""Runbook progress in the status updates: while a response runbook runs on an incident (its latest run wrote steps
and not yet its final ``outcome``), the 15-minute update says which steps are done and when the last one was. The
rendering with a frozen clock, then once through the escalation engine against PostgreSQL and the sandbox's Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeops.incidents.messages import runbook_progress
from tradeops.incidents.models import EventKind, IncidentEvent, NewIncident

NOW = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
RUN = "incident_7__alert"


def step(name: str, minutes_ago: int, run_id: str = RUN, actor: str = "Alertmanager", **detail) -> IncidentEvent:
    detail = {"step": name, "dag_id": "incident_response", "run_id": run_id, **detail}
    at = NOW - timedelta(minutes=minutes_ago)
    return IncidentEvent(0, 7, at, EventKind.RUNBOOK_STEP, actor, None, detail, None, None)


def other(kind: EventKind, minutes_ago: int) -> IncidentEvent:
    return IncidentEvent(0, 7, NOW - timedelta(minutes=minutes_ago), kind, "tradeops", 1, {}, None, None)


def test_no_runbook_step_no_progress():
    assert runbook_progress([], NOW) is None
    assert runbook_progress([other(EventKind.OPENED, 20), other(EventKind.PAGED, 20)], NOW) is None


def test_a_run_waiting_for_its_approval_lists_what_it_did_and_where_it_waits():
    events = [
        other(EventKind.OPENED, 20),
        step("started", 19, type="critical", dry_run=False),
        step("diagnostics", 18),
        other(EventKind.STATUS_UPDATE, 5),
        step("notified", 17),
        step("plan", 17),
    ]
    assert runbook_progress(events, NOW) == (
        ":clipboard: Runbook incident_response (critical) run `incident_7__alert` by Alertmanager: done started, "
        "diagnostics, notified, plan; last at 14:13 UTC (17m ago)"
    )


def test_an_approved_run_lists_its_actions_once_each_whatever_the_runbook():
    events = [step("started", 10, type="critical"), step("plan", 9), step("approval", 9), step("stop_trading", 2)]
    assert (runbook_progress(events, NOW) or "").endswith(
        "done started, plan, approval, stop trading; last at 14:28 UTC (2m ago)"
    )
    security = [step("started", 3, type="security"), step("evidence", 2), step("evidence", 1)]
    assert (runbook_progress(security, NOW) or "").endswith("done started, evidence; last at 14:29 UTC (1m ago)")


def test_a_run_quiet_for_longer_than_its_timeout_is_over_without_its_outcome():
    assert runbook_progress([step("started", 61, type="critical"), step("plan", 60)], NOW) is not None
    assert runbook_progress([step("started", 62, type="critical"), step("plan", 61)], NOW) is None


def test_a_finished_run_shows_nothing_and_only_the_latest_run_counts():
    first = [step("started", 40, run_id="manual__1", actor="alice", type="critical"), step("outcome", 38, "manual__1")]
    assert runbook_progress(first, NOW) is None, "its report is recorded: over"
    second = [*first, step("started", 3, type="system_failure")]
    assert runbook_progress(second, NOW) == (
        ":clipboard: Runbook incident_response (system_failure) run `incident_7__alert` by Alertmanager: done "
        "started; last at 14:27 UTC (3m ago)"
    )


def test_the_engines_status_update_carries_the_progress_while_the_runbook_runs(incidents, key, messages_of):
    incident = incidents.open(
        NewIncident(dedup_key=key, source="manual", severity="P2", title=f"test incident {key}")
    ).incident
    incidents.acknowledge(incident.id, "@alice")
    run = {"dag_id": "incident_response", "run_id": f"incident_{incident.id}__alert"}
    incidents.record_step(incident.id, "Alertmanager", "started", {"type": "critical", "dry_run": False, **run})
    incidents.record_step(incident.id, "Alertmanager", "diagnostics", run)

    def updates() -> list[str]:
        incidents.outbox.deliver()
        return [m["text"] for m in messages_of(incident.id) if m["text"].startswith(":hourglass_flowing_sand:")]

    incidents.engine.process_due(incident.opened_at + timedelta(seconds=21))  # demo: every 20 s
    [during] = updates()
    assert during.splitlines()[1].startswith(
        f":clipboard: Runbook incident_response (critical) run `incident_{incident.id}__alert` by Alertmanager: done "
        "started, diagnostics; last at "
    )
    incidents.record_step(incident.id, "Alertmanager", "outcome", {"summary": "dry run", **run})
    incidents.engine.process_due(incident.opened_at + timedelta(seconds=42))
    assert [len(text.splitlines()) for text in updates()] == [2, 1], "the run is over: no progress line"
    incidents.resolve(incident.id, "tests")
