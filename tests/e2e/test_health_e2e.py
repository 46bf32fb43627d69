"""The health check under the real scheduler, triggerer and api-server: a Slack rate-limit burst leaves the run
green and its summary arrives exactly once after the burst (the escalation engine delivers it from the outbox); the
platform API down opens one incident for it, with the checks behind it held back and listed on its timeline."""

from __future__ import annotations

import time

import pytest

from devstack.client import parse
from devstack.drill import Drill, posted_at
from tradeops.reporting.links import run_url

pytestmark = pytest.mark.e2e
DAG = "daily_health_check"
SUMMARY = ":large_yellow_circle: Daily health check: all 10 checks passed"


@pytest.fixture
def health_run(stack):
    drill = Drill(stack)
    drill.wait_for_engine()
    stack.client.set_paused(DAG, False)

    def run(timeout: float = 300) -> dict:
        run_id = stack.client.trigger(DAG)
        return stack.client.wait_for_run(DAG, run_id, timeout=timeout)

    yield run
    for service in ("slack", "platform_api"):
        stack.sandbox.clear_faults(service)


def summaries(stack, run_id: str) -> list[dict]:
    """This run's summaries (each links its run)."""
    link = run_url(DAG, run_id).split("/dags/", 1)[1]  # the stack's base URL is not this process's
    return [m for m in stack.sandbox.slack_messages("#trading-ops") if link in str(m["blocks"])]


def test_a_slack_rate_limit_burst_leaves_the_run_green_and_the_summary_arrives_once_after_it(stack, health_run):
    # The burst lasts until the run has ended, whatever else talks to Slack meanwhile: the summary's own attempt
    # (Slack's client retries 5 times) and the engine's deliveries during the run all meet 429s.
    stack.sandbox.set_faults("slack", rate_limit=100_000, retry_after_s=1)
    run = health_run()
    stack.sandbox.clear_faults("slack")
    assert run["state"] == "success", run
    deadline = time.monotonic() + 120
    while not summaries(stack, run["dag_run_id"]) and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(5)  # a second delivery, if there were one, would have come by now
    [summary] = summaries(stack, run["dag_run_id"])
    assert summary["text"].startswith(SUMMARY)
    assert posted_at(summary) > parse(run["end_date"]), "delivered from the outbox after the run, not lost"


def test_the_platform_api_down_opens_one_incident_and_holds_back_the_checks_behind_it(stack, health_run):
    stack.sandbox.set_faults("platform_api", error_rate=1.0)
    run = health_run()
    assert run["state"] == "failed"
    stack.sandbox.clear_faults("platform_api")
    incidents = stack.client._tradeops("/incidents.json?limit=100")["incidents"]
    [outage] = [i for i in incidents if i["dedup_key"] == "dependency:platform_api" and i["status"] != "resolved"]
    assert outage["severity"] == "P1"
    behind = {"system_status", "agents", "data_feeds", "memory", "performance", "account_balance"}
    assert set(outage["details"]["held_back"]) == behind
    _, timeline = stack.client.incident(outage["id"])
    assert {e["detail"]["check"] for e in timeline if e["kind"] == "held_back"} == behind
    assert not [i for i in incidents if i["dedup_key"].startswith(f"check:{DAG}:") and i["status"] != "resolved"]
    Drill(stack).run_form("incident_resolve", {"incident_id": outage["id"], "note": "e2e: the platform API is back"})
