"""MarketHoursSensor with a frozen clock, its trigger, and the market-anchored deadline reference."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from tradeops.calendar.deadlines import ExchangeSessionDeadline
from tradeops.calendar.sensors import MarketHoursSensor
from tradeops.calendar.triggers import MarketBoundaryTrigger
from tradeops.dagkit import deadline_alerts

NY = ZoneInfo("America/New_York")


def ny(*args) -> datetime:
    return datetime(*args, tzinfo=NY)


def sensor(**kwargs) -> MarketHoursSensor:
    return MarketHoursSensor(task_id="wait", **kwargs)


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


# Monday 2026-11-23 is a normal session (09:30-16:00 ET); Thursday 11-26 is Thanksgiving; Friday 11-27 closes 13:00.


@pytest.mark.parametrize(
    ("now", "until", "offset", "done", "target"),
    [
        (ny(2026, 11, 23, 7, 0), "open", "0m", False, ny(2026, 11, 23, 9, 30)),  # before the open
        (ny(2026, 11, 23, 9, 29, 59), "open", "0m", False, ny(2026, 11, 23, 9, 30)),
        (ny(2026, 11, 23, 9, 30), "open", "0m", True, ny(2026, 11, 23, 9, 30)),  # the exact boundary counts
        (ny(2026, 11, 23, 11, 0), "open", "0m", True, ny(2026, 11, 23, 9, 30)),  # during the session
        (ny(2026, 11, 23, 17, 0), "open", "0m", False, ny(2026, 11, 24, 9, 30)),  # after the close: next session
        (ny(2026, 11, 23, 11, 0), "close", "0m", False, ny(2026, 11, 23, 16, 0)),
        (ny(2026, 11, 23, 16, 0), "close", "0m", True, ny(2026, 11, 23, 16, 0)),
        (ny(2026, 11, 23, 8, 29), "open", "-60m", False, ny(2026, 11, 23, 8, 30)),  # an hour before the open
        (ny(2026, 11, 23, 8, 45), "open", "-60m", True, ny(2026, 11, 23, 8, 30)),
        (ny(2026, 11, 27, 12, 0), "close", "0m", False, ny(2026, 11, 27, 13, 0)),  # early close
        (ny(2026, 11, 27, 13, 30), "close", "30m", True, ny(2026, 11, 27, 13, 30)),
    ],
)
def test_poke_and_target(now, until, offset, done, target):
    with at(now):
        probe = sensor(until=until, offset=offset)
        assert probe.target(datetime.now(UTC)) == target
        assert probe.poke({}) is done


def test_a_holiday_is_skipped_or_waits_for_the_next_session():
    with at(ny(2026, 11, 26, 7, 0)):
        with pytest.raises(AirflowSkipException, match="2026-11-26 is not an XNYS trading day"):
            sensor(until="open").poke({})
        assert sensor(until="open", on_non_trading_day="next_session").target(datetime.now(UTC)) == ny(
            2026, 11, 27, 9, 30
        )
    with at(ny(2026, 11, 28, 12, 0)), pytest.raises(AirflowSkipException):  # a Saturday
        sensor(until="close").poke({})


def test_outside_the_calendar_fails_clearly():
    # The calendar is built from 2015 to five years past the current year, so only the past can fall outside.
    with at(datetime(2010, 6, 1, 12, tzinfo=UTC)), pytest.raises(AirflowFailException, match="outside the XNYS"):
        sensor(until="open").poke({})


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="on_non_trading_day"):
        sensor(on_non_trading_day="maybe")
    with at(ny(2026, 11, 23, 7, 0)), pytest.raises(AirflowFailException, match="until must be"):
        sensor(until="noon").poke({})


def test_deferrable_execute_hands_the_wait_to_the_trigger():
    with at(ny(2026, 11, 23, 7, 0)), pytest.raises(TaskDeferred) as deferred:
        sensor(until="open", offset="-60m").execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, MarketBoundaryTrigger)
    assert trigger.moment == ny(2026, 11, 23, 8, 30)
    assert trigger.end_from_trigger is True
    assert deferred.value.timeout is None


def test_deferrable_execute_returns_at_once_when_already_past():
    with at(ny(2026, 11, 23, 10, 0)):
        result = sensor(until="open").execute({})
    assert result["deferred"] is False


def test_trigger_serializes_and_fires_at_the_boundary():
    moment = datetime.now(UTC) + timedelta(milliseconds=300)
    trigger = MarketBoundaryTrigger(moment, label="XNYS open", end_from_trigger=False)
    path, kwargs = trigger.serialize()
    assert path == "tradeops.calendar.triggers.MarketBoundaryTrigger"
    rebuilt = MarketBoundaryTrigger(**kwargs)
    assert rebuilt.moment == trigger.moment

    async def first_event():
        return await rebuilt.run().__anext__()

    started = time.monotonic()
    event = asyncio.run(first_event())
    fired = datetime.fromisoformat(event.payload["fired_at"])
    assert isinstance(event, TriggerEvent) and not isinstance(event, TaskSuccessEvent)
    assert timedelta(0) <= fired - moment < timedelta(milliseconds=100)
    assert time.monotonic() - started < 1


def test_trigger_ending_the_task_carries_the_timings_as_xcom():
    trigger = MarketBoundaryTrigger(datetime.now(UTC) - timedelta(seconds=1), end_from_trigger=True)

    async def first_event():
        return await trigger.run().__anext__()

    event = asyncio.run(first_event())
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms["return_value"]) == {"boundary", "fired_at", "label"}


# --- market-anchored deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_after", "by", "deadline"),
    [
        # the scheduled health check (due 08:00 ET) must be done by open - 10 min of the same session
        (ny(2026, 11, 23, 8, 0), {"anchor": "open", "offset": "-10m"}, ny(2026, 11, 23, 9, 20)),
        # a manual run after that moment is held to the next session's
        (ny(2026, 11, 23, 12, 0), {"anchor": "open", "offset": "-10m"}, ny(2026, 11, 24, 9, 20)),
        # close + 90 min follows the early close the day after Thanksgiving
        (ny(2026, 11, 27, 13, 30), {"anchor": "close", "offset": "90m"}, ny(2026, 11, 27, 14, 30)),
        # a maintenance window that must end by 04:00 ET on Sunday
        (ny(2026, 3, 8, 3, 0), {"anchor": "clock", "at": "04:00", "days": ["sun"]}, ny(2026, 3, 8, 4, 0)),
    ],
)
def test_deadline_reference(run_after, by, deadline):
    assert ExchangeSessionDeadline(by, "XNYS").due_for(run_after.astimezone(UTC)) == deadline


def test_deadline_reference_survives_airflow_serialization():
    from airflow.serialization.definitions.deadline import SerializedReferenceModels
    from airflow.serialization.encoders import encode_deadline_reference

    reference = ExchangeSessionDeadline({"anchor": "open", "offset": "-10m"}, "XNYS")
    data = encode_deadline_reference(reference)
    assert data["__class_path"] == "tradeops.calendar.deadlines.ExchangeSessionDeadline"
    restored = SerializedReferenceModels.SerializedCustomReference.deserialize_reference(data)
    assert restored.inner_ref.serialize_reference() == reference.serialize_reference()
    assert restored.reference_name == "ExchangeSessionDeadline"


def test_deadline_alerts_from_config_tiers(config):
    alerts = deadline_alerts("daily_health_check", config.deadlines["daily_health_check"], "XNYS")
    assert [a.name for a in alerts] == ["daily_health_check:warn", "daily_health_check:late"]
    assert [a.reference.describe() for a in alerts] == ["30 min before XNYS open", "10 min before XNYS open"]
    # Each tier opens an incident at its severity (the callback runs in the triggerer, so it must be async).
    assert alerts[1].callback.path == "tradeops.incidents.callbacks.deadline_missed"
    assert alerts[1].callback.kwargs == {"dag_id": "daily_health_check", "tier": "late", "severity": "P2"}
    assert all(a.interval == timedelta(0) for a in alerts)
