"""Slack messages for incidents (Block Kit, with a plain-text fallback for notifications)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tradeops.incidents.models import EventKind, Incident, IncidentEvent, IncidentStatus

SEVERITY_EMOJI = {
    "P1": ":rotating_light:",
    "P2": ":red_circle:",
    "P3": ":large_orange_circle:",
    "P4": ":large_yellow_circle:",
    "security": ":shield:",
}
ACK, RESOLVE = "incident_ack", "incident_resolve"
# incident_response's trail entries in order: after each, the step the run is on until the next entry is written.
# The approval writes an entry only when it approves by itself; a person's approval shows as stop_trading's entry.
FINAL_STEP = "outcome"  # written by the report, the last step: the run is over
# incident_response's dagrun_timeout: a run whose last step is older is over even without its outcome (timed out, or
# marked failed by hand before its report ran).
RUNBOOK_OVER_AFTER = timedelta(hours=1)


def _age(incident: Incident, now: datetime) -> str:
    seconds = int((now - incident.opened_at).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _buttons(incident: Incident) -> dict[str, Any]:
    value = str(incident.id)
    return {
        "type": "actions",
        "block_id": f"incident-{value}",
        "elements": [
            {
                "type": "button",
                "action_id": ACK,
                "value": value,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Acknowledge"},
            },
            {"type": "button", "action_id": RESOLVE, "value": value, "text": {"type": "plain_text", "text": "Resolve"}},
        ],
    }


def headline(incident: Incident) -> str:
    return f"{SEVERITY_EMOJI.get(incident.severity, '')} [{incident.severity}] #{incident.id} {incident.title}"


def incident_blocks(
    incident: Incident, *, level_line: str, run_url: str | None, runbook_url: str | None, with_buttons: bool
) -> list[dict[str, Any]]:
    facts = [f"*Status:* {incident.status}", f"*Source:* {incident.source}", f"*Paged:* {level_line}"]
    if incident.occurrences > 1:
        facts.append(f"*Occurrences:* {incident.occurrences}")
    links = []
    if run_url:
        links.append(f"<{run_url}|Airflow run>")
    if runbook_url:
        links.append(f"<{runbook_url}|Runbook step>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"[{incident.severity}] {incident.title}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": incident.summary or incident.title}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": fact} for fact in facts]},
    ]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    if with_buttons:
        blocks.append(_buttons(incident))
    return blocks


def level_line(level: int, name: str, targets: list[str]) -> str:
    return f"L{level} {name}: {' '.join(targets)}"


def escalation_text(
    incident: Incident, level: int, name: str, targets: list[str], now: datetime, catch_up: bool
) -> str:
    late = " (overdue while TradeOps was not running)" if catch_up else ""
    return (
        f":arrow_double_up: Escalated to L{level} {name} {' '.join(t for t in targets if t.startswith('@'))}: "
        f"{headline(incident)}, unacknowledged for {_age(incident, now)}{late}"
    )


def status_text(incident: Incident, name: str, now: datetime) -> str:
    who = f", acknowledged by {incident.acknowledged_by}" if incident.status == IncidentStatus.ACKNOWLEDGED else ""
    return (
        f":hourglass_flowing_sand: Status: #{incident.id} {incident.status}{who}, at L{incident.level} "
        f"({name}) for {_age(incident, now)}, {incident.occurrences} occurrence(s)"
    )


def runbook_progress(events: list[IncidentEvent], now: datetime) -> str | None:
    """While a response runbook runs on the incident (its latest run has ``runbook_step`` entries and no final
    ``outcome`` yet): which steps it has done and how long ago the last one, for the status update (what runs next
    is the run's graph in Airflow, linked from the incident). None otherwise."""
    steps = [event for event in events if event.kind is EventKind.RUNBOOK_STEP]
    if not steps:
        return None
    run_id = steps[-1].detail.get("run_id")
    run = [event for event in steps if event.detail.get("run_id") == run_id]
    done = list(dict.fromkeys(str(event.detail.get("step", "?")) for event in run))
    if FINAL_STEP in done or now - run[-1].at > RUNBOOK_OVER_AFTER:
        return None
    first, last = run[0], run[-1]
    kind = first.detail.get("type")
    since = int((now - last.at).total_seconds()) // 60
    return (
        f":clipboard: Runbook {first.detail.get('dag_id', 'incident_response')}{f' ({kind})' if kind else ''} run "
        f"`{run_id}` by {first.actor}: done {', '.join(step.replace('_', ' ') for step in done)}; "
        f"last at {last.at:%H:%M} UTC ({since}m ago)"
    )
