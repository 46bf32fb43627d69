"""Incidents in PostgreSQL (schema ``tradeops``): migrations, the one way to open an incident, acknowledgements,
resolutions, silences, the append-only audit trail, and the outbox of Slack messages.

Opening is a single ``INSERT ... ON CONFLICT`` on a partial unique index (one active incident per dedup key), so any
number of concurrent openers (several schedulers, retries, the same deadline twice) yield one incident and exactly
one of them is told to page. Every change ends with ``NOTIFY tradeops_incidents`` to wake the escalation engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

MIGRATIONS = Path(__file__).resolve().parents[3] / "include" / "sql" / "migrations"
CHANNEL = "tradeops_incidents"
ACTIVE = ("open", "acknowledged")


class IncidentError(ValueError):
    pass


def dsn_from_connection(conn) -> str:
    """A libpq DSN from an Airflow Postgres connection."""
    return psycopg.conninfo.make_conninfo(host=conn.host, port=conn.port or 5432, user=conn.login,
                                          password=conn.password, dbname=conn.schema)


def connection_dsn(conn_id: str) -> str:
    """The libpq DSN of the Airflow Postgres connection ``conn_id``."""
    from airflow.sdk import BaseHook

    return dsn_from_connection(BaseHook.get_connection(conn_id))


@contextmanager
def connect(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, row_factory=dict_row, connect_timeout=10, options="-c timezone=UTC") as conn:
        yield conn


def migrate(dsn: str, folder: Path = MIGRATIONS) -> list[str]:
    """Apply the SQL migrations not applied yet, in order, each in its own transaction; returns what ran.
    An advisory lock keeps concurrent migrators (several components starting at once) from racing."""
    applied_now = []
    with connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('tradeops.migrations'))")
        try:
            conn.execute("CREATE SCHEMA IF NOT EXISTS tradeops")
            conn.execute("CREATE TABLE IF NOT EXISTS tradeops.schema_migrations ("
                         "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
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


def event(conn: psycopg.Connection, incident_id: int, kind: str, *, actor: str = "tradeops", level: int | None = None,
          detail: dict | None = None, slack_channel: str | None = None, slack_ts: str | None = None) -> None:
    conn.execute(
        "INSERT INTO tradeops.incident_events (incident_id, kind, actor, level, detail, slack_channel, slack_ts) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (incident_id, kind, actor, level, Jsonb(detail or {}), slack_channel, slack_ts),
    )


def notify(conn: psycopg.Connection, incident_id: int) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(incident_id)))


@dataclass(frozen=True)
class Opened:
    incident: dict
    created: bool  # False: the key already had an active incident, which was updated instead


def open_incident(conn: psycopg.Connection, *, dedup_key: str, source: str, severity: str, title: str,
                  summary: str = "", dag_id: str | None = None, run_id: str | None = None,
                  task_id: str | None = None, details: dict | None = None, actor: str = "tradeops") -> Opened:
    """Open an incident for ``dedup_key``, or record one more occurrence of the active one."""
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO tradeops.incidents AS i (dedup_key, source, severity, title, summary, dag_id, run_id,
                                                 task_id, details, silenced_until, next_action_at)
            VALUES (%(key)s, %(source)s, %(severity)s, %(title)s, %(summary)s, %(dag_id)s, %(run_id)s, %(task_id)s,
                    %(details)s,
                    (SELECT max(ends_at) FROM tradeops.silences
                      WHERE starts_at <= now() AND ends_at > now() AND %(key)s LIKE matcher || '%%'),
                    now())
            ON CONFLICT (dedup_key) WHERE status <> 'resolved' DO UPDATE
               SET occurrences = i.occurrences + 1, last_seen_at = now(),
                   details = i.details || jsonb_build_object('last_occurrence', EXCLUDED.details)
            RETURNING *, (xmax = 0) AS created
            """,
            {"key": dedup_key, "source": source, "severity": severity, "title": title, "summary": summary,
             "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "details": Jsonb(details or {})},
        ).fetchone()
        created = row.pop("created")
        if created:
            event(conn, row["id"], "opened", actor=actor, detail={"source": source, "severity": severity,
                                                                 "title": title, "summary": summary})
            if row["silenced_until"]:
                event(conn, row["id"], "silenced", detail={"until": row["silenced_until"].isoformat()})
        else:
            event(conn, row["id"], "deduplicated", actor=actor,
                  detail={"occurrences": row["occurrences"], "summary": summary})
        notify(conn, row["id"])
    return Opened(row, created)


