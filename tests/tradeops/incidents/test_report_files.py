"""An incident's report as files against the sandbox's real PostgreSQL: resolving through ``IncidentService.resolve``
writes ``reports_dir()/incidents/incident-<id>.md`` and ``.html``, their timeline the audit trail (every event, in
order, with who), every runbook step with its result, the alert that raised it, and no secret; a write that fails
leaves the resolve done and the report due, and the escalation engine's trigger writes it later; an incident
resolved again gets its files replaced; the app serves the files once written; a check's report names the check."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest

from tests.tradeops.incidents.test_report import client
from tradeops.incidents import report_files, store, triggers
from tradeops.incidents.models import EventKind, IncidentStatus, NewIncident
from tradeops.incidents.report import redact
from tradeops.incidents.timeline import describe
from tradeops.incidents.triggers import EscalationEngineTrigger

SECRETS = ("hunter2", "s3cr3t-label-value", "abcdef123456token", "xoxb-1111-2222-secret")


@pytest.fixture
def reports(tmp_path, monkeypatch):
    """This test's own reports folder (``$TRADEOPS_REPORTS_DIR``), read at every write."""
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path / "reports" / report_files.FOLDER


@pytest.fixture
def alert_incident(incidents, key):
    """An alert's P1 whose labels and annotations carry secrets, as Alertmanager may deliver them."""
    labels = {
        "alertname": "OrderGatewayDown",
        "severity": "critical",
        "service": "order-gateway",
        "api_token": "s3cr3t-label-value",
    }
    annotations = {
        "summary": "order gateway not answering",
        "description": "probe https://probe:hunter2@gateway.internal/health?token=abcdef123456token failed",
    }
    new = NewIncident(
        dedup_key=key,
        source="alert",
        severity="P1",
        title="OrderGatewayDown: order gateway not answering",
        summary="probe failed with Authorization: Bearer xoxb-1111-2222-secret",
        details={"labels": labels, "annotations": annotations, "group_key": '{}:{alertname="OrderGatewayDown"}'},
        actor="Alertmanager",
    )
    return incidents.open(new).incident


def run_steps(incidents, incident_id: int, *steps: tuple[str, dict]) -> None:
    """Steps as ``incident_response``'s tasks record them (by the run's triggering user, with the run)."""
    run = {"dag_id": "incident_response", "run_id": "manual__2026-12-01T18:00:00+00:00"}
    for step, detail in steps:
        incidents.record_step(incident_id, "oncall-alice", step, {**detail, **run})


