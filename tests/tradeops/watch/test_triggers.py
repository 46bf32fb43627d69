"""The watch's trigger against the sandbox's platform API (real HTTP, the connection's bearer token), with a
sub-second poll and second-scale rules; and the sandbox's metrics endpoints and their breach knob."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from sandbox.platform_metrics import BASELINES
from tradeops.config import load_config
from tradeops.watch.rules import Rule
from tradeops.watch.triggers import MarketWatchTrigger

CONN = "tradeops_platform_api"
ERROR_RATE = Rule("error_rate", "error_rate_pct", 1.0, timedelta(seconds=2), "P1")
DRAWDOWN = Rule("drawdown", "drawdown_pct", 5.0, timedelta(0), "P1")


@pytest.fixture
def platform(sandbox_settings, airflow_connections):
    url, token = sandbox_settings["platform_api"]["url"], sandbox_settings["secrets"]["platform_api_token"]

    def get(path: str, **params) -> dict:
        response = requests.get(
            f"{url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    return get


def trigger(seconds: float, states: dict | None = None, rules=(ERROR_RATE, DRAWDOWN), **kwargs) -> MarketWatchTrigger:
    until = (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
    return MarketWatchTrigger([r.to_json() for r in rules], states or {}, until, CONN, poll_s=0.25, **kwargs)


def first_event(watch: MarketWatchTrigger) -> dict:
    async def first() -> dict:
        async for event in watch.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first())


def test_every_metric_reads_under_every_rule_by_default_and_a_breach_holds_one_for_its_seconds(platform, sandbox):
    metrics = platform("/v1/metrics/current")["metrics"]
    rules = load_config().market_watch.rules
    assert {r.metric for r in rules} <= set(metrics)
    assert all(metrics[r.metric] < r.above * 0.7 for r in rules), metrics
    sandbox.set_faults("platform_api", metric_breaches=[{"metric": "error_rate_pct", "value": 5, "seconds": 1.5}])
    assert platform("/v1/metrics/current")["metrics"]["error_rate_pct"] == 5
    series = platform("/v1/metrics/series", metric="error_rate_pct", minutes=1, step_s=1)["points"]
    assert len(series) == 60 and series[-1]["value"] == 5 and series[0]["value"] < 1
    time.sleep(1.6)
    assert platform("/v1/metrics/current")["metrics"]["error_rate_pct"] < 1


def test_a_delayed_breach_starts_later(platform, sandbox):
    sandbox.set_faults("platform_api", metric_breaches=[{"metric": "cpu_pct", "value": 95, "seconds": 5, "delay_s": 1}])
    assert platform("/v1/metrics/current")["metrics"]["cpu_pct"] < BASELINES["cpu_pct"] * 1.1
    time.sleep(1.1)
    assert platform("/v1/metrics/current")["metrics"]["cpu_pct"] == 95


def test_a_breach_for_its_duration_fires_once_then_clears_and_the_resumed_trigger_carries_the_clock(sandbox):
    started = datetime.now(UTC)  # before the sandbox starts the breach, so it cannot end before started + 3.5 s
    sandbox.set_faults("platform_api", metric_breaches=[{"metric": "error_rate_pct", "value": 5, "seconds": 3.5}])
    breach = first_event(trigger(30))
    assert breach["status"] == "changed"
    [transition] = breach["transitions"]
    assert (transition["rule"], transition["kind"], transition["value"]) == ("error_rate", "breach", 5)
    confirmed = datetime.fromisoformat(transition["at"])
    since = datetime.fromisoformat(transition["since"])
    assert since - started < timedelta(seconds=0.5)
    assert timedelta(seconds=2) <= confirmed - since < timedelta(seconds=2.5), "confirmed within one poll"
    assert breach["states"]["error_rate"]["breached"] is True

    cleared = first_event(trigger(30, breach["states"]))
    [transition] = cleared["transitions"]
    assert transition["kind"] == "clear" and transition["value"] < 1
    assert timedelta(seconds=3.5) <= datetime.fromisoformat(transition["at"]) - started < timedelta(seconds=4.5)
    assert cleared["states"]["error_rate"] == {"above_since": None, "breached": False}


def test_a_breach_shorter_than_its_duration_fires_nothing_and_the_watch_ends_at_its_end(sandbox):
    sandbox.set_faults("platform_api", metric_breaches=[{"metric": "error_rate_pct", "value": 5, "seconds": 1.2}])
    started = time.monotonic()
    event = first_event(trigger(4))
    assert event["status"] == "closed"
    assert 4 <= time.monotonic() - started < 5
    assert event["states"]["error_rate"] == {"above_since": None, "breached": False}


def test_an_at_once_rule_fires_on_the_first_reading(sandbox):
    sandbox.set_faults("platform_api", metric_breaches=[{"metric": "drawdown_pct", "value": 7.5, "seconds": 5}])
    event = first_event(trigger(10))
    assert [(t["rule"], t["kind"], t["value"]) for t in event["transitions"]] == [("drawdown", "breach", 7.5)]


def test_unreadable_metrics_make_the_watch_blind_and_readable_ones_see_again(sandbox):
    sandbox.set_faults("platform_api", error_rate=1.0)
    event = first_event(trigger(10, blind_after_s=1))
    assert event["status"] == "blind" and "503" in event["error"]
    sandbox.clear_faults("platform_api")
    event = first_event(trigger(10, event["states"], blind=True, blind_after_s=1))
    assert event["status"] == "changed" and event["transitions"] == []


def test_the_trigger_serializes_to_what_resumes_it():
    watch = trigger(60, {"error_rate": {"above_since": None, "breached": True}}, blind=True)
    path, kwargs = watch.serialize()
    assert path == "tradeops.watch.triggers.MarketWatchTrigger"
    assert MarketWatchTrigger(**kwargs).serialize() == (path, kwargs)
