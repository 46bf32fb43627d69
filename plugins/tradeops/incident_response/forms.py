"""``incident_response``'s trigger form: every value is checked when the run is triggered, before it exists (REST
400, CLI non-zero exit). Who responds is never a field: it is the authenticated user who triggered the run."""

from __future__ import annotations

from airflow.sdk import Param

from tradeops.incidents.forms import NOT_BLANK

# The runbooks implemented: critical and system failure share one. Performance and security come with their own.
RESPONSE_TYPES = ("critical", "system_failure")


def response_form() -> dict[str, Param]:
    """The incident, the runbook's type, dry run (by default) and why."""
    return {
        "incident_id": Param(type="integer", minimum=1, description="the incident this response answers (# in Slack)"),
        "type": Param(
            type="string",
            enum=list(RESPONSE_TYPES),
            description="the runbook: critical or system_failure (one runbook: stop trading, close positions, "
            "isolate the gateway)",
        ),
        "dry_run": Param(
            True, type="boolean", description="true (default): list the plan and change nothing; false: act"
        ),
        "reason": Param(
            type="string",
            minLength=3,
            maxLength=500,
            pattern=NOT_BLANK,
            description="why (on the incident and in Slack)",
        ),
    }
