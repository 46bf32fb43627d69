"""daily_ops_report run in-process (``dag.test()``) against the sandbox: the platform API, the platform database,
TradeOps' state database and Slack are real. The file is written for the session, old ones are pruned, one Slack
message goes out, and a second run for the same session rewrites the file and sends nothing more."""

from __future__ import annotations

import copy
import os
import time

import pytest
import requests

from tests.dagtest import runnable
from tradeops.calendar.sessions import sessions_for
from tradeops.incidents import store
from tradeops.incidents.models import NewIncident
from tradeops.incidents.service import IncidentService
from tradeops.reporting.operators import span


@pytest.fixture
def report_dag(dagbag, airflow_db, airflow_connections):
    return runnable(dagbag, "daily_ops_report")


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    return tmp_path / "daily_ops_report"


@pytest.fixture
def slack(sandbox, sandbox_settings):
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    return sandbox


@pytest.fixture
def an_acknowledged_incident(sandbox_settings, config):
    """One incident of the day, acknowledged about 2 s after it opened and resolved a second later, through the
    service; with its times to acknowledge and to resolve as its audit trail has them, in the report's words."""
    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    service = IncidentService(config, dsn)
    opened = service.open(
        NewIncident(
            dedup_key=f"test:daily-ops:{time.time_ns()}",
            source="check",
            severity="P3",
            title="daily ops report test incident",
        ),
        deliver=False,
    ).incident
    time.sleep(2)
    service.acknowledge(opened.id, "oncall-alice")
    time.sleep(1)
    service.resolve(opened.id, "oncall-alice")
    with store.connect(dsn) as conn:  # nothing of it for the report's Slack count
        conn.execute("UPDATE tradeops.outbox SET delivered_at = now() WHERE delivered_at IS NULL")
    at = {event.kind.value: event.at for event in service.timeline(opened.id)}
    return opened, span(at["acknowledged"] - opened.opened_at), span(at["resolved"] - opened.opened_at)


def test_the_report_is_written_once_per_session_and_summarised_in_one_message(
    report_dag, reports, slack, an_acknowledged_incident, config
):
    reports.mkdir(parents=True)
    old = reports / "2020-01-02.html"
    old.write_text("old")
    os.utime(old, (0, 0))

    run = report_dag.test()
    assert run.state == "success"
    session = sessions_for(config.platform.exchange).current_or_previous(run.run_after)
    path = reports / f"{session.day.isoformat()}.html"
    html = path.read_text()
    assert not old.exists()  # older than reports.keep_days
    assert len(html.encode()) < 300_000 and html.count("<svg") == 4
    incident, to_acknowledge, to_resolve = an_acknowledged_incident
    row = html.split(f'<tr id="incident-{incident.id}">', 1)[1].split("</tr>", 1)[0]
    assert f'<td class="num">{to_acknowledge} <span class="muted">/ 30m 00s</span>' in row  # P3: 30 minutes
    assert f'<td class="num">{to_resolve}</td>' in row and "status-resolved" in row
    assert "Logins" in html and "Trades" in html
    assert "no Airflow API connection (tradeops_airflow_api)" in html  # no api-server in dag.test(): end to end
    for secret in slack.settings["secrets"].values():
        assert str(secret) not in html
    [message] = slack.slack_messages("#trading-ops")
    assert message["text"].startswith(f"*Daily operations report · {session.day.isoformat()}*")
    assert path.name in message["text"]

    path.write_text("stale")
    again = copy.deepcopy(report_dag).test()
    assert again.state == "success"
    assert path.read_text().startswith("<!DOCTYPE html>")  # rewritten
    assert len(slack.slack_messages("#trading-ops")) == 1  # and no second message


def test_the_run_fails_when_the_platform_cannot_be_read(report_dag, reports, slack, config):
    slack.set_faults("platform_api", error_rate=1.0, error_status=500)
    run = report_dag.test()
    assert run.state == "failed"
    assert not reports.exists() or not list(reports.glob("*.html"))
    assert [m for m in slack.slack_messages("#trading-ops") if "Daily operations report" in m["text"]] == []
