"""Checks of the incident machinery itself: is anybody going to escalate an incident?

:class:`EscalationEngineRunning` reads the escalation engine's newest heartbeat (``tradeops.engine_heartbeats``,
written by :class:`~tradeops.incidents.triggers.EscalationEngineTrigger` at least every 30 s) and fails when it is
older than ``incidents.engine_stale_after``, or when there is none: the engine DAG paused, its task not deferred,
or no live triggerer look the same from here, and all of them mean that an incident pages level 1 and then nobody
else. DAG files import this module at parse time: the database is read only when the check collects.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Status
from tradeops.config.durations import format_duration

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.heartbeats import EngineLiveness

ENGINE_DAG = "incident_escalation_engine"


class EscalationEngineRunning(Check["EngineLiveness"]):
    """The escalation engine woke within ``incidents.engine_stale_after`` (read from its heartbeats in the state
    database, with the database's clock)."""

    name = "escalation_engine"
    title = "Escalation engine"
    action = (
        "Nobody is escalating incidents: a new incident still pages level 1 when it opens, but never levels 2-4, "
        "and no re-page, status update or retry of an undelivered Slack message happens. In Airflow, unpause the "
        f"`{ENGINE_DAG}` DAG if it is paused (it must always run) and make sure its latest `escalate` task is "
        "deferred; if it is, check the triggerer (GET /api/v2/monitor/health, the triggerer's log) and restart it. "
        "No heartbeat table: the state database is not migrated, run `python -m tradeops.incidents migrate`."
    )

    def collect(self, config: TradeOpsConfig) -> EngineLiveness:
        from tradeops.connections import postgres_dsn
        from tradeops.incidents import heartbeats, store

        with store.connect(postgres_dsn(config.connections.state_db)) as conn:
            return heartbeats.liveness(conn)

    def evaluate(self, data: EngineLiveness, config: TradeOpsConfig) -> CheckResult:
        stale_after = config.incidents.engine_stale_after
        newest = data.newest
        if newest is None:
            return self.result(
                Status.FAIL,
                f"no heartbeat at all: the escalation engine has never run against this state database "
                f"(is `{ENGINE_DAG}` paused?)",
                stale_after_s=stale_after.total_seconds(),
            )
        age = data.read_at - newest.last_beat_at
        seconds = max(int(age.total_seconds()), 0)  # a beat committed while the check read may be "in the future"
        details: dict[str, Any] = {
            "last_beat_at": newest.last_beat_at.isoformat(),
            "age_s": seconds,
            "stale_after_s": stale_after.total_seconds(),
            "window_until": newest.window_until.isoformat(),
            "run_id": newest.run_id,
            "triggerer": newest.triggerer,
        }
        if age > stale_after:
            return self.result(
                Status.FAIL,
                f"not running: last heartbeat {_ago(seconds)} ago (more than {format_duration(stale_after)}), from "
                f"{newest.triggerer}, run {newest.run_id or 'unknown'}: `{ENGINE_DAG}` paused, its task not "
                f"deferred, or no live triggerer",
                **details,
            )
        return self.result(
            Status.OK,
            f"running: last heartbeat {_ago(seconds)} ago, from {newest.triggerer} "
            f"(window until {newest.window_until:%H:%M} UTC)",
            **details,
        )


def _ago(seconds: int) -> str:
    """``45s``, ``3m12s``, ``2h5m``: how long ago the engine last woke."""
    return format_duration(timedelta(seconds=seconds)) if seconds else "0s"
