"""Incidents in PostgreSQL (schema ``tradeops``): migrations, the one way to open an incident, acknowledgements,
resolutions, the append-only audit trail, and the outbox of Slack messages (silences are in
:mod:`tradeops.incidents.silences`). TradeOps' SQL on its state database is in these two modules; the rest of the
incidents layer works with the records of :mod:`tradeops.incidents.models`.

Opening is a single ``INSERT ... ON CONFLICT`` on a partial unique index (one active incident per dedup key), so any
number of concurrent openers (several schedulers, retries, the same deadline twice) yield one incident and exactly
one of them is told to page. Every change ends with ``NOTIFY tradeops_incidents`` to wake the escalation engine.

The schema is created by the migrations, a deploy step (``python -m tradeops.incidents migrate``), never as a side
effect of using the store: on a database without them, every operation fails with an :class:`IncidentError` that
says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradeops.exceptions import IncidentError
from tradeops.incidents.models import (
    CRITICAL_SEVERITIES,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    NewIncident,
    Opened,
    OutboxKind,
    OutboxMessage,
)

MIGRATIONS = Path(__file__).resolve().parents[3] / "include" / "sql" / "migrations"
MIGRATE_COMMAND = "python -m tradeops.incidents migrate"
CHANNEL = "tradeops_incidents"
Connection = psycopg.Connection[dict[str, Any]]


@contextmanager
def connect(dsn: str) -> Iterator[Connection]:
    """A connection to TradeOps' state database (rows as dicts, timestamps in UTC)."""
    with psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10, options="-c timezone=UTC") as conn:
        try:
            yield conn
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as err:
            if "tradeops" not in str(err):
                raise
            raise IncidentError(
                f"TradeOps' state database is not migrated ({err.diag.message_primary}): run "
                f"`{MIGRATE_COMMAND}` (a deploy step) against it"
            ) from err


@asynccontextmanager
async def listening(dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection that hears every change to an incident (``LISTEN tradeops_incidents``): read ``notifies()``."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        yield conn


def migrate(dsn: str, folder: Path = MIGRATIONS) -> list[str]:
    """Apply the SQL migrations not applied yet, in order, each in its own transaction; returns what ran.
    An advisory lock keeps concurrent migrators (several components starting at once) from racing."""
    applied_now = []
    with connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('tradeops.migrations'))")
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS tradeops")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tradeops.schema_migrations ("
                "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            done = {row["name"] for row in conn.execute("SELECT name FROM tradeops.schema_migrations")}
            for path in sorted(folder.glob("*.sql")):
                if path.name in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO tradeops.schema_migrations (name) VALUES (%s)", (path.name,))
                applied_now.append(path.name)
            conn.commit()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('tradeops.migrations'))")
    return applied_now


def one(cursor: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    row = cursor.fetchone()
    if row is None:
        raise IncidentError("the statement returned no row")
    return row


# --- the audit trail -----------------------------------------------------------------------------------------------


def event(
    conn: Connection,
    incident_id: int,
    kind: EventKind,
    *,
    actor: str = "tradeops",
    level: int | None = None,
    detail: dict[str, Any] | None = None,
    slack_channel: str | None = None,
    slack_ts: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO tradeops.incident_events (incident_id, kind, actor, level, detail, slack_channel, slack_ts) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (incident_id, kind.value, actor, level, Jsonb(detail or {}), slack_channel, slack_ts),
    )


def notify(conn: Connection, incident_id: int) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(incident_id)))


def timeline(conn: Connection, incident_id: int) -> list[IncidentEvent]:
    return timelines(conn, [incident_id]).get(incident_id, [])


def timelines(conn: Connection, incident_ids: list[int]) -> dict[int, list[IncidentEvent]]:
    """The audit trail of each of these incidents, oldest first."""
    trails: dict[int, list[IncidentEvent]] = {incident_id: [] for incident_id in incident_ids}
    for row in conn.execute(
        "SELECT * FROM tradeops.incident_events WHERE incident_id = ANY(%s) ORDER BY id", (incident_ids,)
    ):
        trails[row["incident_id"]].append(IncidentEvent.from_row(row))
    return trails


# --- incidents -----------------------------------------------------------------------------------------------------


