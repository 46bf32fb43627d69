"""The watch's operator against the sandbox's state database: when it watches (a session, a drill, nothing when the
market is closed), and what it does with its trigger's events (open or resolve ``watch:<rule>`` through the incident
service, then watch on with the carried states)."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from airflow.sdk.exceptions import TaskDeferred

from tradeops.incidents import store
from tradeops.incidents.service import IncidentService
from tradeops.watch.operators import BLIND_KEY, MarketHoursWatchOperator, watch_key
from tradeops.watch.triggers import MarketWatchTrigger

NY = ZoneInfo("America/New_York")


@pytest.fixture
def incidents(sandbox_settings, airflow_connections):
    store.migrate(sandbox_settings["postgres"]["state_dsn"])
    service = IncidentService()
    yield service
    with store.connect(service.dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE dedup_key LIKE 'watch:%%' AND status <> 'resolved'"
        )


def context(run_after: datetime) -> dict:
    run = types.SimpleNamespace(run_after=run_after, dag_id="market_hours_watch", run_id="manual__watch_test")
    ti = types.SimpleNamespace(dag_id="market_hours_watch", run_id="manual__watch_test", task_id="watch")
    return {"dag_run": run, "ti": ti}


def watch(minutes: int = 0) -> MarketHoursWatchOperator:
    return MarketHoursWatchOperator(task_id="watch", minutes=minutes)


def deferred(operator: MarketHoursWatchOperator, run_after: datetime) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        operator.execute(context(run_after))
    return caught.value


def test_a_run_at_the_open_watches_until_that_sessions_close_early_closes_included(incidents):
    opened = datetime(2026, 11, 27, 9, 30, tzinfo=NY)  # the day after Thanksgiving: closes at 13:00
    with time_machine.travel(opened + timedelta(seconds=20), tick=False):
        caught = deferred(watch(), opened)
    trigger = caught.trigger
    assert isinstance(trigger, MarketWatchTrigger)
    assert datetime.fromisoformat(trigger.until) == datetime(2026, 11, 27, 13, 0, tzinfo=NY)
    assert trigger.poll_s == 15 and trigger.platform_conn_id == "tradeops_platform_api"
    assert {r["name"] for r in trigger.rules} >= {"cpu", "memory", "error_rate", "drawdown", "failed_logins"}
    assert all(state == {"above_since": None, "breached": False} for state in trigger.states.values())
    assert caught.method_name == "execute_complete"


@pytest.mark.parametrize(
    ("moment", "next_open"),
    [
        (datetime(2026, 11, 28, 12, 0, tzinfo=NY), "2026-11-30T14:30:00+00:00"),  # a Saturday
        (datetime(2026, 11, 26, 12, 0, tzinfo=NY), "2026-11-27T14:30:00+00:00"),  # Thanksgiving
        (datetime(2026, 11, 27, 13, 30, tzinfo=NY), "2026-11-30T14:30:00+00:00"),  # after an early close
    ],
    ids=["saturday", "thanksgiving", "after-early-close"],
)
def test_a_manual_run_with_no_minutes_when_the_market_is_closed_ends_at_once(incidents, moment, next_open):
    with time_machine.travel(moment, tick=False):
        result = watch().execute(context(moment))
    assert result == {"watched": False, "reason": "market closed", "next_open": next_open}


def test_a_drill_watches_its_minutes_whatever_the_market(incidents):
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=NY)
    with time_machine.travel(saturday, tick=False):
        caught = deferred(watch(minutes=3), saturday)
    assert datetime.fromisoformat(caught.trigger.until) == saturday + timedelta(minutes=3)


def resume(operator: MarketHoursWatchOperator, caught: TaskDeferred, event: dict):
    return operator.execute_complete(context(datetime.now(UTC)), event=event, **(caught.kwargs or {}))


def test_a_breach_opens_its_incident_once_its_clear_resolves_it_and_the_close_reports_both(incidents):
    operator = watch(minutes=5)
    caught = deferred(operator, datetime.now(UTC))
    since, at = datetime.now(UTC) - timedelta(seconds=61), datetime.now(UTC)
    breach = {
        "rule": "error_rate",
        "kind": "breach",
        "metric": "error_rate_pct",
        "value": 5.0,
        "above": 1.0,
        "since": since.isoformat(),
        "at": at.isoformat(),
    }
    states = {"error_rate": {"above_since": since.isoformat(), "breached": True}}
    with pytest.raises(TaskDeferred) as again:
        resume(operator, caught, {"status": "changed", "states": states, "transitions": [breach]})
    assert again.value.trigger.states == states, "the clocks travel to the next trigger"
    incident = incidents.active_by_key([watch_key("error_rate")])[watch_key("error_rate")]
    assert (incident.severity, incident.dag_id, incident.task_id) == ("P1", "market_hours_watch", "watch")
    assert "error_rate_pct > 1 for 1m" in incident.title and "read 5" in incident.summary

    # A second watch (a re-run, or tomorrow's) starts with the rule breached: no second incident.
    assert deferred(watch(minutes=5), datetime.now(UTC)).trigger.states["error_rate"]["breached"] is True

    clear = {**breach, "kind": "clear", "value": 0.02, "at": datetime.now(UTC).isoformat()}
    cleared = {"error_rate": {"above_since": None, "breached": False}}
    with pytest.raises(TaskDeferred) as third:
        resume(operator, again.value, {"status": "changed", "states": cleared, "transitions": [clear]})
    assert watch_key("error_rate") not in incidents.active_by_key([watch_key("error_rate")])
    assert incidents.get(incident.id).resolved_by == "market_hours_watch"

    result = resume(operator, third.value, {"status": "closed", "states": cleared})
    assert result["watched"] is True
    assert (result["opened"], result["resolved"], result["breached_at_end"]) == (
        [watch_key("error_rate")],
        [watch_key("error_rate")],
        [],
    )


def test_a_blind_watch_opens_its_incident_and_resolves_it_when_it_sees_again(incidents):
    operator = watch(minutes=5)
    caught = deferred(operator, datetime.now(UTC))
    blind = {"status": "blind", "states": {}, "error": "HTTP 503", "since": datetime.now(UTC).isoformat()}
    with pytest.raises(TaskDeferred) as again:
        resume(operator, caught, blind)
    assert again.value.trigger.blind is True
    assert BLIND_KEY in incidents.active_by_key([BLIND_KEY])
    with pytest.raises(TaskDeferred) as seeing:
        resume(operator, again.value, {"status": "changed", "states": {}, "transitions": []})
    assert seeing.value.trigger.blind is False
    assert BLIND_KEY not in incidents.active_by_key([BLIND_KEY])


def test_two_watches_reading_the_clear_at_once_resolve_the_incident_once_and_neither_fails(incidents):
    """A drill beside the session's watch: both see the same clear; whichever resolves second finds it resolved."""
    from concurrent.futures import ThreadPoolExecutor

    from tradeops.incidents.models import IncidentSource, NewIncident

    key = watch_key("error_rate")
    watches = [watch(minutes=5), watch(minutes=5)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(10):
            new = NewIncident(dedup_key=key, source=IncidentSource.CHECK, severity="P3", title="t", summary="s")
            opened = incidents.open(new, deliver=False)
            outcomes = list(pool.map(lambda w: w._resolve(key, "back under"), watches))
            assert sorted(outcomes) == [False, True], outcomes
            assert incidents.get(opened.incident.id).status == "resolved"
