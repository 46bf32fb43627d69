"""The escalation engine's check on fixed data (no I/O; the database's clock is frozen in the data): running when its
newest heartbeat is within ``incidents.engine_stale_after``, not running when it is older or absent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeops.checks.base import Status
from tradeops.incidents.checks import EscalationEngineRunning
from tradeops.incidents.heartbeats import EngineHeartbeat, EngineLiveness

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def liveness(age: timedelta | None) -> EngineLiveness:
    if age is None:
        return EngineLiveness(None, read_at=NOW)
    beat = EngineHeartbeat(
        window_until=NOW + timedelta(minutes=20),
        run_id="scheduled__2026-11-23T12:30:00+00:00",
        triggerer="airflow-triggerer-0:17",
        started_at=NOW - timedelta(minutes=11),
        last_beat_at=NOW - age,
        beats=40,
    )
    return EngineLiveness(beat, read_at=NOW)


def test_the_shipped_config_allows_three_minutes_and_the_check_is_p1(config):
    assert config.incidents.engine_stale_after == timedelta(minutes=3)
    assert config.incidents.check_severity[EscalationEngineRunning.name] == "P1"


@pytest.mark.parametrize("seconds, ago", [(0, "0s"), (29, "29s"), (180, "3m")])
def test_a_recent_heartbeat_is_a_running_engine(config, seconds, ago):
    result = EscalationEngineRunning().evaluate(liveness(timedelta(seconds=seconds)), config)
    assert result.status is Status.OK
    assert result.summary.startswith(f"running: last heartbeat {ago} ago, from airflow-triggerer-0:17")
    assert result.details["triggerer"] == "airflow-triggerer-0:17"
    assert result.action == ""


def test_a_heartbeat_older_than_the_limit_is_an_engine_that_is_not_running(config):
    result = EscalationEngineRunning().evaluate(liveness(timedelta(minutes=3, seconds=1)), config)
    assert result.status is Status.FAIL
    assert result.summary.startswith("not running: last heartbeat 3m1s ago (more than 3m)")
    assert "incident_escalation_engine` paused" in result.summary and "no live triggerer" in result.summary
    assert result.details["age_s"] == 181
    assert "unpause the `incident_escalation_engine` DAG" in result.action
    assert "check the triggerer" in result.action


def test_no_heartbeat_at_all_is_an_engine_that_never_ran(config):
    result = EscalationEngineRunning().evaluate(liveness(None), config)
    assert result.status is Status.FAIL
    assert result.summary.startswith("no heartbeat at all")
    assert "unpause the `incident_escalation_engine` DAG" in result.action


def test_the_limit_comes_from_the_config(config):
    patient = config.model_copy(
        update={"incidents": config.incidents.model_copy(update={"engine_stale_after": timedelta(minutes=10)})}
    )
    five_minutes = liveness(timedelta(minutes=5))
    assert EscalationEngineRunning().evaluate(five_minutes, config).status is Status.FAIL
    assert EscalationEngineRunning().evaluate(five_minutes, patient).status is Status.OK


def test_a_beat_written_while_the_check_read_is_not_in_the_future(config):
    result = EscalationEngineRunning().evaluate(liveness(timedelta(seconds=-0.2)), config)
    assert result.status is Status.OK and result.details["age_s"] == 0
