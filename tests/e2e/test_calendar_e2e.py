"""The trading calendar under the real scheduler and triggerer: a deferred market sensor holds no worker and ends
at its boundary; a market-anchored deadline fires at its moment."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devstack.client import parse
from devstack.drill import posted_at
from tradeops.calendar.sensors import MarketHoursSensor
from tradeops.config.durations import format_duration

pytestmark = pytest.mark.e2e


def offset_to(target: datetime) -> str:
    """The sensor offset that puts its boundary at ``target`` (whatever session it picks right now)."""
    boundary = MarketHoursSensor(task_id="probe", until="open", on_non_trading_day="next_session").target(
        datetime.now(UTC)
    )
    return format_duration(timedelta(seconds=round((target - boundary).total_seconds())))


def test_deferred_market_sensor_holds_no_worker_and_ends_at_its_boundary(stack, watch_task):
    stack.client.wait_for_dags({"e2e_market_sensor"})
    stack.client.set_paused("e2e_market_sensor", False)
    wait_s = 40
    boundary = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=wait_s)
    run_id = stack.client.trigger("e2e_market_sensor", {"offset": offset_to(boundary), "until": "open"})

    ti, seconds, first_seen = watch_task(stack, "e2e_market_sensor", run_id, "wait_for_market", timeout=wait_s + 60)

    assert ti["state"] == "success"
    assert seconds.get("running", 0) < 2, f"a worker ran the sensor only briefly: {seconds}"
    waited = boundary - first_seen["deferred"]
    assert waited > timedelta(seconds=15), f"deferred {waited} before the boundary: {seconds}"
    assert seconds["deferred"] > waited.total_seconds() - 1, f"the wait happened in the triggerer: {seconds}"
    ended = parse(ti["end_date"])
    assert timedelta(0) <= ended - boundary < timedelta(seconds=2), f"ended {ended - boundary} after the boundary"
    fired = stack.client.xcom("e2e_market_sensor", run_id, "wait_for_market")
    assert parse(fired["boundary"]) == boundary
    assert parse(fired["fired_at"]) - boundary < timedelta(milliseconds=500)


DEADLINE_DAG = '''
"""
### e2e_market_deadline (tests only)

A run kept busy (by a deferred sensor) past a market-anchored deadline at {at} XNYS local time.
"""

from datetime import datetime

from airflow.sdk import DAG, Param

from tradeops.calendar.sensors import MarketHoursSensor
from tradeops.config.model import DeadlineTier
from tradeops.dagkit import deadline_alerts

with DAG(
    dag_id="e2e_market_deadline",
    description="market-anchored deadline probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={{"offset": Param("0m", type="string")}},
    deadline=deadline_alerts(
        "e2e_market_deadline",
        [DeadlineTier(name="late", by={{"anchor": "clock", "at": "{at}", "when_closed": False}}, severity="P2")],
        "XNYS",
    ),
    default_args={{"owner": "tests", "retries": 0}},
    tags=["tests"],
    doc_md=__doc__,
):
    MarketHoursSensor(task_id="busy_past_the_deadline", until="open", offset="{{{{ params.offset }}}}",
                      on_non_trading_day="next_session")
'''


def test_a_market_anchored_deadline_fires_at_its_moment(stack):
    ny = ZoneInfo("America/New_York")
    # The next whole minute at least 40 s away, on the exchange's clock.
    due = (datetime.now(UTC) + timedelta(seconds=100)).replace(second=0, microsecond=0)
    at = due.astimezone(ny).strftime("%H:%M")
    (stack.dags_folder / "e2e_market_deadline.py").write_text(DEADLINE_DAG.format(at=at))
    stack.client.wait_for_dags({"e2e_market_deadline"}, timeout=60)
    stack.client.set_paused("e2e_market_deadline", False)
    assert datetime.now(UTC) < due - timedelta(seconds=5), "too slow to set up before the deadline"
    run_id = stack.client.trigger("e2e_market_deadline", {"offset": offset_to(due + timedelta(seconds=20))})

    deadline_seen = None
    while datetime.now(UTC) < due + timedelta(seconds=20):
        messages = [m for m in stack.sandbox.slack_messages("#trading-alerts") if "e2e_market_deadline" in m["text"]]
        if messages:
            deadline_seen = messages[0]
            break
        time.sleep(0.2)
    assert deadline_seen is not None, "the deadline callback never posted"
    received = posted_at(deadline_seen)
    assert timedelta(0) <= received - due < timedelta(seconds=5), f"posted {received - due} after the deadline"
    assert "[P2] #" in deadline_seen["text"]
    assert deadline_seen["text"].endswith("e2e_market_deadline missed its 'late' deadline")
    assert f"Run `{run_id}` was still `running` at its 'late' deadline" in str(deadline_seen["blocks"])
    assert stack.client.wait_for_run("e2e_market_deadline", run_id, timeout=120)["state"] == "success"
