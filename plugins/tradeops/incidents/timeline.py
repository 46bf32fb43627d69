"""An incident's audit trail in words, for people: what happened, who did it, and the detail that matters, instead
of the stored JSON. Pure functions of the records (the incidents page renders them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tradeops.incidents.models import EventKind, Incident, IncidentEvent

MESSAGE_KINDS = {
    "page": "first message (the thread)",
    "escalation": "escalation message",
    "war_room": "war room",
    "thread_reply": "thread reply",
    "update_root": "first message, updated",
    "report": "report",
}


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an incident's timeline. ``tone`` groups lines for the eye: ``page`` (someone was paged),
    ``person`` (someone acted), ``warn`` (something went wrong), ``minor`` (a Slack delivery), or ``""``."""

    at: datetime
    since_open: str  # "+2m 05s" from the incident's opening
    what: str
    who: str
    detail: str
    tone: str


def since(start: datetime, moment: datetime) -> str:
    """``moment`` relative to ``start``: ``+45s``, ``+2m 05s``, ``+1h 02m``, ``+2d 03h``."""
    seconds = max(int((moment - start).total_seconds()), 0)
    if seconds < 60:
        return f"+{seconds}s"
    if seconds < 3600:
        return f"+{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"+{seconds // 3600}h {(seconds % 3600) // 60:02d}m"
    return f"+{seconds // 86400}d {(seconds % 86400) // 3600:02d}h"


def duration(delta: timedelta) -> str:
    """A remaining time in words: ``45s``, ``12m``, ``3h 05m``."""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h {(seconds % 3600) // 60:02d}m"


def _when(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


def _level(level: int | None, level_names: Mapping[int, str]) -> str:
    if level is None:
        return ""
    name = level_names.get(level)
    return f"L{level} ({name})" if name else f"L{level}"


def _targets(detail: dict[str, Any]) -> str:
    targets = detail.get("targets") or []
    text = "to " + " ".join(str(t) for t in targets) if targets else ""
    if detail.get("catch_up"):
        text += " · overdue: it fell due while TradeOps was not running"
    return text


def key_values(detail: dict[str, Any]) -> str:
    """Details of an event this module does not know, as ``key: value`` pairs."""
    return "; ".join(f"{key.replace('_', ' ')}: {value}" for key, value in detail.items() if value not in ("", None))


def describe(event: IncidentEvent, level_names: Mapping[int, str] | None = None) -> tuple[str, str, str]:
    """``(what, detail, tone)`` of one audit-trail entry."""
    names = level_names or {}
    d, kind = event.detail or {}, event.kind
    level = _level(event.level, names)
    if kind is EventKind.OPENED:
        source = str(d.get("source", "")).replace("_", " ")
        return "Opened", f"{d.get('severity', '')} {source}: {d.get('summary') or d.get('title', '')}".strip(), ""
    if kind is EventKind.DEDUPLICATED:
        return "Occurred again", f"occurrence {d.get('occurrences', '?')}: {d.get('summary', '')}".rstrip(": "), ""
    if kind is EventKind.SILENCED:
        text = f"until {_when(d.get('until'))}"
        if d.get("silence"):
            text += f" by silence #{d['silence']}"
        return "Silenced", text + (f": {d['reason']}" if d.get("reason") else ""), "person"
    if kind is EventKind.PAGED:
        return f"Paged {level}", _targets(d), "page"
    if kind is EventKind.REPEATED:
        return f"Paged {level} again (cycle {int(d.get('loop', 0)) + 1})", _targets(d), "page"
    if kind is EventKind.ESCALATED:
        return f"Escalated to {level}", _targets(d), "page"
    if kind is EventKind.ACK_STALE:
        who = d.get("acknowledged_by") or "someone"
        text = f"acknowledged by {who}, not resolved in time: paging {level} again"
        return "Acknowledgement went stale", text, "warn"
    if kind is EventKind.SILENCE_ENDED:
        if d.get("still_silenced"):
            text = f"silence #{d.get('silence')} ended early; another silence still covers it"
        elif d.get("ended_early"):
            text = f"silence #{d.get('silence')} ended early: paging again"
        else:
            text = "the silence ran out: paging again"
        return "Silence ended", text, "person" if d.get("ended_early") else ""
    if kind is EventKind.STATUS_UPDATE:
        return "Status update", f"posted in the thread at {level}", "minor"
    if kind is EventKind.NOTIFIED:
        message = MESSAGE_KINDS.get(str(d.get("kind")), str(d.get("kind", "message")))
        where = f" in {event.slack_channel}" if event.slack_channel else ""
        return "Delivered to Slack", f"{message}{where}", "minor"
    if kind is EventKind.DELIVERY_FAILED:
        message = MESSAGE_KINDS.get(str(d.get("kind")), str(d.get("kind", "message")))
        text = f"{message} to {d.get('channel') or 'the thread'}, attempt {d.get('attempt', '?')}: {d.get('error', '')}"
        return "Slack delivery failed (retried)", text, "warn"
    if kind in (EventKind.ACKNOWLEDGED, EventKind.RESOLVED):
        note = str(d.get("note") or "")
        return kind.value.capitalize(), f"note: {note}" if note else "", "person"
    if kind is EventKind.ALERT_RESOLVED:
        return "Alert resolved", f"at {_when(d.get('ended_at'))}; left open: acknowledged, a person resolves it", ""
    if kind is EventKind.RUNBOOK_STEP:
        step = str(d.get("step", "step")).replace("_", " ")
        rest = key_values({key: value for key, value in d.items() if key not in ("step", "summary")})
        text = "; ".join(part for part in (str(d.get("summary") or ""), rest) if part)
        return f"Runbook: {step}", text, "warn" if d.get("failed") else "person"
    if kind is EventKind.RUNBOOK_START:
        text = f"{d.get('dag_id', '?')} run {d.get('run_id', '?')} ({d.get('type', '?')}): {d.get('result', '?')}"
        text += f" ({d['error']})" if d.get("error") else ""
        text += f"; next try in {d['retry_in_s']} s (attempt {d.get('attempt', '?')})" if d.get("retry_in_s") else ""
        return "Runbook started automatically", text, "warn" if d.get("result") == "failed" else ""
    if kind is EventKind.HELD_BACK:
        text = f"{d.get('check', '?')} ({d.get('dag_id', '?')}): {d.get('summary', '')}"
        return "Check held back", text, ""
    return str(kind).replace("_", " ").capitalize(), key_values(d), ""


def timeline(
    incident: Incident, events: list[IncidentEvent], level_names: Mapping[int, str] | None = None
) -> list[TimelineEntry]:
    """The incident's audit trail as lines for people, oldest first."""
    entries = []
    for event in events:
        what, detail, tone = describe(event, level_names)
        entries.append(TimelineEntry(event.at, since(incident.opened_at, event.at), what, event.actor, detail, tone))
    return entries
