"""``incident_response``'s trigger form: every value is checked when the run is triggered, before it exists (REST
400, CLI non-zero exit). Who responds is never a field: it is the authenticated user who triggered the run."""

from __future__ import annotations

from airflow.sdk import Param

from tradeops.incidents.forms import NOT_BLANK

# The runbooks implemented (tradeops.incident_response.runbooks): critical and system failure share one.
RESPONSE_TYPES = ("critical", "system_failure", "performance", "security")


def response_form() -> dict[str, Param]:
    """The incident, the runbook's type, dry run (by default), a cache flush (performance only, off by default) and
    why."""
    return {
        "incident_id": Param(type="integer", minimum=1, description="the incident this response answers (# in Slack)"),
        "type": Param(
            type="string",
            enum=list(RESPONSE_TYPES),
            description="the runbook: critical or system_failure (one runbook: stop trading, close positions, "
            "isolate the gateway); performance (diagnostics, ANALYZE, scale degraded services within their max); "
            "security (evidence first, the security team paged, then isolate, stop trading, revoke every token)",
        ),
        "dry_run": Param(
            True, type="boolean", description="true (default): list the plan and change nothing; false: act"
        ),
        "flush_cache": Param(
            False,
            type="boolean",
            description="performance only: also flush the cache keys of the configured prefix (after the approval; "
            "SCAN + UNLINK, never FLUSHALL)",
        ),
        "reason": Param(
            type="string",
            minLength=3,
            maxLength=500,
            pattern=NOT_BLANK,
            description="why (on the incident and in Slack)",
        ),
    }