def get(conn: psycopg.Connection, incident_id: int, *, lock: bool = False) -> dict:
    row = conn.execute("SELECT * FROM tradeops.incidents WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       (incident_id,)).fetchone()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    return row


def find_active(conn: psycopg.Connection, dedup_keys: list[str]) -> dict[str, dict]:
    """The active incident of each of these keys that has one."""
    rows = conn.execute("SELECT * FROM tradeops.incidents WHERE dedup_key = ANY(%s) AND status <> 'resolved'",
                        (dedup_keys,)).fetchall()
    return {row["dedup_key"]: row for row in rows}


def acknowledge(conn: psycopg.Connection, incident_id: int, actor: str, note: str = "") -> dict:
    """open → acknowledged (stops escalation until the acknowledgement goes stale)."""
    return _transition(conn, incident_id, actor, note, allowed=("open",), to="acknowledged")


def resolve(conn: psycopg.Connection, incident_id: int, actor: str, note: str = "") -> dict:
    """open or acknowledged → resolved (the key may open a new incident afterwards)."""
    return _transition(conn, incident_id, actor, note, allowed=ACTIVE, to="resolved")


def _transition(conn: psycopg.Connection, incident_id: int, actor: str, note: str, *, allowed: tuple[str, ...],
                to: str) -> dict:
    stamp = {"acknowledged": ("acknowledged_at", "acknowledged_by"), "resolved": ("resolved_at", "resolved_by")}[to]
    with conn.transaction():
        incident = get(conn, incident_id, lock=True)
        if incident["status"] not in allowed:
            already = "already " if incident["status"] == to else ""
            raise IncidentError(f"incident {incident_id} is {already}{incident['status']}, not {' or '.join(allowed)}")
        row = conn.execute(
            sql.SQL("UPDATE tradeops.incidents SET status = %s, {} = now(), {} = %s, next_action_at = now() "
                    "WHERE id = %s RETURNING *").format(*map(sql.Identifier, stamp)),
            (to, actor, incident_id)).fetchone()
        event(conn, incident_id, to, actor=actor, level=incident["level"], detail={"note": note})
        notify(conn, incident_id)
    return row


def silence(conn: psycopg.Connection, matcher: str, author: str, reason: str, duration: timedelta) -> dict:
    """Mute paging for every incident whose dedup key starts with ``matcher``, now and for ``duration``."""
    if not matcher or not reason.strip() or not author.strip():
        raise IncidentError("a silence needs a matcher, an author and a reason")
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO tradeops.silences (matcher, author, reason, ends_at) VALUES (%s, %s, %s, now() + %s) "
            "RETURNING *", (matcher, author, reason, duration)).fetchone()
        muted = conn.execute(
            "UPDATE tradeops.incidents SET silenced_until = greatest(coalesce(silenced_until, now()), %s) "
            "WHERE status <> 'resolved' AND dedup_key LIKE %s || '%%' RETURNING id", (row["ends_at"], matcher)
        ).fetchall()
        for incident in muted:
            event(conn, incident["id"], "silenced", actor=author,
                  detail={"until": row["ends_at"].isoformat(), "reason": reason, "silence": row["id"]})
            notify(conn, incident["id"])
    return row


def timeline(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    return conn.execute("SELECT * FROM tradeops.incident_events WHERE incident_id = %s ORDER BY id",
                        (incident_id,)).fetchall()


def active_incidents(conn: psycopg.Connection) -> list[dict]:
    return conn.execute("SELECT * FROM tradeops.incidents WHERE status <> 'resolved' ORDER BY opened_at DESC"
                        ).fetchall()


def recent_incidents(conn: psycopg.Connection, limit: int = 50) -> list[dict]:
    return conn.execute("SELECT * FROM tradeops.incidents ORDER BY opened_at DESC LIMIT %s", (limit,)).fetchall()


def enqueue(conn: psycopg.Connection, incident_id: int, kind: str, channel: str, text: str,
            blocks: list[dict] | None = None, *, in_thread: bool = False, level: int | None = None) -> None:
    conn.execute(
        "INSERT INTO tradeops.outbox (incident_id, kind, channel, text, blocks, in_thread, level) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (incident_id, kind, channel, text, Jsonb(blocks) if blocks is not None else None, in_thread, level),
    )


def due_incidents(conn: psycopg.Connection, now: datetime, limit: int = 100) -> list[dict]:
    """Active incidents whose next action is due, locked so that two engines never act on the same one."""
    return conn.execute(
        "SELECT * FROM tradeops.incidents WHERE status <> 'resolved' AND next_action_at <= %s "
        "ORDER BY next_action_at LIMIT %s FOR UPDATE SKIP LOCKED", (now, limit)).fetchall()


def next_wakeup(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(
        "SELECT least((SELECT min(next_action_at) FROM tradeops.incidents WHERE status <> 'resolved'), "
        "(SELECT min(next_attempt_at) FROM tradeops.outbox WHERE delivered_at IS NULL)) AS at").fetchone()
    return row["at"]


def update_fields(conn: psycopg.Connection, incident_id: int, **fields: Any) -> None:
    assignments = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
                                     for name in fields)
    conn.execute(sql.SQL("UPDATE tradeops.incidents SET {} WHERE id = %(id)s").format(assignments),
                 {**fields, "id": incident_id})
