"""An incident's report over HTTP (the TradeOps app, FastAPI's TestClient) against the sandbox's PostgreSQL: what
raised it, the time to acknowledge and to resolve, the timeline and the people's actions, a lessons-learned section;
as HTML and as Markdown; linked from the Slack thread when the incident resolves; then in a real headless browser,
with its screenshot (``TRADEOPS_UPDATE_SCREENSHOT=1`` writes docs/incident-report.png)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.browser import Browser, require_chromium
from tradeops.incidents import store
from tradeops.incidents.app import create_app
from tradeops.incidents.models import NewIncident
from tradeops.incidents.report import facts

REPO = Path(__file__).resolve().parents[3]


def client(user: str | None = "oncall-alice"):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    app = create_app()
    if user:
        app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: user)
    return TestClient(app, base_url="http://airflow.test")


@pytest.fixture
def resolved(incidents, key, state_dsn):
    """An alert's P1, acknowledged 90 s after it opened, two steps of its runbook, resolved 10 min after it opened."""
    labels = {"alertname": "ExecutionEngineDown", "severity": "critical", "service": "execution-engine"}
    new = NewIncident(
        dedup_key=key,
        source="alert",
        severity="P1",
        title="ExecutionEngineDown: execution engine not answering",
        summary="no heartbeat from the execution engine for 60 s",
        details={"labels": labels, "group_key": '{}:{alertname="ExecutionEngineDown"}'},
        actor="Alertmanager",
    )
    incident = incidents.open(new).incident
    incidents.acknowledge(incident.id, "@alice (Slack)", "looking")
    run = {"dag_id": "incident_response", "run_id": "manual__2026-12-01T09:00:00+00:00"}
    digest = "9f2c4e1b7a0d3c5e8f6a2b4d1c3e5f7a9b0c2d4e6f8a1b3c5d7e9f0a2b4c6d8e"
    incidents.record_step(
        incident.id, "@alice", "diagnostics", {"summary": "14 files, 53248 bytes", "sha256": digest, **run}
    )
    incidents.record_step(incident.id, "@alice", "stop_trading", {"summary": "trading stopped (was running)", **run})
    incidents.resolve(incident.id, "bob", "restarted the engine; fills flowing")
    with store.connect(state_dsn) as conn:  # the times a real incident would have taken
        conn.execute(
            "UPDATE tradeops.incidents SET acknowledged_at = opened_at + interval '90 seconds', "
            "resolved_at = opened_at + interval '10 minutes' WHERE id = %s",
            (incident.id,),
        )
        conn.execute("UPDATE tradeops.incident_reports SET written_at = NULL WHERE incident_id = %s", (incident.id,))
    assert incidents.write_report(incident.id)  # its files as of those times
    return incidents.get(incident.id)


def test_the_report_has_the_times_the_cause_the_timeline_and_the_peoples_actions(
    incidents, resolved, airflow_connections
):
    data = facts(resolved, incidents.timeline(resolved.id), incidents.config)
    assert (data["time_to_acknowledge"], data["time_to_resolve"]) == ("1m", "10m")
    assert data["raised_by"]["labels"]["service"] == "execution-engine"
    assert [(e.what, e.who) for e in data["actions"]] == [("Acknowledged", "@alice (Slack)"), ("Resolved", "bob")]
    assert [(a.step, a.result, a.who) for a in data["runbook"]] == [
        ("diagnostics", "14 files, 53248 bytes", "@alice"),
        ("stop trading", "trading stopped (was running)", "@alice"),
    ]
    assert data["timeline"][0].what == "Opened" and data["timeline"][0].who == "Alertmanager"

    page = client().get(f"/incidents/{resolved.id}/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in ("Time to acknowledge", "1m", "10m", "service=execution-engine", "restarted the engine", "Lessons"):
        assert text in page.text, text

    markdown = client().get(f"/incidents/{resolved.id}/report.md")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Incident #{resolved.id}: ExecutionEngineDown")
    assert "| Time to resolve | 10m |" in markdown.text and "## Lessons learned" in markdown.text
    assert "| Resolved | " in markdown.text and "by bob |" in markdown.text


def test_the_resolved_thread_message_links_the_report(resolved, messages_of):
    thread = [m["text"] for m in messages_of(resolved.id) if m["text"].startswith(":white_check_mark: Resolved")]
    assert thread and f"/tradeops/incidents/{resolved.id}/report|incident #{resolved.id} report>" in thread[-1]


def test_an_unknown_incident_is_404_and_nobody_logged_out_reads_a_report(resolved, airflow_connections):
    assert client().get("/incidents/999999999/report").status_code == 404
    assert client(user=None).get(f"/incidents/{resolved.id}/report").status_code in (401, 403)


@pytest.fixture
def browser(tmp_path):
    require_chromium()
    with Browser(tmp_path / "chromium-profile", width=1100) as running:
        yield running


def test_the_report_reads_well_in_a_browser(incidents, resolved, browser, tmp_path, run_dir, airflow_connections):
    from tradeops.incidents.report import render

    path = tmp_path / "report.html"
    path.write_text(render("html", facts(resolved, incidents.timeline(resolved.id), incidents.config)))
    browser.goto(path.as_uri())
    assert browser.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    order = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    assert order == ["summary", "raised-by", "timeline", "runbook", "actions", "lessons"]
    tiles = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')].map(t => "
        "[t.querySelector('.label').textContent, t.querySelector('.value').textContent]))"
    )
    assert tiles["Time to acknowledge"] == "1m" and tiles["Time to resolve"] == "10m"
    shot = run_dir("screenshots") / "incident-report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "incident-report.png")
