"""The daily security report in a real headless browser (Debian's chromium, see tests/browser.py), opened from disk:
built by the real checks from the sandbox's seeded platform, with one earlier finding fixed, it puts the summary on
top, lists every finding with its state, fetches nothing; then its screenshot.

``TRADEOPS_UPDATE_SCREENSHOT=1`` writes the screenshot to docs/security-report.png."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.browser import Browser, require_chromium
from tradeops.security.findings import classify
from tradeops.security.report import render
from tradeops.security.suite import CHECKS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def browser(tmp_path):
    require_chromium()
    with Browser(tmp_path / "chromium-profile", width=1200) as running:
        yield running


def test_the_report_shows_the_summary_first_and_every_finding_with_its_state(
    browser, airflow_connections, config, tmp_path, run_dir, replicas_for_now
):
    results = {check.name: check.run(config) for check in CHECKS}
    now = datetime.now(UTC)
    earlier = {
        "netpol:default-deny:grandmodel": {
            "check_name": "network_policies", "level": "fail", "critical": False, "incident_id": 3,
            "message": "grandmodel: no default-deny ingress policy", "first_seen_at": now - timedelta(days=2),
        },
    }  # fmt: skip
    tracked = [t.to_dict() for t in classify(results, earlier, now)]
    html = render(config, list(results.values()), tracked, run_id="scheduled__2026-12-01T11:00:00+00:00",
                  run_url="http://127.0.0.1:8080/dags/daily_security_check", generated_at=now)  # fmt: skip
    path = tmp_path / "security.html"
    path.write_text(html, encoding="utf-8")

    browser.goto(path.as_uri())
    assert browser.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    order = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    assert order == ["summary", "findings"]
    tiles = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')].map(t => "
        "[t.querySelector('.label').textContent, Number(t.querySelector('.value').textContent)]))"
    )
    failing = [t for t in tracked if t["state"] != "fixed" and t["status"] == "fail"]
    assert tiles["Failed"] == len(failing) and tiles["Fixed"] == 1 and tiles["New"] == len(tracked) - 1
    assert tiles["Critical"] == sum(t["critical"] for t in failing) > 0
    rows = browser.evaluate(
        "[...document.querySelectorAll('section#findings tr')].slice(1).map(r => "
        "[r.cells[0].textContent.trim(), r.cells[3].textContent.trim()])"
    )
    assert len(rows) == len(tracked) and rows[-1] == ["fixed", "netpol:default-deny:grandmodel"]
    assert browser.evaluate("document.querySelectorAll('section#summary tr').length") == len(CHECKS) + 1

    shot = run_dir("screenshots") / "security-report.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "security-report.png")
