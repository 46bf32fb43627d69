"""pre_market_startup's operators: the session check bound to the run, the gates and their one incident, the
monitoring mode switched through the platform API and read back, and the start-up checklist to Slack.

Gates: a failed account, model or risk gate is one incident, ``startup:<dag_id>`` at ``trading_day.gate_severity``
(later failures add occurrences to it until it is resolved, as a runbook's incident does), opened by the gate's task
the moment its failure is confirmed; :class:`StartupGatesOperator` sees all the gates, opens the incident if no
gate task could, and resolves it once every gate passes again. Nothing downstream of a failed gate runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.base import RESULT_KEY, CheckResult, Status
from tradeops.checks.operators import CheckOperator
from tradeops.incidents.mixins import WithIncidentService
from tradeops.incidents.operators import ReportCheckIncidentsOperator
from tradeops.trading.checks import TradingSession

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.models import Opened
    from tradeops.incidents.service import IncidentService

NOT_RUN_STATES = ("upstream_failed", "skipped", None)
COMPLETE, FAILED = "startup complete", "startup FAILED — trading not started"


def gate_key(dag_id: str) -> str:
    """The dedup key of a DAG's failed-gate incident: one, across runs, until someone (or passing gates) resolves
    it."""
    return f"startup:{dag_id}"


def open_gate_incident(
    incidents: IncidentService, dag_id: str, run_id: str, failed: dict[str, CheckResult], severity: str
) -> Opened:
    """Open the DAG's failed-gate incident (or add this failure to it), naming each failed gate."""
    from tradeops.incidents.models import IncidentSource, NewIncident

    return incidents.open(
        NewIncident(
            dedup_key=gate_key(dag_id),
            source=IncidentSource.CHECK,
            severity=severity,
            title=f"{dag_id}: a startup gate failed, nothing was scaled up",
            summary="; ".join(f"{r.title}: {r.summary}" for r in failed.values())[:2000],
            dag_id=dag_id,
            run_id=run_id,
            task_id=next(iter(failed)),
            details={"gates": sorted(failed), "actions": sorted({r.action for r in failed.values() if r.action})},
        )
    )


def session_day(config: TradeOpsConfig, context: Context) -> date:
    """The session the run prepares: the one open at the run's ``run_after``, else the next one."""
    from tradeops.calendar.sessions import sessions_for

    return sessions_for(config.platform.exchange).current_or_next(context["dag_run"].run_after).day


