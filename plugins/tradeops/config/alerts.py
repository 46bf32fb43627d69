"""The ``alerts`` section of ``tradeops.yaml``: how Alertmanager's alerts become incidents (the webhook receiver
``/tradeops/alertmanager/webhook``; its credential is the ``connections.alertmanager_webhook`` connection), and which
of them start their response runbook (``incident_response``) by themselves (the webhook; the escalation engine for a
P1 incident whose start failed, or a non-alert P1 incident whose dedup key an entry names)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator, model_validator

from tradeops.config.base import Severity, _Strict


class RunbookEntry(_Strict):
    """One row of the alert -> runbook table, with exactly one of ``match`` (an alert whose labels include every
    label of ``match``, each equal to the exact string) or ``key`` (a non-alert incident whose dedup key is exactly
    that string); no pattern, no wildcard, case counts. It starts the runbook ``type``."""

    match: dict[str, str] | None = Field(
        default=None,
        min_length=1,
        description="labels the alert must carry, each with exactly this value (all of them)",
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        description="the dedup key of a non-alert incident, exactly (e.g. check:daily_health_check:system_status)",
    )
    type: str = Field(description="the incident_response runbook type started (one the DAG's form offers)")
    act_without_approval: bool = Field(
        default=False,
        description="the runbook's destructive steps go ahead without a person's approval (off: they wait for one)",
    )

    @field_validator("type")
    @classmethod
    def _a_runbook_the_form_offers(cls, value: str) -> str:
        from tradeops.incident_response.forms import RESPONSE_TYPES

        if value not in RESPONSE_TYPES:
            raise ValueError(f"{value!r} is not a runbook type of incident_response ({', '.join(RESPONSE_TYPES)})")
        return value

    @model_validator(mode="after")
    def _match_or_key(self) -> RunbookEntry:
        if (self.match is None) == (self.key is None):
            raise ValueError("an entry has exactly one of match (an alert's labels) or key (an incident's dedup key)")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every label of ``match`` present in ``labels`` with the same string (literal); a ``key`` entry never."""
        return self.match is not None and all(k in labels and labels[k] == v for k, v in self.match.items())


class AlertIntake(_Strict):
    severity_label: str = Field(default="severity", description="the alert label that carries its severity")
    severities: dict[str, Severity] = Field(
        default={"critical": "P1", "warning": "P3", "info": "P4"},
        description="the incident severity for each value of the severity label (matched exactly)",
    )
    default_severity: Severity = Field(default="P3", description="for an alert whose severity label is unmapped")
    keep_acknowledged_open: bool = Field(
        default=True,
        description="a resolved alert leaves its incident open once a person acknowledged it (they resolve it)",
    )
    runbooks: list[RunbookEntry] = Field(
        default=[], description="the alert -> runbook table, the first matching entry wins; empty: none starts"
    )

    def runbook_for(self, labels: Mapping[str, str]) -> RunbookEntry | None:
        """The first entry of ``runbooks`` whose ``match`` the labels satisfy, if any."""
        return next((entry for entry in self.runbooks if entry.matches(labels)), None)

    def runbook_for_key(self, dedup_key: str) -> RunbookEntry | None:
        """The first entry of ``runbooks`` whose ``key`` is exactly ``dedup_key``, if any."""
        return next((entry for entry in self.runbooks if entry.key is not None and entry.key == dedup_key), None)
