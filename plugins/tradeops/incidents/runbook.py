"""What a response runbook (``incident_response``) writes on its incident: each step on the audit trail (who, when,
what), and its updates in the incident's thread through the outbox, with the war room asked for as the engine asks
for it when the incident's severity has one and it has none yet. Never a direct Slack post."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tradeops.incidents import messages, store
from tradeops.incidents.models import EventKind, Incident, OutboxKind


def record_step(conn: store.Connection, incident_id: int, actor: str, step: str, detail: dict[str, Any]) -> None:
    """One ``runbook_step`` entry: ``{"step": step, **detail}`` by ``actor``, now."""
    store.event(conn, incident_id, EventKind.RUNBOOK_STEP, actor=actor, detail={"step": step, **detail})


def war_room_requested(conn: store.Connection, incident_id: int) -> bool:
    """Whether the incident's war room was ever queued (delivered or not): it is asked for once."""
    row = conn.execute(
        "SELECT 1 FROM tradeops.outbox WHERE incident_id = %s AND kind = %s LIMIT 1",
        (incident_id, OutboxKind.WAR_ROOM.value),
    ).fetchone()
    return row is not None


def queue_update(
    conn: store.Connection,
    incident: Incident,
    text: str,
    *,
    war_room: str | None,
    blocks: list[dict[str, Any]] | None = None,
) -> bool:
    """Queue ``text`` as a reply in the incident's thread, and, when ``war_room`` (a channel name) is given and the
    incident has none and never asked for one, the war room with its first message. Whether the war room was
    queued."""
    store.enqueue(conn, incident.id, OutboxKind.THREAD_REPLY, "", text, in_thread=True, level=incident.level)
    if war_room is None or incident.war_room or war_room_requested(conn, incident.id):
        return False
    headline = messages.headline(incident)
    store.enqueue(conn, incident.id, OutboxKind.WAR_ROOM, war_room, f"War room for {headline}", blocks, level=1)
    return True


def war_room_name(prefix: str, now: datetime, incident_id: int) -> str:
    """The war room's channel, named as the escalation engine names it."""
    return f"{prefix}{now:%Y%m%d}-{incident_id}"
