"""The market-hours watch under the real scheduler, triggerer and api-server, in drill mode (``minutes``): an error
rate above 1 % for 80 s (its rule: for 1 min) opens exactly one ``watch:error_rate`` incident within a minute of the
duration being met and resolves it when the rate is back; a 30 s breach later in the same run opens nothing. The
one task waits in the triggerer nearly all the time, and the run is the session's only run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.client import parse

pytestmark = pytest.mark.e2e
DAG = "market_hours_watch"
KEY = "watch:error_rate"
MINUTES = 4


def watch_incidents(stack, since: datetime) -> list[dict]:
    incidents = stack.client._tradeops("/incidents.json?limit=200")["incidents"]
    return [i for i in incidents if i["dedup_key"] == KEY and parse(i["opened_at"]) >= since]


def follow(stack, run_id: str, on_deferred, timeout: float) -> tuple[dict, dict[str, float]]:
    """Poll the watch task every 0.5 s until it ends; seconds spent in each state; ``on_deferred()`` is called the
    first time it is seen deferred."""
    seconds: dict[str, float] = {}
    last, deadline, called = time.monotonic(), time.monotonic() + timeout, False
    while time.monotonic() < deadline:
        ti = stack.client.task_instance(DAG, run_id, "watch")
        now, state = time.monotonic(), ti["state"] or "none"
        seconds[state] = seconds.get(state, 0.0) + now - last
        last = now
        if state == "deferred" and not called:
            on_deferred()
            called = True
        if state in ("success", "failed", "upstream_failed", "skipped"):
            return ti, seconds
        time.sleep(0.5)
    raise TimeoutError(f"watch still {state} after {timeout}s: {seconds}")


def test_a_breach_for_its_duration_opens_one_incident_in_time_and_resolves_it_and_a_shorter_one_opens_nothing(stack):
    """The drill runs beside another watch (as it would beside the session's own): it is not queued behind it, and
    the two page the breach once."""
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)
    assert not [i for i in watch_incidents(stack, datetime(2000, 1, 1, tzinfo=UTC)) if i["status"] != "resolved"]
    test_start = datetime.now(UTC)
    breach_start: list[datetime] = []

    def inject() -> None:
        breach_start.append(datetime.now(UTC))
        stack.sandbox.set_faults(
            "platform_api",
            metric_breaches=[
                {"metric": "error_rate_pct", "value": 5, "seconds": 80},  # its full minute, and more
                {"metric": "error_rate_pct", "value": 5, "seconds": 30, "delay_s": 130},  # half of it: nothing
            ],
        )

    beside = stack.client.trigger(DAG, {"minutes": MINUTES})
    run_id = stack.client.trigger(DAG, {"minutes": MINUTES})
    try:
        ti, seconds = follow(stack, run_id, inject, timeout=MINUTES * 60 + 180)
    finally:
        stack.sandbox.clear_faults("platform_api")
    assert ti["state"] == "success", (ti, seconds)
    if ti["try_number"] > 1:  # a retry is legal (the watch resumes from its incidents) but worth seeing
        print("\nfirst try's log:\n" + stack.client.task_log(DAG, run_id, "watch", 1)[-3000:])

    [incident] = watch_incidents(stack, test_start)
    due = breach_start[0] + timedelta(seconds=60)
    latency = (parse(incident["opened_at"]) - due).total_seconds()
    assert -1 < latency < 60, f"opened {latency:.1f}s after the breach met its duration"
    assert incident["severity"] == "P1" and incident["status"] == "resolved"
    assert incident["resolved_by"] == "market_hours_watch"
    cleared = (parse(incident["resolved_at"]) - (breach_start[0] + timedelta(seconds=80))).total_seconds()
    assert 0 < cleared < 60, f"resolved {cleared:.1f}s after the rate was back"

    result = stack.client.xcom(DAG, run_id, "watch")
    assert result["watched"] is True
    assert stack.client.wait_for_run(DAG, beside, timeout=120)["state"] == "success"
    other = stack.client.xcom(DAG, beside, "watch")
    assert other["opened"] == [KEY], other
    assert sorted(result["resolved"] + other["resolved"]) == [KEY], "resolved once, by whichever watch read it first"
    # The session's own watch also starts if the exchange opened during the test (the scheduler starts it at the open).
    others = [r for r in stack.client.dag_runs(DAG) if r["dag_run_id"] not in (run_id, beside)]
    assert all(r["run_type"] == "scheduled" for r in others) and len(others) <= 1, "one run each, not one per minute"
    assert (result["opened"], result["breached_at_end"]) == ([KEY], [])

    # No worker slot held while nothing happens: the task ran on a worker for its start, the breach, the clear and
    # the end (a few seconds each), and waited in the triggerer the rest of the four minutes.
    running = seconds.get("running", 0.0)
    assert seconds.get("deferred", 0.0) > MINUTES * 60 * 0.75, seconds
    assert running < seconds["deferred"] / 4, seconds
    assert [t["task_id"] for t in stack.client.task_instances(DAG, run_id)] == ["watch"]
    print(f"\nwatch e2e: detection latency {latency:.1f}s after the duration, resolved {cleared:.1f}s after; {seconds}")
