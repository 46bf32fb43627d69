"""The ``alerts`` section of ``tradeops.yaml``: how Alertmanager's alerts become incidents (the webhook receiver
``/tradeops/alertmanager/webhook``; its credential is the ``connections.alertmanager_webhook`` connection)."""

from __future__ import annotations

from pydantic import Field

from tradeops.config.base import Severity, _Strict


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