def table(markdown: str, section: str) -> list[list[str]]:
    """The rows of the Markdown table under ``## section`` (its cells, stripped), header and rule left out."""
    body = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ")][1:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def html_rows(html: str, section: str) -> list[list[str]]:
    """The cells (text) of the rows of the HTML table in ``<section id=section>``, header left out."""
    body = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr class=[^>]*>(.*?)</tr>", body, re.S)
    return [
        [unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in rows
    ]


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def due(state_dsn, incident_id: int) -> dict | None:
    with store.connect(state_dsn) as conn:
        return conn.execute("SELECT * FROM tradeops.incident_reports WHERE incident_id = %s", (incident_id,)).fetchone()


def test_resolving_writes_both_files_with_the_audit_trail_the_runbook_and_the_alert(
    incidents, alert_incident, reports, state_dsn
):
    incident_id = alert_incident.id
    incidents.acknowledge(incident_id, "@alice (Slack)", "on it")
    run_steps(
        incidents,
        incident_id,
        ("started", {"summary": "critical runbook started (for real) by oncall-alice: gateway down"}),
        ("diagnostics", {"summary": "12 files, 40960 bytes", "sha256": "ab" * 32}),
        ("stop_trading", {"summary": "trading stopped (was running)"}),
        ("close_positions", {"summary": "3 positions left open", "failed": True}),
    )
    resolved = incidents.resolve(incident_id, "bob", "gateway restarted; flat")
    assert resolved.status is IncidentStatus.RESOLVED

    markdown = (reports / f"incident-{incident_id}.md").read_text()
    html = (reports / f"incident-{incident_id}.html").read_text()
    assert due(state_dsn, incident_id)["written_at"] is not None
    assert sorted(p.name for p in reports.iterdir()) == [f"incident-{incident_id}.html", f"incident-{incident_id}.md"]

    trail = incidents.timeline(incident_id)
    names = {level.level: level.name for level in incidents.config.escalation.levels}
    expected = [[utc(e.at), describe(e, names)[0], e.actor] for e in trail]
    in_markdown = [[row[0], row[2], row[3]] for row in table(markdown, "Timeline")]
    in_html = [[row[0], row[2], row[3]] for row in html_rows(html, "timeline")]
    resolved_at = next(i for i, e in enumerate(trail) if e.kind is EventKind.RESOLVED)
    assert resolved_at < len(in_markdown) == len(in_html), "everything up to the resolve, at least"
    assert in_markdown == in_html == expected[: len(in_markdown)], "every event, in order, with who"
    assert [row[1:3] for row in in_markdown[:2]] == [["Opened", "Alertmanager"], [f"Paged L1 ({names[1]})", "tradeops"]]

    runbook = [[row[2], row[3], row[4]] for row in table(markdown, "Runbook actions")]
    assert runbook == [
        ["started", "critical runbook started (for real) by oncall-alice: gateway down", "oncall-alice"],
        ["diagnostics", "12 files, 40960 bytes", "oncall-alice"],
        ["stop trading", "trading stopped (was running)", "oncall-alice"],
        ["close positions", "FAILED: 3 positions left open", "oncall-alice"],
    ]
    assert all(
        row[5] == "incident_response manual__2026-12-01T18:00:00+00:00" for row in table(markdown, "Runbook actions")
    )
    assert f"sha256: {'ab' * 32}" in table(markdown, "Runbook actions")[1][6]
    assert [row[2:5] for row in html_rows(html, "runbook")] == runbook

    for text in ("`alertname=OrderGatewayDown`", "`service=order-gateway`", "| Resolved | ", "by bob |", "## Lessons"):
        assert text in markdown, text
    assert "group key" in markdown and "alertname=OrderGatewayDown" in html


def test_no_secret_reaches_the_files(incidents, alert_incident, reports):
    run_steps(incidents, alert_incident.id, ("revoke_tokens", {"summary": "revoked", "password": "hunter2"}))
    incidents.resolve(alert_incident.id, "bob")

    for kind in ("md", "html"):
        text = (reports / f"incident-{alert_incident.id}.{kind}").read_text()
        assert not [secret for secret in SECRETS if secret in text], kind
        assert "api_token=***" in text and "probe:***@gateway.internal" in text and "token=***" in text


def run_engine_window(seconds: float) -> dict:
    """The escalation engine's trigger for ``seconds``, as the triggerer runs it; its final result."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)

    async def run():
        return [event async for event in EscalationEngineTrigger(until.isoformat()).run()]

    [event] = asyncio.run(run())
    return event.xcoms["return_value"]


def test_a_failed_write_leaves_the_resolve_done_and_the_engine_writes_the_report_later(
    incidents, alert_incident, reports, state_dsn, monkeypatch
):
    reports.parent.mkdir(parents=True)
    reports.write_text("not a folder")  # the reports folder cannot be made: every write fails
    resolved = incidents.resolve(alert_incident.id, "bob", "fixed")

    assert resolved.status is IncidentStatus.RESOLVED and incidents.get(alert_incident.id).resolved_by == "bob"
    owed = due(state_dsn, alert_incident.id)
    assert owed["written_at"] is None and owed["attempts"] == 1 and "FileExistsError" in owed["last_error"]
    assert incidents.write_due_reports() == 0, "still failing: recorded, not raised"
    assert due(state_dsn, alert_incident.id)["next_attempt_at"] > datetime.now(UTC), "retried later, not at once"

    reports.unlink()  # the disk is back
    with store.connect(state_dsn) as conn:  # and the retry falls due
        conn.execute(
            "UPDATE tradeops.incident_reports SET next_attempt_at = now() WHERE incident_id = %s", (alert_incident.id,)
        )
    monkeypatch.setattr(triggers, "MAX_SLEEP_S", 0.5)
    run_engine_window(1.5)

    assert due(state_dsn, alert_incident.id)["written_at"] is not None
    markdown = (reports / f"incident-{alert_incident.id}.md").read_text()
    assert f"# Incident #{alert_incident.id}: OrderGatewayDown" in markdown and "by bob |" in markdown
    assert (reports / f"incident-{alert_incident.id}.html").exists()


def test_a_resolve_whose_process_died_after_its_commit_is_written_by_the_engine_s_catch_up(
    incidents, alert_incident, reports, state_dsn
):
    with store.connect(state_dsn) as conn:  # the resolve's transaction, and nothing after it
        report_files.resolve(conn, alert_incident.id, "bob", "fixed")
    with store.connect(state_dsn) as conn:  # the resolution reached Slack before the catch-up
        store.event(conn, alert_incident.id, EventKind.NOTIFIED, detail={"kind": "thread_reply"})
    assert due(state_dsn, alert_incident.id)["written_at"] is None and not reports.exists()

    assert incidents.write_due_reports() >= 1
    rows = table((reports / f"incident-{alert_incident.id}.md").read_text(), "Timeline")
    assert rows[-1][2:4] == ["Resolved", "bob"], "the trail as of the resolve, as a report written at once has it"
    assert len(rows) == len(incidents.timeline(alert_incident.id)) - 1
    assert (reports / f"incident-{alert_incident.id}.html").exists()
    assert due(state_dsn, alert_incident.id)["written_at"] is not None


def test_a_report_being_written_elsewhere_is_left_to_that_writer(incidents, alert_incident, reports, state_dsn):
    with store.connect(state_dsn) as conn:
        report_files.resolve(conn, alert_incident.id, "bob")
    with store.connect(state_dsn) as other, other.transaction():  # another process holds it
        other.execute("SELECT 1 FROM tradeops.incident_reports WHERE incident_id = %s FOR UPDATE", (alert_incident.id,))
        assert incidents.write_report(alert_incident.id) is False
        assert not reports.exists()
    assert incidents.write_report(alert_incident.id) is True


def test_an_incident_resolved_again_gets_its_files_replaced(incidents, alert_incident, reports, state_dsn):
    incidents.resolve(alert_incident.id, "bob", "looked fixed")
    first = (reports / f"incident-{alert_incident.id}.md").read_text()
    with store.connect(state_dsn) as conn:  # reopened (the gateway fell over again)
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'open', resolved_at = NULL, resolved_by = NULL WHERE id = %s",
            (alert_incident.id,),
        )
    run_steps(incidents, alert_incident.id, ("isolate_gateway", {"summary": "gateway isolated"}))
    incidents.resolve(alert_incident.id, "carol", "really fixed")

    second = (reports / f"incident-{alert_incident.id}.md").read_text()
    assert second != first and "by carol |" in second and "by bob |" not in second
    assert [row[3] for row in table(second, "Timeline") if row[2] == "Resolved"] == ["bob", "carol"]
    assert [row[2] for row in table(second, "Runbook actions")] == ["isolate gateway"]
    assert "isolate gateway" in (reports / f"incident-{alert_incident.id}.html").read_text()
    assert sorted(p.name for p in reports.iterdir()) == [
        f"incident-{alert_incident.id}.html",
        f"incident-{alert_incident.id}.md",
    ], "no temporary file left behind"


def test_the_app_serves_the_written_files_and_renders_an_unresolved_incident(
    incidents, alert_incident, reports, airflow_connections
):
    live = client().get(f"/incidents/{alert_incident.id}/report.md")
    assert live.status_code == 200 and "| Status | open |" in live.text and not reports.exists()

    incidents.resolve(alert_incident.id, "bob")
    path = reports / f"incident-{alert_incident.id}.md"
    path.write_text(path.read_text() + "\n<!-- as written -->\n")  # what only the file has
    served = client().get(f"/incidents/{alert_incident.id}/report.md")
    assert served.text == path.read_text() and served.headers["content-type"].startswith("text/markdown")
    assert (
        client().get(f"/incidents/{alert_incident.id}/report").text
        == (reports / f"incident-{alert_incident.id}.html").read_text()
    )


def test_a_check_s_report_names_the_check(incidents, key, reports):
    check = f"tls_certificates_{key[-6:]}"
    opened = incidents.check_failed(
        dag_id="daily_health_check",
        run_id="scheduled__2026-12-01T12:30:00+00:00",
        check=check,
        title="TLS certificates",
        summary="2 certificates expire within 7 days",
        severity="P3",
    )
    incidents.resolve(opened.incident.id, "tradeops (the check passed again)")

    markdown = (reports / f"incident-{opened.incident.id}.md").read_text()
    for line in (f"- **check**: {check}", "- **DAG**: daily_health_check", "| Raised by | check |"):
        assert line in markdown, line


def test_redaction_hides_secrets_and_keeps_the_rest():
    assert redact(
        {
            "api_token": "abc",
            "client_secret": "def",
            "tokens_revoked": 3,
            "url": "https://svc:hunter2@host/x?access_token=abc123&page=2",
            "note": "Authorization: Basic YWxpY2U6aHVudGVyMg== while basic checks pass; password: hunter2, ok",
            "steps": ["Bearer eyJhbGciOiJIUzI1NiJ9.payload", "xoxp-12-34-abcdef"],
            "headers": 'Authorization: Basic dXNlcjpwYXNz {"password": "hunter2", "authorization": "Bearer abcdefgh"}',
        }
    ) == {
        "api_token": "***",
        "client_secret": "***",
        "tokens_revoked": 3,
        "url": "https://svc:***@host/x?access_token=***&page=2",
        "note": "Authorization: Basic *** while basic checks pass; password: ***, ok",
        "steps": ["Bearer ***", "xox-***"],
        "headers": 'Authorization: Basic *** {"password": "***", "authorization": "Bearer ***"}',
    }
