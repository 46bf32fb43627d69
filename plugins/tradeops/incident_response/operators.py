"""``incident_response``'s steps before any change: check the incident, collect diagnostics, notify, and compute the
plan (what a real run changes; what a dry run lists and stops at). Each writes what it did on the incident's audit
trail (``runbook_step``), by the authenticated user who triggered the run, never a form field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import load_config
from tradeops.exceptions import RunbookRefused
from tradeops.incidents.mixins import WithIncidentService
from tradeops.kubernetes.operators import CollectDiagnosticsOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

CHECK_TASK = "check_incident"
DIAGNOSTICS_TASK = "collect_diagnostics"


class Refused(RunbookRefused, AirflowFailException):
    """The incident does not exist or is resolved: nothing done, not retried, and no runbook incident opened."""


def flag(value: bool | str) -> bool:
    """A form's boolean as rendered (native, or the string of a non-native render)."""
    return value in (True, "True", "true")


class RunbookStep(WithIncidentService):
    """What the runbook's steps share: the incident they answer and the audit-trail entry each writes."""

    incident_id: int | str

    def record_plan(self, context: Context, plan: list[dict[str, Any]], text: str, **extra: Any) -> dict[str, Any]:
        """Log the plan and write it on the incident (a dry run says nothing changed); the plan step's return
        value: ``{plan, text, dry_run, **extra}`` (the ``apply`` step and the report read it)."""
        dry_run = context["ti"].xcom_pull(task_ids=CHECK_TASK)["dry_run"]
        self.log.info(  # type: ignore[attr-defined]  # a mixin of operators
            "Plan (%s):\n%s", "dry run: nothing changes" if dry_run else "after approval", text
        )
        self.record(context, "plan", {"summary": ("dry run, nothing changed: " if dry_run else "") + text})
        return {"plan": plan, "text": text, "dry_run": dry_run, **extra}

    def record(self, context: Context, step: str, detail: dict[str, Any]) -> None:
        """Write ``step`` on the incident's trail, by the run's triggering user, with the run that did it."""
        from tradeops.incidents.operators import triggering_user

        ti = context["ti"]
        run = {"dag_id": ti.dag_id, "run_id": ti.run_id}
        self.incidents.record_step(int(self.incident_id), triggering_user(context), step, {**detail, **run})


