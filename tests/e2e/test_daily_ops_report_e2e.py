"""daily_ops_report under the real scheduler, triggerer and api-server: the run writes the session's report where
reports go and posts one summary; a second run for the same session rewrites the file and posts nothing more; Slack
rate-limiting leaves the run green and the summary arrives once, from the outbox; the platform API down fails the run,
which pages (the runbook failure policy), and writes no report."""

from __future__ import annotations

import time
from datetime import UTC

import pytest

from devstack.client import parse
from devstack.drill import Drill
from tradeops.calendar.sessions import sessions_for

pytestmark = pytest.mark.e2e
DAG = "daily_ops_report"
TITLE = "*Daily operations report · "


@pytest.fixture
def report_run(stack):
    Drill(stack).wait_for_engine()
    stack.client.set_paused(DAG, False)

    def run(timeout: float = 300) -> dict:
        run_id = stack.client.trigger(DAG)
        return stack.client.wait_for_run(DAG, run_id, timeout=timeout)

    yield run
    for service in ("slack", "platform_api"):
        stack.sandbox.clear_faults(service)


def summaries(stack) -> list[dict]:
    return [m for m in stack.sandbox.slack_messages("#trading-ops") if m["text"].startswith(TITLE)]


def wait_for_summaries(stack, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(summaries(stack)) < count and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # a duplicate, if there were one, would have come by now
    return summaries(stack)


def test_the_platform_api_down_fails_the_run_pages_and_writes_no_report(stack, report_run):
    stack.sandbox.set_faults("platform_api", error_rate=1.0, error_status=500)
    run = report_run()
    assert run["state"] == "failed"
    incidents = stack.client._tradeops("/incidents.json?limit=100")["incidents"]
    [incident] = [i for i in incidents if i["dedup_key"] == f"runbook:{DAG}" and i["status"] != "resolved"]
    assert incident["run_id"] == run["dag_run_id"]
    assert not list((stack.airflow.reports_dir / DAG).glob("*.html"))
    assert summaries(stack) == []


def test_the_report_is_written_and_summarised_once_even_through_a_slack_rate_limit(stack, report_run):
    stack.sandbox.set_faults("slack", rate_limit=20, retry_after_s=1)
    first = report_run()
    assert first["state"] == "success", first
    session = sessions_for("XNYS").current_or_previous(parse(first["run_after"]).astimezone(UTC))
    path = stack.airflow.reports_dir / DAG / f"{session.day.isoformat()}.html"
    html = path.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 4 and len(html.encode()) < 300_000
    runs = html.split('<table id="runs">', 1)[1].split("</table>", 1)[0]  # the day's runs, from the api-server
    assert "daily_ops_report" in runs and "status-failed" in runs  # the failed run of the test before
    [summary] = wait_for_summaries(stack, 1)
    assert summary["text"].startswith(f"{TITLE}{session.day.isoformat()}*") and path.name in summary["text"]

    stack.sandbox.clear_faults("slack")
    written = path.stat().st_mtime_ns
    second = report_run()
    assert second["state"] == "success"
    assert path.stat().st_mtime_ns > written  # rewritten
    assert len(wait_for_summaries(stack, 2, timeout=10)) == 1  # and summarised once
