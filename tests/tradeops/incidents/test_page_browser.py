"""The incidents page in a real headless browser (Debian's chromium over the DevTools protocol, see tests/browser.py),
served over HTTP by uvicorn as the api-server mounts it, with Airflow's login stood in for by a fixed user: an
engineer acknowledges an incident by clicking, a form on another origin cannot act, and the page's screenshot.

``TRADEOPS_UPDATE_SCREENSHOT=1`` writes the screenshot to docs/incidents-page.png (run this file alone, on a fresh
sandbox, so the page holds only its scene)."""

from __future__ import annotations

import os
import random
import re
import shutil
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.launcher import free_port
from tests.browser import Browser, require_chromium
from tests.serving import served
from tradeops.incidents.app import create_app
from tradeops.incidents.models import NewIncident
from tradeops.incidents.response_times import weeks_up_to

USER = "oncall-alice"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def page_url(airflow_connections):
    """The TradeOps app over real HTTP, every request logged in as ``oncall-alice``."""
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app()
    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: USER)
    with served(app) as url:
        yield url


@pytest.fixture
def browser(tmp_path):
    require_chromium()
    with Browser(tmp_path / "chromium-profile") as running:
        yield running


def test_an_engineer_acknowledges_an_incident_by_clicking(incidents, key, page_url, browser):
    dag = f"browser_{uuid.uuid4().hex[:8]}"
    incident = incidents.open(
        NewIncident(
            dedup_key=key, source="task_failure", severity="P2", title=f"{dag} failed at load", dag_id=dag,
            run_id="manual__2026-11-30T10:00:00+00:00", task_id="load",
        )
    ).incident  # fmt: skip
    card = f"#incident-{incident.id}"

    browser.goto(f"{page_url}/incidents?dag_id={dag}")
    assert browser.text("#user") == USER
    assert browser.evaluate(f"document.querySelector('{card}').dataset.status") == "open"
    assert browser.evaluate(f"document.querySelector('{card} a.task-log').href").endswith(
        f"/dags/{dag}/runs/manual__2026-11-30T10%3A00%3A00%2B00%3A00/tasks/load"
    )
    [cookie] = [c for c in browser.cookies() if c["name"] == "tradeops_csrf"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    browser.type(f"{card} form.acknowledge input[name=note]", "looking at the loader")
    browser.click(f"{card} form.acknowledge button", navigates=True)

    assert browser.url().startswith(f"{page_url}/incidents?dag_id={dag}&done=acknowledged&n={incident.id}")
    assert browser.text("#notice") == f"Incident #{incident.id} acknowledged by {USER}."
    assert browser.evaluate(f"document.querySelector('{card}').dataset.status") == "acknowledged"
    assert f"acknowledged by {USER}" in browser.text(f"{card} .meta")
    rows = browser.evaluate(f"[...document.querySelectorAll('{card} .timeline tr')].map(r => r.innerText)")
    assert [r.split("\t")[2:] for r in rows if "\tAcknowledged\t" in r] == [
        ["Acknowledged", USER, "note: looking at the loader"]
    ]
    row = incidents.get(incident.id)
    assert (row.status, row.acknowledged_by) == ("acknowledged", USER)
    assert [e.detail for e in incidents.timeline(incident.id) if e.kind == "acknowledged"] == [
        {"note": "looking at the loader"}
    ]


def test_a_form_on_another_origin_cannot_act_through_the_browser(incidents, key, page_url, browser):
    """The JWT cookie goes with any request from the same site (SameSite=Lax; another port of the same host is the
    same site), so a page there could post the action as the victim: the origin check and the token stop it."""
    incident = incidents.open(NewIncident(dedup_key=key, source="manual", severity="P2", title="target")).incident
    forged = (
        f'<form method="post" action="{page_url}/incidents/{incident.id}/acknowledge">'
        '<input name="csrf_token" value="guessed"><input name="note" value="forged"></form>'
        "<script>document.forms[0].submit()</script>"
    ).encode()

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(forged)

        def log_message(self, *args):
            pass

    attacker = ThreadingHTTPServer(("127.0.0.1", free_port()), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        browser.goto(f"{page_url}/incidents?limit=1")  # the victim has the page (and its cookie)
        browser.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")  # its form posts itself at once
        browser.wait_until("location.pathname.endsWith('/acknowledge') && document.readyState === 'complete'")
        assert browser.url() == f"{page_url}/incidents/{incident.id}/acknowledge"
        assert "cross-origin request refused" in browser.text("#problem")
    finally:
        attacker.shutdown()
    assert incidents.get(incident.id).status == "open"


@pytest.fixture
def ends_with_the_test(incidents):
    """Silences to end after the test (a silence of real key prefixes would mute other tests' incidents)."""
    silences: list = []
    yield silences
    for silence in silences:
        incidents.end_silence(silence.id, "tests (cleanup)")


TYPICAL_MINUTES = {  # severity: (incidents a week, minutes to acknowledge, minutes to resolve), roughly
    "P1": ((0, 2), 3, 45),
    "security": ((0, 1), 5, 120),
    "P2": ((1, 4), 12, 150),
    "P3": ((1, 5), 45, 600),
    "P4": ((0, 3), 240, 1800),
}


def seven_weeks_before(now: datetime, past_incidents) -> set[tuple[str, str]]:
    """Resolved incidents in each of the seven weeks before this one (the same every run); the severities and weeks
    that have some."""
    chance = random.Random(17)
    filled = set()
    for week in weeks_up_to(now)[:-1]:
        monday = datetime.combine(week, datetime.min.time(), UTC)
        for severity, ((fewest, most), to_acknowledge, to_resolve) in TYPICAL_MINUTES.items():
            for _ in range(chance.randint(fewest, most)):
                acknowledged = timedelta(minutes=to_acknowledge * chance.uniform(0.3, 2.5))
                resolved = acknowledged + timedelta(minutes=to_resolve * chance.uniform(0.5, 2))
                opened = monday + timedelta(minutes=chance.randrange(7 * 24 * 60))
                past_incidents(severity, min(opened, now - resolved), acknowledged, resolved)
                filled.add((severity, str(week)))
    return filled


def test_the_page_as_an_engineer_sees_it(incidents, page_url, browser, run_dir, ends_with_the_test, past_incidents):
    """A scene: a P1 failure escalated to L2, a security alert, an acknowledged P2, a silenced P4, a resolved P3,
    the silence and seven weeks of response times; then the screenshot (after acknowledging the P2 with a click, so
    the notice shows)."""
    run = "scheduled__2026-11-30T07:30:00+00:00"

    def open_one(key, severity, title, summary, dag_id=None, task_id=None, source="check"):
        new = NewIncident(
            dedup_key=key, source=source, severity=severity, title=title, summary=summary,
            dag_id=dag_id, run_id=run if dag_id else None, task_id=task_id,
        )  # fmt: skip
        return incidents.open(new).incident

    resolved = open_one(
        f"deadline:daily_db_maintenance:{run}:vacuum", "P3", "daily_db_maintenance missed its 'vacuum' deadline",
        "Run was still running at its 'vacuum' deadline (06:45 UTC).", "daily_db_maintenance", source="deadline",
    )  # fmt: skip
    incidents.acknowledge(resolved.id, "@oncall-primary (Slack)", "vacuum on trades is slow, watching")
    incidents.resolve(resolved.id, "@oncall-primary (Slack)", "finished 06:52, no action needed")
    silenced = open_one(
        "check:daily_ops_report:report_freshness", "P4", "Ops report freshness check failing",
        "The overnight report is 2h old (limit 1h).", "daily_ops_report", "report_freshness",
    )  # fmt: skip
    silence = incidents.silence(
        "check:daily_ops_report:", "carol", "report generator upgrade until 16:00", timedelta(minutes=150)
    )
    ends_with_the_test.append(silence)
    acknowledged = open_one(
        "check:daily_health_check:tls_certificates", "P2", "TLS certificates check failing",
        "gateway.quantnova.internal expires in 5 days; md.quantnova.internal expired 3 days ago.",
        "daily_health_check", "tls_certificates",
    )  # fmt: skip
    security = open_one(
        "check:daily_health_check:admin_logins", "security", "Unexpected admin login on the order gateway",
        "admin login from 203.0.113.7 outside the change window.", "daily_health_check", "admin_logins",
    )  # fmt: skip
    failed = open_one(
        "runbook:daily_db_maintenance", "P1", "daily_db_maintenance failed at backup_database",
        "`backup_database` failed: pg_dump: error: connection to server lost", "daily_db_maintenance",
        "backup_database", source="task_failure",
    )  # fmt: skip
    time.sleep(max(0.0, (failed.escalation_anchor + timedelta(seconds=11) - datetime.now(UTC)).total_seconds()))
    incidents.engine.process_due()  # the demo policy's L2: P1 after 10 s (security 5 s, P2 8 s)
    incidents.outbox.deliver()

    history = seven_weeks_before(datetime.now(UTC), past_incidents)

    browser.goto(f"{page_url}/incidents?limit=5")
    browser.type(f"#incident-{acknowledged.id} form.acknowledge input[name=note]", "renewing the gateway cert")
    browser.click(f"#incident-{acknowledged.id} form.acknowledge button", navigates=True)
    assert browser.text("#notice") == f"Incident #{acknowledged.id} acknowledged by {USER}."
    shown = browser.evaluate("[...document.querySelectorAll('article.incident')].map(a => a.id)")
    assert shown == [f"incident-{i.id}" for i in (failed, security, acknowledged, silenced, resolved)]
    assert browser.text(f"#silence-{silence.id}").startswith(f"{silence.id}\tcheck:daily_ops_report:")
    assert "Escalated to L2 (Operations manager)" in browser.text(f"#incident-{failed.id} .timeline")
    this_week = str(weeks_up_to(datetime.now(UTC))[-1])
    cells = browser.evaluate(
        "[...document.querySelectorAll('#response-times td[data-week]')].filter(td => !td.classList.contains('none'))"
        ".map(td => [td.parentElement.dataset.severity, td.dataset.week, td.innerText])"
    )
    assert {(severity, week) for severity, week, _text in cells if week != this_week} == history
    [p3_now] = [text for severity, week, text in cells if (severity, week) == ("P3", this_week)]  # resolved at once
    assert re.match(r"\d+s \(\d+s\)\n\d+s \(\d+s\)\n\d+", p3_now), p3_now

    shot = run_dir("screenshots") / "incidents-page.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "incidents-page.png")
