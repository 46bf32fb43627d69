"""Links into Airflow, Slack and the runbook (pure: no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from tradeops.config import load_config
from tradeops.incidents.models import Incident, IncidentSource, IncidentStatus
from tradeops.reporting.links import (
    airflow_base_url,
    incident_links,
    run_url,
    runbook_url,
    slack_thread_url,
    task_log_url,
)

T0 = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)


def test_airflow_ui_links_escape_every_path_segment():
    base = airflow_base_url()
    assert run_url("daily_health_check", "manual__2026-11-30T10:00:00+00:00") == (
        f"{base}/dags/daily_health_check/runs/manual__2026-11-30T10%3A00%3A00%2B00%3A00"
    )
    assert run_url("d", "custom/run id") == f"{base}/dags/d/runs/custom%2Frun%20id", "a / would change the route"
    assert task_log_url("d", "r", "group.task") == f"{base}/dags/d/runs/r/tasks/group.task"


def test_runbook_and_slack_links():
    assert runbook_url("https://runbooks.example/ops/", "daily_health_check") == (
        "https://runbooks.example/ops/daily_health_check"
    )
    assert runbook_url("https://runbooks.example/ops", None) == "https://runbooks.example/ops/incident-response"
    assert slack_thread_url("C0123", "1764511200.000100") == (
        "https://slack.com/app_redirect?channel=C0123&message_ts=1764511200.000100"
    )
    assert slack_thread_url("C0123", "1764511200.000100", "https://quantnova.slack.com/") == (
        "https://quantnova.slack.com/archives/C0123/p1764511200000100"
    )


def test_an_incidents_links_as_its_slack_message_and_the_page_give_them():
    config = load_config()
    incident = Incident(
        id=1, dedup_key="k", source=IncidentSource.TASK_FAILURE, severity="P2", title="t", summary="",
        dag_id="daily_db_maintenance", run_id="r1", task_id="backup", status=IncidentStatus.OPEN, level=1, loop=0,
        escalation_anchor=T0, opened_at=T0, last_seen_at=T0, occurrences=1, acknowledged_at=None,
        acknowledged_by=None, resolved_at=None, resolved_by=None, last_update_at=T0, silenced_until=None,
        next_action_at=None, slack_channel="C9", slack_ts="1.2", war_room=None, details={},
    )  # fmt: skip
    links = incident_links(config, incident)
    assert links.run == run_url("daily_db_maintenance", "r1")
    assert links.task_log == task_log_url("daily_db_maintenance", "r1", "backup")
    assert links.slack_thread == "https://slack.com/app_redirect?channel=C9&message_ts=1.2"
    assert links.runbook == "https://runbooks.quantnova.internal/grandmodel/daily_db_maintenance"
    person = incident_links(config, replace(incident, dag_id=None, run_id=None, task_id=None, slack_ts=None))
    assert (person.run, person.task_log, person.slack_thread) == (None, None, None)
    assert person.runbook == "https://runbooks.quantnova.internal/grandmodel/incident-response"
    workspace = config.model_copy(
        update={"slack": config.slack.model_copy(update={"workspace_url": "https://q.slack.com"})}
    )
    assert incident_links(workspace, incident).slack_thread == "https://q.slack.com/archives/C9/p12"
