"""An incident's report as files, ``reports_dir()/incidents/incident-<id>.md`` and ``.html``, written when it
resolves, without losing one to a failed write or a crash.

Resolving happens in many processes (the api-server's Slack buttons, incidents page and Alertmanager webhook, tasks,
the escalation engine in the triggerer), so the report is owed in PostgreSQL: the resolve's own transaction makes it
due (``tradeops.incident_reports``). The resolver then writes it, best effort, right after its commit; the
escalation engine's loop writes any still due (the write failed: a full or read-only disk; the process died in
between), as it retries the outbox. A writer takes the due row ``FOR UPDATE SKIP LOCKED`` and marks it written in
the same transaction, after both files are in place: a crash in between leaves it due, and rewriting is harmless
(each file is replaced atomically). An incident resolved again (reopened) is due again and its files are replaced.
The report is the trail as of the (last) resolve: what came after it (the resolution's Slack delivery) is left out,
so a report written at once and one written later by the catch-up are the same.
Failed writes are retried later and later (15 s more each time, at most every 15 min), the last error kept.

Incident reports are postmortem material: never pruned automatically (``reports.keep_days`` is for the other kinds).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from tradeops.incidents import store
from tradeops.incidents.models import EventKind, Incident, IncidentEvent
from tradeops.incidents.report import facts, render
from tradeops.reporting.files import reports_dir, write_text_atomic

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

FOLDER = "incidents"
KINDS = ("html", "md")
RETRY_STEP = timedelta(seconds=15)
RETRY_MAX = timedelta(minutes=15)


def retry_after(failures: int) -> timedelta:
    """How long after its ``failures``-th failure the engine's loop tries a piece of work again: 15 s more each
    time, at most every 15 min (report files here, runbook starts in ``incident_response.engine_starts``)."""
    return min(RETRY_STEP * failures, RETRY_MAX)


log = logging.getLogger("airflow.task.tradeops.incidents")


def path(incident_id: int, kind: str) -> Path:
    """Where the report of ``incident_id`` is written, as ``kind`` (``html`` or ``md``)."""
    return reports_dir() / FOLDER / f"incident-{incident_id}.{kind}"


def resolve(conn: store.Connection, incident_id: int, actor: str, note: str = "") -> Incident:
    """:func:`tradeops.incidents.store.resolve`, and its report due, in one transaction."""
    with conn.transaction():
        incident = store.resolve(conn, incident_id, actor, note)
        conn.execute(
            "INSERT INTO tradeops.incident_reports (incident_id) VALUES (%s) ON CONFLICT (incident_id) DO UPDATE "
            "SET due_since = now(), written_at = NULL, attempts = 0, last_error = NULL, next_attempt_at = now()",
            (incident.id,),
        )
    return incident


def write(conn: store.Connection, config: TradeOpsConfig, incident_id: int) -> bool:
    """Write the report of ``incident_id`` if it is due and no other process is writing it; whether it was written.
    A failed write is recorded (due later) and logged, never raised; a database error is raised (it stays due)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT attempts FROM tradeops.incident_reports WHERE incident_id = %s AND written_at IS NULL "
            "FOR UPDATE SKIP LOCKED",
            (incident_id,),
        ).fetchone()
        return row is not None and _write_claimed(conn, config, incident_id, row["attempts"])


def write_due(conn: store.Connection, config: TradeOpsConfig, limit: int = 20) -> int:
    """Write up to ``limit`` reports still due, the longest due first, each tried once; how many were written."""
    written = 0
    tried: list[int] = []
    for _ in range(limit):
        with conn.transaction():
            row = conn.execute(
                "SELECT incident_id, attempts FROM tradeops.incident_reports WHERE written_at IS NULL "
                "AND next_attempt_at <= now() AND incident_id <> ALL(%s) ORDER BY next_attempt_at, incident_id "
                "LIMIT 1 FOR UPDATE SKIP LOCKED",
                (tried,),
            ).fetchone()
            if row is None:
                break
            tried.append(row["incident_id"])
            written += _write_claimed(conn, config, row["incident_id"], row["attempts"])
    return written


def _write_claimed(conn: store.Connection, config: TradeOpsConfig, incident_id: int, attempts: int) -> bool:
    try:
        data = facts(store.get(conn, incident_id), through_last_resolve(store.timeline(conn, incident_id)), config)
        for kind in KINDS:
            write_text_atomic(path(incident_id, kind), render(kind, data))
    except psycopg.Error:
        raise
    except Exception as err:  # the disk, a template: the resolve stands, the report stays due
        error = f"{type(err).__name__}: {err}"[:1000]
        conn.execute(
            "UPDATE tradeops.incident_reports SET attempts = attempts + 1, last_error = %s, "
            "next_attempt_at = now() + %s WHERE incident_id = %s",
            (error, retry_after(attempts + 1), incident_id),
        )
        log.warning("The report of incident #%s is not written (%s); it stays due", incident_id, error)
        return False
    conn.execute(
        "UPDATE tradeops.incident_reports SET written_at = now(), last_error = NULL WHERE incident_id = %s",
        (incident_id,),
    )
    log.info("Report of incident #%s written to %s", incident_id, path(incident_id, "html").parent)
    return True


def through_last_resolve(events: list[IncidentEvent]) -> list[IncidentEvent]:
    """The audit trail up to and including its last ``resolved`` entry (all of it when there is none)."""
    last = max((i for i, event in enumerate(events) if event.kind is EventKind.RESOLVED), default=len(events) - 1)
    return events[: last + 1]


def saved(conn: store.Connection, incident_id: int, kind: str) -> str | None:
    """The report of ``incident_id`` as written for its last resolve, or None (not resolved, not written yet, or
    its files are not on this machine)."""
    row = conn.execute(
        "SELECT 1 FROM tradeops.incident_reports WHERE incident_id = %s AND written_at IS NOT NULL", (incident_id,)
    ).fetchone()
    try:
        return path(incident_id, kind).read_text(encoding="utf-8") if row else None
    except OSError:
        return None