def open_incident(conn: Connection, new: NewIncident) -> Opened:
    """Open an incident for ``new.dedup_key``, or record one more occurrence of the active one."""
    with conn.transaction():
        row = one(
            conn.execute(
                """
            INSERT INTO tradeops.incidents AS i (dedup_key, source, severity, title, summary, dag_id, run_id,
                                                 task_id, details, silenced_until, next_action_at)
            VALUES (%(key)s, %(source)s, %(severity)s, %(title)s, %(summary)s, %(dag_id)s, %(run_id)s, %(task_id)s,
                    %(details)s,
                    (SELECT max(ends_at) FROM tradeops.silences
                      WHERE starts_at <= now() AND ends_at > now() AND starts_with(%(key)s, matcher)
                        AND (covers_critical OR %(severity)s <> ALL(%(critical)s))),
                    now())
            ON CONFLICT (dedup_key) WHERE status <> 'resolved' DO UPDATE
               SET occurrences = i.occurrences + 1, last_seen_at = now(),
                   details = i.details || jsonb_build_object('last_occurrence', EXCLUDED.details)
            RETURNING *, (xmax = 0) AS created
            """,
                {
                    "key": new.dedup_key,
                    "source": new.source.value,
                    "severity": new.severity,
                    "title": new.title,
                    "summary": new.summary,
                    "dag_id": new.dag_id,
                    "run_id": new.run_id,
                    "task_id": new.task_id,
                    "details": Jsonb(new.details),
                    "critical": list(CRITICAL_SEVERITIES),
                },
            )
        )
        created = row.pop("created")
        incident = Incident.from_row(row)
        if created:
            event(
                conn,
                incident.id,
                EventKind.OPENED,
                actor=new.actor,
                detail={
                    "source": new.source.value,
                    "severity": new.severity,
                    "title": new.title,
                    "summary": new.summary,
                },
            )
            if incident.silenced_until:
                event(conn, incident.id, EventKind.SILENCED, detail={"until": incident.silenced_until.isoformat()})
        else:
            event(
                conn,
                incident.id,
                EventKind.DEDUPLICATED,
                actor=new.actor,
                detail={"occurrences": incident.occurrences, "summary": new.summary},
            )
        notify(conn, incident.id)
    return Opened(incident, created)


def get(conn: Connection, incident_id: int, *, lock: bool = False) -> Incident:
    row = conn.execute(
        "SELECT * FROM tradeops.incidents WHERE id = %s" + (" FOR UPDATE" if lock else ""), (incident_id,)
    ).fetchone()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    return Incident.from_row(row)


def find_active(conn: Connection, dedup_keys: list[str]) -> dict[str, Incident]:
    """The active incident of each of these keys that has one."""
    rows = conn.execute(
        "SELECT * FROM tradeops.incidents WHERE dedup_key = ANY(%s) AND status <> 'resolved'", (dedup_keys,)
    ).fetchall()
    return {row["dedup_key"]: Incident.from_row(row) for row in rows}


def recent_incidents(
    conn: Connection,
    limit: int = 50,
    *,
    statuses: list[str] | None = None,
    severity: str | None = None,
    dag_id: str | None = None,
) -> list[Incident]:
    """The newest incidents first, of these statuses, severity and DAG (None: any)."""
    rows = conn.execute(
        "SELECT * FROM tradeops.incidents WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s)) "
        "AND (%(severity)s::text IS NULL OR severity = %(severity)s) AND (%(dag)s::text IS NULL OR dag_id = %(dag)s) "
        "ORDER BY opened_at DESC, id DESC LIMIT %(limit)s",
        {"statuses": statuses, "severity": severity, "dag": dag_id, "limit": limit},
    ).fetchall()
    return [Incident.from_row(row) for row in rows]


def incident_dag_ids(conn: Connection) -> list[str]:
    """The DAGs that have incidents, by name."""
    rows = conn.execute("SELECT DISTINCT dag_id FROM tradeops.incidents WHERE dag_id IS NOT NULL ORDER BY 1")
    return [row["dag_id"] for row in rows]


def due_incidents(conn: Connection, now: datetime, limit: int = 100) -> list[Incident]:
    """Active incidents whose next action is due, locked so that two engines never act on the same one."""
    rows = conn.execute(
        "SELECT * FROM tradeops.incidents WHERE status <> 'resolved' AND next_action_at <= %s "
        "ORDER BY next_action_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return [Incident.from_row(row) for row in rows]


def next_wakeup(conn: Connection) -> datetime | None:
    """When the engine next has something to do: an incident's next action, or an outbox message's next attempt."""
    row = one(
        conn.execute(
            "SELECT least((SELECT min(next_action_at) FROM tradeops.incidents WHERE status <> 'resolved'), "
            "(SELECT min(next_attempt_at) FROM tradeops.outbox WHERE delivered_at IS NULL)) AS at"
        )
    )
    return row["at"]


def update_fields(conn: Connection, incident_id: int, **fields: Any) -> None:
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in fields
    )
    conn.execute(
        sql.SQL("UPDATE tradeops.incidents SET {} WHERE id = %(id)s").format(assignments), {**fields, "id": incident_id}
    )


def acknowledge(conn: Connection, incident_id: int, actor: str, note: str = "") -> Incident:
    """open → acknowledged (stops escalation until the acknowledgement goes stale)."""
    return _transition(conn, incident_id, actor, note, allowed=(IncidentStatus.OPEN,), to=IncidentStatus.ACKNOWLEDGED)


