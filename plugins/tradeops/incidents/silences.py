"""Silences in PostgreSQL: preview, create, list and end early.

A silence mutes paging for the active and future incidents whose dedup key starts with its matcher, literally
(``starts_with``: ``_`` and ``%`` are plain characters). An empty matcher, which would match everything, is refused
here and by the table. P1 and security incidents are muted only by a silence confirmed for them
(``covers_critical``); a silence without it leaves them paging, including those opened while it lasts.
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.exceptions import IncidentError
from tradeops.incidents import store
from tradeops.incidents.models import CRITICAL_SEVERITIES, EventKind, Incident, Silence, SilencePreview
from tradeops.incidents.store import Connection


def _refuse_match_all(matcher: str) -> None:
    if not matcher:
        raise IncidentError("a silence needs a matcher: an empty one would match every incident")


def preview(conn: Connection, matcher: str, *, covers_critical: bool) -> SilencePreview:
    """The active incidents ``matcher`` matches: those a silence would mute, and the P1/security ones it would not."""
    _refuse_match_all(matcher)
    rows = conn.execute(
        "SELECT * FROM tradeops.incidents WHERE status <> 'resolved' AND starts_with(dedup_key, %s) ORDER BY id",
        (matcher,),
    ).fetchall()
    matched = [Incident.from_row(row) for row in rows]
    held = [i for i in matched if i.severity in CRITICAL_SEVERITIES and not covers_critical]
    return SilencePreview(matcher, [i for i in matched if i not in held], held)


def create(
    conn: Connection, matcher: str, author: str, reason: str, duration: timedelta, *, covers_critical: bool = False
) -> Silence:
    """Mute paging for the incidents ``matcher`` matches (P1 and security ones only if ``covers_critical``), now and
    for ``duration``; each muted incident records it on its timeline."""
    _refuse_match_all(matcher)
    if not reason.strip() or not author.strip():
        raise IncidentError("a silence needs an author and a reason")
    with conn.transaction():
        created = Silence(
            **store.one(
                conn.execute(
                    "INSERT INTO tradeops.silences (matcher, author, reason, ends_at, covers_critical) "
                    "VALUES (%s, %s, %s, now() + %s, %s) RETURNING *",
                    (matcher, author, reason, duration, covers_critical),
                )
            )
        )
        muted = conn.execute(
            "UPDATE tradeops.incidents SET silenced_until = greatest(coalesce(silenced_until, now()), %s) "
            "WHERE status <> 'resolved' AND starts_with(dedup_key, %s) AND (%s OR severity <> ALL(%s)) RETURNING id",
            (created.ends_at, matcher, covers_critical, list(CRITICAL_SEVERITIES)),
        ).fetchall()
        for incident in muted:
            store.event(
                conn,
                incident["id"],
                EventKind.SILENCED,
                actor=author,
                detail={"until": created.ends_at.isoformat(), "reason": reason, "silence": created.id},
            )
            store.notify(conn, incident["id"])
    return created


def active(conn: Connection) -> list[Silence]:
    """The silences in effect now, the soonest to end first."""
    rows = conn.execute(
        "SELECT * FROM tradeops.silences WHERE starts_at <= now() AND ends_at > now() ORDER BY ends_at, id"
    ).fetchall()
    return [Silence(**row) for row in rows]


def end(conn: Connection, silence_id: int, actor: str) -> tuple[Silence, list[int]]:
    """End a silence now; the silence and the incidents it released (those no other silence still covers), which
    the engine pages again at once."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE tradeops.silences SET ends_at = now(), ended_at = now(), ended_by = %s "
            "WHERE id = %s AND ends_at > now() RETURNING *",
            (actor, silence_id),
        ).fetchone()
        if row is None:
            raise IncidentError(f"no silence #{silence_id} in effect")
        ended = Silence(**row)
        rows = conn.execute(
            """
            UPDATE tradeops.incidents AS i
               SET silenced_until = coalesce(
                       (SELECT max(s.ends_at) FROM tradeops.silences s
                         WHERE s.starts_at <= now() AND s.ends_at > now() AND starts_with(i.dedup_key, s.matcher)
                           AND (s.covers_critical OR i.severity <> ALL(%(critical)s))),
                       now()),
                   next_action_at = now()
             WHERE status <> 'resolved' AND silenced_until > now() AND starts_with(dedup_key, %(matcher)s)
            RETURNING id, silenced_until <= now() AS released
            """,
            {"matcher": ended.matcher, "critical": list(CRITICAL_SEVERITIES)},
        ).fetchall()
        for incident in rows:
            store.event(
                conn,
                incident["id"],
                EventKind.SILENCE_ENDED,
                actor=actor,
                detail={"silence": ended.id, "ended_early": True, "still_silenced": not incident["released"]},
            )
            store.notify(conn, incident["id"])
    return ended, [incident["id"] for incident in rows if incident["released"]]
