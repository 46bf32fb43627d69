"""The trigger form of ``incident_action``: every value is checked when the run is triggered, before it exists."""

from __future__ import annotations

from airflow.sdk import Param

ACTIONS = ("acknowledge", "resolve", "silence", "open")
SEVERITIES = ("P1", "P2", "P3", "P4", "security")
MAX_SILENCE_MINUTES = 7 * 24 * 60


def incident_action_form() -> dict[str, Param]:
    """Acknowledge, resolve, silence or open an incident."""
    return {
        "action": Param("acknowledge", enum=list(ACTIONS), description="what to do"),
        "incident_id": Param(None, type=["null", "integer"], minimum=1, description="the incident (# in Slack)"),
        "actor": Param(type="string", minLength=2, maxLength=100, description="who you are (recorded)"),
        "reason": Param("", type="string", maxLength=500, description="why (recorded; required to silence)"),
        "silence_minutes": Param(60, type="integer", minimum=1, maximum=MAX_SILENCE_MINUTES),
        "matcher": Param(
            "",
            type="string",
            maxLength=200,
            pattern=r"^[a-z0-9_:.\-]*$",
            description="silence every incident whose key starts with this",
        ),
        "severity": Param("P2", enum=list(SEVERITIES), description="for action=open"),
        "title": Param("", type="string", maxLength=200, description="for action=open"),
    }