class CheckIncidentOperator(RunbookStep, BaseOperator):
    """The incident exists and is not resolved (otherwise the task fails with the reason, not retried, and pages no
    one: a person's input, they see the failed run); records "runbook started" with its type, dry run or not, and
    by whom. Returns ``{incident_id, severity, title, type, dry_run, by}``.

    :param incident_id: the incident. (templated)
    :param response_type: the runbook's type (``critical``, ``system_failure`` or ``performance``). (templated)
    :param dry_run: list the plan only. (templated)
    :param reason: why the runbook was started. (templated)
    """

    template_fields: Sequence[str] = ("incident_id", "response_type", "dry_run_flag", "reason")

    def __init__(
        self, *, incident_id: int | str, response_type: str, dry_run: bool | str, reason: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.response_type = response_type
        self.dry_run_flag = dry_run  # not ``dry_run``: a method of BaseOperator
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.exceptions import IncidentError
        from tradeops.incidents.models import IncidentStatus
        from tradeops.incidents.operators import triggering_user

        user = triggering_user(context)
        try:
            incident = self.incidents.get(int(self.incident_id))
        except IncidentError as err:
            raise Refused(f"nothing done: {err}") from None
        if incident.status is IncidentStatus.RESOLVED:
            raise Refused(
                f"nothing done: incident #{incident.id} was resolved by {incident.resolved_by}; open a new one"
            )
        dry_run = flag(self.dry_run_flag)
        mode = "dry run" if dry_run else "for real"
        summary = f"{self.response_type} runbook started ({mode}) by {user}: {self.reason}"
        self.record(context, "started", {"summary": summary, "type": self.response_type, "dry_run": dry_run})
        self.log.info("Incident #%s (%s %s): %s", incident.id, incident.severity, incident.status, summary)
        return {
            "incident_id": incident.id,
            "severity": incident.severity,
            "title": incident.title,
            "type": self.response_type,
            "dry_run": dry_run,
            "by": user,
        }


class RunbookDiagnosticsOperator(RunbookStep, CollectDiagnosticsOperator):
    """:class:`~tradeops.kubernetes.operators.CollectDiagnosticsOperator` (bounded logs and events, one ``.tar.gz``
    with its SHA-256), then the archive's path and checksum recorded on the incident.

    :param incident_id: the incident. (templated)
    """

    template_fields: Sequence[str] = (*CollectDiagnosticsOperator.template_fields, "incident_id")

    def __init__(self, *, incident_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id

    def execute(self, context: Context) -> dict:
        collected = super().execute(context)
        summary = f"{collected['files']} files, {collected['bytes']} bytes" + " (truncated)" * collected["truncated"]
        detail = {"summary": summary, "archive": collected["archive"], "sha256": collected["sha256"]}
        if collected["errors"]:
            detail["errors"] = len(collected["errors"])
        self.record(context, "diagnostics", detail)
        return collected


class RunbookNotifyOperator(RunbookStep, BaseOperator):
    """A Slack update in the incident's thread through the durable outbox (never a direct post): the runbook, who
    started it, dry run or not, and the diagnostics' archive and checksum. A P1 (a severity with a war room) that has
    none yet gets its war room asked for as the escalation engine does. Returns ``{text, war_room_requested}``.

    :param incident_id: the incident. (templated)
    :param reason: why the runbook was started. (templated)
    :param diagnostics_task: the runbook's diagnostics task (an archive and its checksum, or a ``summary``).
    """

    template_fields: Sequence[str] = ("incident_id", "reason")

    def __init__(
        self, *, incident_id: int | str, reason: str, diagnostics_task: str = DIAGNOSTICS_TASK, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.reason = reason
        self.diagnostics_task = diagnostics_task

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        started = ti.xcom_pull(task_ids=CHECK_TASK)
        diagnostics = ti.xcom_pull(task_ids=self.diagnostics_task) or {}
        mode = "dry run: nothing will change" if started["dry_run"] else "destructive steps wait for an approval"
        lines = [
            f"*Incident response ({started['type']})* started by {started['by']} ({mode}): {self.reason}",
            f"Run `{ti.run_id}` of {ti.dag_id}",
        ]
        if "archive" in diagnostics:
            lines.append(f"Diagnostics: {diagnostics['archive']} (sha256 {diagnostics['sha256']})")
        elif diagnostics:
            lines.append(f"Diagnostics: {diagnostics['summary']}")
        text = "\n".join(lines)
        asked = self.incidents.runbook_update(int(self.incident_id), text)
        self.record(context, "notified", {"summary": "update posted in the thread", "war_room_requested": asked})
        return {"text": text, "war_room_requested": asked}


class ResponsePlanOperator(RunbookStep, BaseOperator):
    """Read what the response would change (the trading services' replicas, the open positions, the gateway
    Service's type) and compute the plan; record it on the incident. Changes nothing, dry run or not. Returns
    ``{plan, text, dry_run, namespace, trading, gateway}``.

    :param incident_id: the incident. (templated)
    :param namespace: the trading services' and the gateway's namespace.
    :param trading: the trading services (``trading_day.scale_roles``).
    :param gateway: the API gateway's Service.
    :param platform_conn_id: the platform API's connection; default: the config's ``connections.platform_api``.
    """

    template_fields: Sequence[str] = ("incident_id",)

    def __init__(
        self,
        *,
        incident_id: int | str,
        namespace: str,
        trading: Sequence[str],
        gateway: str,
        platform_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.namespace = namespace
        self.trading = list(trading)
        self.gateway = gateway
        self.platform_conn_id = platform_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incident_response.plans import render, response_plan
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.platform.hooks import TradingPlatformHook

        config = load_config()
        hook = KubernetesApiHook(config.connections.kubernetes)
        replicas = {name: hook.deployment(self.namespace, name)["spec"]["replicas"] for name in self.trading}
        positions = TradingPlatformHook(self.platform_conn_id or config.connections.platform_api).get("/v1/positions")
        service_type = hook.service(self.namespace, self.gateway)["spec"].get("type")
        plan = response_plan(replicas, positions["positions"], self.gateway, service_type)
        targets = {"namespace": self.namespace, "trading": self.trading, "gateway": self.gateway}
        return self.record_plan(context, plan, render(plan), **targets)
