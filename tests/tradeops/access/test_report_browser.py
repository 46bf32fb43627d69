"""The monthly access review's report in a real headless browser (Debian's chromium, see tests/browser.py), as a
real dry run against the sandbox's seeded platform wrote it, opened from disk: the summary on top, then the plan,
the changes, the inactive users and the access matrix; nothing fetched; then its screenshot.

``TRADEOPS_UPDATE_SCREENSHOT=1`` writes the screenshot to docs/access-review.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.browser import Browser, require_chromium

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def browser(tmp_path):
    require_chromium()
    with Browser(tmp_path / "chromium-profile", width=1200) as running:
        yield running


def test_the_report_puts_the_summary_first_then_the_plan_and_the_matrix(
    browser, access_dag, state_dsn, reports, run_dir
):
    run = access_dag.test(run_conf={"dry_run": True})
    review = run.get_task_instance("review").xcom_pull(task_ids="review")

    browser.goto(Path(review["report"]).as_uri())
    assert browser.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing fetched
    order = browser.evaluate("[...document.querySelectorAll('section')].map(s => s.id)")
    assert order == ["summary", "plan", "changes", "inactive", "matrix"]
    tiles = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('.tile')].map(t => "
        "[t.querySelector('.label').textContent, Number(t.querySelector('.value').textContent)]))"
    )
    assert tiles == {
        "Subjects": len(review["subjects"]),
        "Bindings": len(review["bindings"]),
        "Inactive users with access": 1,
        "Gained": 1,
        "Lost": 0,
        "Removals planned": 2,
    }
    planned = browser.evaluate("[...document.querySelectorAll('section#plan td.id')].map(td => td.textContent)")
    assert sorted(planned) == sorted(r["id"] for r in review["removals"])
    header = browser.evaluate("[...document.querySelectorAll('section#matrix th')].map(th => th.textContent)")
    assert header[0] == "Subject" and "grandmodel" in header and header[-1] == "*"
    rows = browser.evaluate("document.querySelectorAll('section#matrix tr').length - 1")
    assert rows == len(review["subjects"])
    width = browser.evaluate("document.querySelector('main').getBoundingClientRect().width")
    assert width <= 1200, "the matrix scrolls inside its section, the page does not overflow"

    shot = run_dir("screenshots") / "access-review.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    if os.environ.get("TRADEOPS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "access-review.png")
