"""The trigger forms of the incident DAGs, one small form per action, so each asks only for what its action needs
and every rule is a rule of one field: checked when the run is triggered, before it exists (REST 400, CLI exit 1).
Who acts is never a field: it is the authenticated user who triggered the run."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from tradeops.incidents.models import SEVERITIES, SILENCE_TARGET

NOT_BLANK = r"\S"  # JSON Schema patterns search: at least one character that is not a space
# Python's `$` (which validates the trigger) also matches before a final newline: for an anchored pattern whose
# values never hold whitespace, this forbids it anywhere
NO_WHITESPACE: dict[str, Any] = {"not": {"pattern": r"\s"}}


def _note() -> Param:
    return Param("", type="string", maxLength=500, description="a note for the audit trail (optional)")


def incident_note_form() -> dict[str, Param]:
    """Acknowledge or resolve: which incident, and an optional note."""
    return {
        "incident_id": Param(type="integer", minimum=1, description="the incident (# in Slack)"),
        "note": _note(),
    }


def silence_form(max_minutes: int) -> dict[str, Param]:
    """Silence one incident (``#42``) or every incident whose dedup key starts with a prefix, for at most
    ``max_minutes`` (the config's ``incidents.max_silence_minutes``)."""
    return {
        "target": Param(
            type="string",
            pattern=SILENCE_TARGET,
            **NO_WHITESPACE,
            description="#<incident> for one incident, or a dedup-key prefix such as check:daily_health_check: "
            "(matched literally; never empty)",
        ),
        "reason": Param(type="string", minLength=3, maxLength=500, pattern=NOT_BLANK, description="why (recorded)"),
        "minutes": Param(60, type="integer", minimum=1, maximum=max_minutes, description="how long"),
        "include_p1_and_security": Param(
            False,
            type="boolean",
            description="also mute P1 and security incidents (otherwise they keep paging, even those opened during "
            "the silence)",
        ),
        "preview_only": Param(False, type="boolean", description="only show what the silence would match"),
    }


def end_silence_form() -> dict[str, Param]:
    """End a silence early: the incidents it held page again at once."""
    return {
        "silence_id": Param(type="integer", minimum=1, description="the silence (from the silence run)"),
        "note": _note(),
    }


def open_incident_form() -> dict[str, Param]:
    """Page the on-call chain by hand."""
    return {
        "title": Param(type="string", minLength=3, maxLength=200, pattern=NOT_BLANK, description="what is wrong"),
        "severity": Param("P2", enum=list(SEVERITIES), description="P1 (critical) to P4, or security"),
        "summary": Param("", type="string", maxLength=2000, description="what you see (optional)"),
    }
