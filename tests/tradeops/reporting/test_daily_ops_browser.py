"""The daily operations report in a real headless browser (Debian's chromium over the DevTools protocol, see
tests/browser.py), opened from disk as a person opens an email attachment: built from the sandbox (platform API,
platform database, TradeOps' incidents) with a day of incidents, it renders its sections and its four SVG charts,
fetches nothing, and renders quickly; then its screenshot.

``TRADEOPS_UPDATE_SCREENSHOT=1`` writes the screenshot to docs/daily-ops-report.png (run this file alone, on a fresh
sandbox, so the report holds only its scene)."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from tests.browser import Browser, require_chromium
from tradeops.calendar.sessions import sessions_for
from tradeops.incidents import store
from tradeops.incidents.service import IncidentService
from tradeops.reporting.daily_ops import recommendations, report_window
from tradeops.reporting.daily_ops_sources import collect_day
from tradeops.reporting.operators import render_report

REPO = Path(__file__).resolve().parents[3]
SECTIONS = ("recommendations", "trading", "performance", "resources", "runbooks", "incidents", "security")


@pytest.fixture
def browser(tmp_path):
    require_chromium()
    with Browser(tmp_path / "chromium-profile", width=1200) as running:
        yield running


def _a_day_of_incidents(dsn: str, now: datetime) -> list[int]:
    """Incidents of the day as the state database records them, written in the past (the audit trail is
    append-only and stamped by the database, so they are inserted as they would stand): a P1 acknowledged after 9
    minutes against a 5-minute target, a P2 resolved in 48, a missed deadline, a security incident still open."""
    scene = [
        ("P1", "execution-engine order latency over 500 ms", "check", None, 180, 9, 35),
        ("P2", "cme-mdp3 data feed lagging", "check", None, 140, 6, 48),
        ("P4", "daily_health_check missed its 'warn' deadline", "deadline", "daily_health_check", 400, 20, 25),
        ("security", "Failed logins burst from 10.20.7.14", "manual", None, 25, None, None),
    ]
    ids = []
    with store.connect(dsn) as conn:
        for severity, title, source, dag_id, ago, ack, resolve in scene:
            opened = now - timedelta(minutes=ago)
            acked = opened + timedelta(minutes=ack) if ack is not None else None
            resolved = opened + timedelta(minutes=resolve) if resolve is not None else None
            status = "resolved" if resolved else "acknowledged" if acked else "open"
            row = conn.execute(
                "INSERT INTO tradeops.incidents (dedup_key, source, severity, title, dag_id, run_id, status, level, "
                "escalation_anchor, opened_at, last_seen_at, last_update_at, acknowledged_at, acknowledged_by, "
                "resolved_at, resolved_by, details) VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s) RETURNING id",
                (f"browser:{time.time_ns()}", source, severity, title, dag_id,
                 "scheduled__2026-11-30T12:00:00+00:00" if dag_id else None, status, opened, opened, opened, opened,
                 acked, "oncall-alice" if acked else None, resolved, "oncall-alice" if resolved else None,
                 Jsonb({"tier": "warn"} if source == "deadline" else {})),
            ).fetchone()  # fmt: skip
            trail = [(opened, "opened", "tradeops"), (opened + timedelta(seconds=2), "paged", "tradeops")]
            trail += [(acked, "acknowledged", "oncall-alice")] if acked else []
            trail += [(resolved, "resolved", "oncall-alice")] if resolved else []
            for at, kind, actor in trail:
                conn.execute(
                    "INSERT INTO tradeops.incident_events (incident_id, at, kind, actor, level) VALUES (%s, %s, %s, "
                    "%s, 1)",
                    (row["id"], at, kind, actor),
                )
            ids.append(row["id"])
    return ids


def test_the_report_renders_offline_with_its_charts(browser, sandbox_settings, airflow_connections, config, tmp_path,
                                                     run_dir):  # fmt: skip
    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    service = IncidentService(config, dsn)
    now = datetime.now(UTC)
    scene = _a_day_of_incidents(dsn, now)
    table = sessions_for(config.platform.exchange)
    day = collect_day(config, report_window(table, now), service)
    html = render_report(day, recommendations(day), config, run_id="scheduled__report", generated_at=now, tz=table.tz)
    path = tmp_path / f"{day.window.session.day}.html"
    path.write_text(html, encoding="utf-8")
    size = len(html.encode())
    assert size < 300_000

    started = time.monotonic()
    browser.goto(path.as_uri())
    load_ms = (time.monotonic() - started) * 1000
    timing = browser.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {load: n.loadEventEnd, dom: n.domContentLoadedEventEnd, resources:"
        " performance.getEntriesByType('resource').length}; })()"
    )
    print(f"daily ops report: {size} bytes, load {timing['load']:.0f} ms in the page, {load_ms:.0f} ms navigation")
    assert timing["resources"] == 0  # nothing fetched: no CDN, no font, no image
    assert timing["load"] < 2000

    for section in SECTIONS:
        assert browser.evaluate(f"!!document.querySelector('section#{section} h2')"), section
    charts = browser.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => ({title: s.querySelector('title').textContent,"
        " width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height,"
        " marks: s.querySelectorAll('rect, circle').length}))"
    )
    assert [c["title"] for c in charts] == [
        "Latency p95 by hour", "CPU by component", "Memory by component", "Incidents by severity",
    ]  # fmt: skip
    assert all(c["width"] > 200 and c["height"] > 40 for c in charts), charts
    assert all(c["marks"] > 0 for c in charts[1:]), charts  # bars per component and per severity
    rows = browser.evaluate("document.querySelectorAll('section#incidents tr[id^=incident-]').length")
    assert rows >= 4
    assert "9m 00s" in browser.text("section#incidents") and "48m 00s" in browser.text("section#incidents")
    assert "acknowledged after their severity's initial response time" in browser.text("section#recommendations")
    assert "daily_health_check" in browser.text("section#runbooks")

    shot = run_dir("screenshots") / "daily-ops-report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "daily-ops-report.png")
    service.resolve(scene[-1], "tests (cleanup)")