def resolve(conn: Connection, incident_id: int, actor: str, note: str = "") -> Incident:
    """open or acknowledged → resolved (the key may open a new incident afterwards)."""
    return _transition(
        conn,
        incident_id,
        actor,
        note,
        allowed=(IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
        to=IncidentStatus.RESOLVED,
    )


_STAMPS = {
    IncidentStatus.ACKNOWLEDGED: ("acknowledged_at", "acknowledged_by", EventKind.ACKNOWLEDGED),
    IncidentStatus.RESOLVED: ("resolved_at", "resolved_by", EventKind.RESOLVED),
}


def _transition(
    conn: Connection,
    incident_id: int,
    actor: str,
    note: str,
    *,
    allowed: tuple[IncidentStatus, ...],
    to: IncidentStatus,
) -> Incident:
    at_column, by_column, kind = _STAMPS[to]
    with conn.transaction():
        incident = get(conn, incident_id, lock=True)
        if incident.status not in allowed:
            already = "already " if incident.status == to else ""
            raise IncidentError(f"incident {incident_id} is {already}{incident.status}, not {' or '.join(allowed)}")
        row = one(
            conn.execute(
                sql.SQL(
                    "UPDATE tradeops.incidents SET status = %s, {} = now(), {} = %s, next_action_at = now() "
                    "WHERE id = %s RETURNING *"
                ).format(sql.Identifier(at_column), sql.Identifier(by_column)),
                (to.value, actor, incident_id),
            )
        )
        event(conn, incident_id, kind, actor=actor, level=incident.level, detail={"note": note})
        notify(conn, incident_id)
    return Incident.from_row(row)


# --- the outbox of Slack messages ----------------------------------------------------------------------------------


def enqueue(
    conn: Connection,
    incident_id: int,
    kind: OutboxKind,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    *,
    in_thread: bool = False,
    level: int | None = None,
) -> None:
    conn.execute(
        "INSERT INTO tradeops.outbox (incident_id, kind, channel, text, blocks, in_thread, level) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (incident_id, kind.value, channel, text, Jsonb(blocks) if blocks is not None else None, in_thread, level),
    )


def enqueue_report(
    conn: Connection, dedup_key: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
) -> int | None:
    """Queue a message of no incident (a run's summary) once per ``dedup_key``: its id, or None when a message
    with that key was queued before (a retried task), which is then not sent again."""
    row = conn.execute(
        "INSERT INTO tradeops.outbox (dedup_key, kind, channel, text, blocks) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING RETURNING id",
        (dedup_key, OutboxKind.REPORT.value, channel, text, Jsonb(blocks) if blocks is not None else None),
    ).fetchone()
    return row["id"] if row else None


def outbox_message_state(conn: Connection, dedup_key: str) -> dict[str, Any] | None:
    """Delivery state of the message queued under ``dedup_key``: attempts, delivered_at, slack_ts, last_error."""
    return conn.execute(
        "SELECT id, attempts, delivered_at, slack_ts, last_error FROM tradeops.outbox WHERE dedup_key = %s",
        (dedup_key,),
    ).fetchone()


def pending_messages(conn: Connection, limit: int = 50) -> list[OutboxMessage]:
    """Undelivered messages whose attempt is due, oldest first, locked (``SKIP LOCKED``: nothing is sent twice)."""
    rows = conn.execute(
        "SELECT o.id, o.incident_id, o.kind, o.channel, o.text, o.blocks, o.in_thread, o.level, o.attempts, "
        "i.slack_channel AS root_channel, i.slack_ts AS root_ts, "
        "(SELECT p.channel FROM tradeops.outbox p WHERE p.incident_id = o.incident_id AND p.kind = %s "
        " ORDER BY p.id LIMIT 1) AS root_channel_name FROM tradeops.outbox o "
        "LEFT JOIN tradeops.incidents i ON i.id = o.incident_id "
        "WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now() "
        "ORDER BY o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED",
        (OutboxKind.PAGE.value, limit),
    ).fetchall()
    return [OutboxMessage.from_row(row) for row in rows]


def mark_delivered(conn: Connection, message_id: int, slack_ts: str | None) -> None:
    conn.execute(
        "UPDATE tradeops.outbox SET delivered_at = now(), slack_ts = %s, attempts = attempts + 1 WHERE id = %s",
        (slack_ts, message_id),
    )


def mark_failed(conn: Connection, message_id: int, error: str, retry_in: timedelta) -> None:
    """Keep the message for another attempt after ``retry_in``, with Slack's error for the operator."""
    conn.execute(
        "UPDATE tradeops.outbox SET attempts = attempts + 1, next_attempt_at = now() + %s, last_error = %s "
        "WHERE id = %s",
        (retry_in, error, message_id),
    )