class SessionCheckOperator(CheckOperator):
    """Run the :class:`~tradeops.trading.checks.TradingSession` check for this run's moment (its ``run_after``:
    the scheduled time, or when a manual run was triggered).

    :param check: the session check to run.
    """

    def __init__(self, *, check: TradingSession, **kwargs: Any) -> None:
        if not isinstance(check, TradingSession):
            raise TypeError(f"check must be a TradingSession, got {check!r}")
        super().__init__(check=check, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        session_check = self.check
        assert isinstance(session_check, TradingSession)
        self.check = session_check.at(context["dag_run"].run_after)
        return super().execute(context)


class GateCheckOperator(CheckOperator):
    """Run one startup gate (a :class:`~tradeops.checks.base.Check`): its confirmed failure opens, at once, the
    DAG's one failed-gate incident at ``trading_day.gate_severity`` (not a check incident of its own), then fails
    the task, so nothing after it is scaled up.

    :param check: the gate's check.
    """

    def report_failure(self, ti: Any, result: CheckResult) -> None:
        from tradeops.config import load_config

        try:
            opened = open_gate_incident(
                self.incidents, ti.dag_id, ti.run_id, {self.task_id: result}, load_config().trading_day.gate_severity
            )
        except Exception:
            self.log.exception("Opening the gate incident failed; the gates task will open it")
            return
        self.log.info("Gate incident #%s %s", opened.incident.id, "opened" if opened.created else "updated")


class StartupGatesOperator(ReportCheckIncidentsOperator):
    """The gates' verdict, whatever their states (``all_done``): when one failed (or ended without reporting), the
    failed-gate incident is open (opened here if no gate task could); when all passed, an open one is resolved.
    Its failure-free end is on purpose: the gate tasks are red in the grid, the tasks after them never run, and the
    run's verdict fails the run; a failure here would page a second time for the same gates.

    :param check_task_ids: the gate tasks (:class:`GateCheckOperator`).

    :return: ``{"passed": bool, "failed": [task ids], "incident": id or None}``.
    """

    ui_color = "#fde2e2"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config

        ti = context["ti"]
        results = {}
        for task_id in self.check_task_ids:
            data = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
            results[task_id] = CheckResult.from_dict(data) if data else CheckResult.missing(task_id)
        failed = {task_id: r for task_id, r in results.items() if r.status is Status.FAIL}
        key = gate_key(ti.dag_id)
        active = self.incidents.active_by_key([key]).get(key)
        if failed:
            if active is None:
                severity = load_config().trading_day.gate_severity
                active = open_gate_incident(self.incidents, ti.dag_id, ti.run_id, failed, severity).incident
            self.log.info("Gates failed: %s; nothing is scaled up (incident #%s)", ", ".join(failed), active.id)
            return {"passed": False, "failed": sorted(failed), "incident": active.id}
        if active is not None:
            self.incidents.resolve(active.id, "tradeops (the startup gates passed)", note=f"run {ti.run_id}")
            self.log.info("Gates passed: incident #%s resolved", active.id)
        return {"passed": True, "failed": [], "incident": None}


class SetMonitoringModeOperator(BaseOperator):
    """Switch the platform monitoring to ``mode`` through the platform API (``PUT /v1/monitoring/mode``, with an
    Idempotency-Key per run and mode, so a retried call applies once) and read it back: the task fails unless the
    platform then reports ``mode``. Already in that mode: nothing changes.

    :param mode: the mode to set (one of the config's ``trading_day.monitoring_modes``). (templated)
    :param reason: why, recorded by the platform.
    :param platform_conn_id: the platform API's connection; defaults to the config's ``connections.platform_api``.

    :return: ``{"mode", "previous", "changed"}``.
    """

    template_fields: Sequence[str] = ("mode",)
    ui_color = "#e3ecfa"

    def __init__(
        self, *, mode: str, reason: str = "pre-market startup", platform_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.reason = reason
        self.platform_conn_id = platform_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.platform.hooks import TradingPlatformHook

        ti = context["ti"]
        hook = TradingPlatformHook(self.platform_conn_id or load_config().connections.platform_api)
        answer = hook.request(
            "PUT",
            "/v1/monitoring/mode",
            json={"mode": self.mode, "reason": f"{self.reason} ({ti.dag_id})"},
            idempotency_key=f"monitoring-mode:{ti.dag_id}:{ti.run_id}:{self.mode}",
        )
        now = hook.get("/v1/monitoring/mode")["mode"]
        if now != self.mode:
            raise AirflowFailException(f"monitoring mode set to {self.mode!r}, but the platform reads back {now!r}")
        self.log.info("Monitoring mode %s (was %s)", now, answer["previous"])
        return {"mode": now, "previous": answer["previous"], "changed": answer["changed"]}


class StartupChecklistOperator(WithIncidentService, BaseOperator):
    """The start-up checklist to Slack, whatever happened (``all_done``): each item with its result, headed
    "startup complete" only when every item passed, else "startup FAILED — trading not started". Sent through the
    incidents' outbox under one key per session and outcome (``startup:<session>``, or
    ``startup:<session>:failed:<the items that did not pass>``): re-running the startup for the same session sends no
    second message of the same outcome, while one that fails differently says so. It gives no verdict
    itself (the DAG's ``verdict`` fails the run).

    :param items: the tasks to list, in order, as ``{task_id: label}``; a check task's result is its own.
    :param channel: the Slack channel; default: the config's ops channel. (templated)

    :return: ``{"session", "complete", "delivered", "items"}``.
    """

    template_fields: Sequence[str] = ("channel",)
    ui_color = "#fdf2d0"

    def __init__(self, *, items: dict[str, str], channel: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.items = dict(items)
        self.channel = channel

    def item_result(self, ti: Any, task_id: str, state: str | None) -> tuple[Status | None, str]:
        """An item's status (None: it never ran) and one line: a check's own summary, else the task's state."""
        pushed = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
        if pushed:
            result = CheckResult.from_dict(pushed)
            return result.status, result.summary
        if state in NOT_RUN_STATES:
            return None, "not run: a step before it failed"
        if state == "success":
            return Status.OK, "done"
        return Status.FAIL, f"{state} (see the task's log)"

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.config import load_config
        from tradeops.reporting.links import run_url

        config = load_config()
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        day = session_day(config, context)
        lines, not_passed, items = [], [], {}
        for task_id, label in self.items.items():
            status, line = self.item_result(ti, task_id, states.get(task_id))
            if status not in (Status.OK, Status.WARN) or states.get(task_id) != "success":
                not_passed.append(task_id)
            emoji = status.emoji if status else ":white_circle:"
            lines.append(f"{emoji} *{label}*: {line}")
            items[task_id] = status.value if status else "not run"
        complete = not not_passed
        headline = f"{'✅' if complete else '🔴'} Pre-market startup {day} ({config.platform.exchange}): "
        headline += COMPLETE if complete else FAILED
        text = "\n".join([headline, *lines, f"<{run_url(ti.dag_id, ti.run_id)}|Airflow run>"])
        key = f"startup:{day}:failed:{'+'.join(not_passed)}" if not_passed else f"startup:{day}"
        channel = self.channel or config.slack.channels["ops"]
        delivered = self.incidents.send_report(key, channel, text)
        self.log.info("%s; checklist %s %s (%s)", headline, "posted to" if delivered else "queued for", channel, key)
        return {"session": day.isoformat(), "complete": complete, "delivered": delivered, "items": items}
