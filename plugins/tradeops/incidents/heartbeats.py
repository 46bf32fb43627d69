"""The escalation engine's heartbeats (``tradeops.engine_heartbeats``): how the health check knows that somebody
will escalate an incident.

Each engine window (one deferred task of ``incident_escalation_engine``, identified by when it ends) upserts its row
every time it wakes, at least every 30 s; :func:`liveness` reads the newest beat with the database's own clock, the
one the beats are written with, so a worker's clock never makes a live engine look dead. A paused engine DAG, a
task that never deferred, or a dead triggerer all look the same here: no recent beat.

The table comes from migration ``004_engine_heartbeat.sql`` (a deploy step, like every migration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tradeops.exceptions import IncidentError
from tradeops.incidents.store import Connection

KEEP = timedelta(days=7)  # the heartbeats of older windows are pruned when a window starts


@dataclass(frozen=True)
class EngineHeartbeat:
    """The newest beat of one engine window (a row of ``tradeops.engine_heartbeats``)."""

    window_until: datetime
    run_id: str | None
    triggerer: str
    started_at: datetime
    last_beat_at: datetime
    beats: int


@dataclass(frozen=True)
class EngineLiveness:
    """What the health check reads: the newest heartbeat of any window (None: the engine never ran against this
    database) and the database's time when it was read."""

    newest: EngineHeartbeat | None
    read_at: datetime


def beat(conn: Connection, window_until: datetime, triggerer: str, run_id: str | None = None) -> None:
    """Record that the engine window ending at ``window_until`` is awake now, in ``triggerer`` (``host:pid``).
    A window resumed by another triggerer (after a crash) keeps its row and names the new triggerer."""
    conn.execute(
        "INSERT INTO tradeops.engine_heartbeats AS h (window_until, run_id, triggerer) VALUES (%s, %s, %s) "
        "ON CONFLICT (window_until) DO UPDATE SET last_beat_at = now(), beats = h.beats + 1, "
        "triggerer = EXCLUDED.triggerer, run_id = coalesce(EXCLUDED.run_id, h.run_id)",
        (window_until, run_id, triggerer),
    )


def prune(conn: Connection, keep: timedelta = KEEP) -> int:
    """Forget the heartbeats of windows that last beat more than ``keep`` ago; returns how many."""
    return conn.execute("DELETE FROM tradeops.engine_heartbeats WHERE last_beat_at < now() - %s", (keep,)).rowcount


def liveness(conn: Connection) -> EngineLiveness:
    """The newest heartbeat, and the database's time now (the clock the beats are written with)."""
    newest = conn.execute("SELECT * FROM tradeops.engine_heartbeats ORDER BY last_beat_at DESC LIMIT 1").fetchone()
    clock = conn.execute("SELECT now() AS read_at").fetchone()
    if clock is None:  # a SELECT of a constant always returns its row
        raise IncidentError("the state database did not say what time it is")
    return EngineLiveness(EngineHeartbeat(**newest) if newest else None, clock["read_at"])
