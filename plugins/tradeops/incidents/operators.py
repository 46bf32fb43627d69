"""Operators of the incident machinery: the escalation engine's window, task-level deadlines, check reports, and the
actions people take from the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.incidents.forms import ACTIONS

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.incidents.service import IncidentService


class EscalationEngineOperator(BaseOperator):
    """Run the escalation engine for ``window`` in the triggerer (no worker held). Windows of successive runs
    overlap a little so that escalation never pauses; two engines never act on the same incident at once.

    :param window: how long the engine runs; the task's trigger times out five minutes after it.

    :return: how many incidents the engine acted on and how many Slack messages it delivered.
    """

    ui_color = "#f7e1e1"

    def __init__(self, *, window: timedelta = timedelta(minutes=31), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window

    def execute(self, context: Context) -> None:
        from tradeops.incidents.triggers import EscalationEngineTrigger

        until = datetime.now(UTC) + self.window
        self.log.info("Escalation engine running in the triggerer until %s", until.isoformat())
        self.defer(
            trigger=EscalationEngineTrigger(until.isoformat()),
            method_name="execute_complete",
            timeout=self.window + timedelta(minutes=5),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return event


class TaskDeadlineWatchOperator(BaseOperator):
    """A task-level deadline (Airflow only has run-level ones): if ``tasks`` of this run have not all succeeded by
    the market moment ``by`` (e.g. ``{anchor: open, offset: -10m}``), an incident opens at ``severity``. Waits in the
    triggerer; ends as soon as the tasks succeed (or fail: a failure is its own incident).

    :param tasks: the task ids of this run that must have succeeded (or been skipped) by the deadline. (templated)
    :param by: the market moment of the deadline: a session anchor (``{anchor: open, offset: -10m}``) or a clock one.
    :param deadline_name: the deadline's name, in the incident's title and dedup key.
    :param severity: the severity of the incident a missed deadline opens.
    :param exchange: the exchange whose calendar places ``by``.

    :return: ``met``, the tasks' states and, when the deadline was missed, the ``late`` tasks and the
        ``incident_id``.
    """

    template_fields: Sequence[str] = ("tasks",)
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        tasks: Sequence[str],
        by: Any,
        deadline_name: str,
        severity: str = "P2",
        exchange: str = "XNYS",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tasks = list(tasks)
        self.by = by
        self.deadline_name = deadline_name
        self.severity = severity
        self.exchange = exchange

    def execute(self, context: Context) -> None:
        from tradeops.calendar.deadlines import ExchangeSessionDeadline
        from tradeops.incidents.triggers import TaskDeadlineTrigger

        dag_run = context["dag_run"]
        run_after = dag_run.run_after or datetime.now(UTC)
        deadline = ExchangeSessionDeadline(self.by, self.exchange).due_for(run_after)
        self.log.info("%s must have succeeded by %s (%s)", self.tasks, deadline.isoformat(), self.deadline_name)
        self.defer(
            trigger=TaskDeadlineTrigger(
                dag_run.dag_id, dag_run.run_id, self.tasks, deadline.isoformat(), self.deadline_name, self.severity
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        return event


class ReportCheckIncidentsOperator(BaseOperator):
    """Open (or add an occurrence to) one incident per failed check, at the check task's severity in the config's
    ``incidents.check_severity`` (else P3); resolve the incident of a check that passes again. Runs whatever the
    checks' states (``all_done``): a check that never ran (skipped, or its upstream failed) has nothing to report;
    one that ended without reporting is a failed check.

    :param check_task_ids: the check tasks of this run whose results (XCom ``check_result``) are reported.

    :return: the ids of the incidents ``opened`` (or updated) and ``resolved``.
    """

    ui_color = "#fde2e2"

    def __init__(self, *, check_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids)

    @cached_property
    def incidents(self) -> IncidentService:
        from tradeops.incidents.service import IncidentService

        return IncidentService()

    def execute(self, context: Context) -> dict[str, list[int]]:
        from tradeops.checks.base import RESULT_KEY, CheckResult, Status
        from tradeops.incidents.service import check_key

        ti = context["ti"]
        pushed = {task_id: ti.xcom_pull(task_ids=task_id, key=RESULT_KEY) for task_id in self.check_task_ids}
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        results = {
            task_id: CheckResult.from_dict(data) if data else CheckResult.missing(task_id)
            for task_id, data in pushed.items()
            if data or states.get(task_id) not in ("skipped", "upstream_failed")
        }
        passed = {
            check_key(ti.dag_id, task_id): result
            for task_id, result in results.items()
            if result.status is not Status.FAIL
        }
        active = self.incidents.active_by_key(list(passed))
        severities = self.incidents.config.incidents.check_severity
        opened, resolved = [], []
        for task_id, result in results.items():
            if result.status is Status.FAIL:
                found = self.incidents.check_failed(
                    dag_id=ti.dag_id,
                    run_id=ti.run_id,
                    check=task_id,
                    title=result.title,
                    summary=result.summary,
                    severity=severities.get(task_id, "P3"),
                )
                opened.append(found.incident.id)
        for key, incident in active.items():
            result = passed[key]
            self.incidents.resolve(
                incident.id, "tradeops (the check passed again)", note=f"{result.title}: {result.summary}"
            )
            resolved.append(incident.id)
        self.log.info("Incidents opened or updated: %s; resolved: %s", opened, resolved)
        return {"opened": opened, "resolved": resolved}


class IncidentActionOperator(BaseOperator):
    """What a person does from the Airflow UI form: acknowledge, resolve, silence, or open (page) an incident.
    Every action is recorded in the incident's audit trail with ``actor``; an action that cannot be done (unknown
    incident, wrong status, incomplete silence) fails the task with the reason, without retries.

    :param action: ``acknowledge``, ``resolve``, ``silence`` or ``open``. (templated)
    :param actor: who acts (recorded). (templated)
    :param reason: why: the note of an acknowledgement or a resolve, the reason of a silence (required), the summary
        of an opened incident. (templated)
    :param incident_id: the incident to acknowledge, resolve or silence (``#`` in Slack). (templated)
    :param silence_minutes: how long a silence lasts. (templated)
    :param matcher: a dedup-key prefix to silence instead of one incident's key. (templated)
    :param severity: the severity of an opened incident. (templated)
    :param title: the title of an opened incident (required to open). (templated)

    :return: the incident and its new status; for a silence, its id, matcher and end; for an opened incident, its id.
    """

    template_fields: Sequence[str] = (
        "action",
        "incident_id",
        "actor",
        "reason",
        "silence_minutes",
        "matcher",
        "severity",
        "title",
    )
    ui_color = "#e2f0fd"

    def __init__(
        self,
        *,
        action: str,
        actor: str,
        reason: str = "",
        incident_id: int | str | None = None,
        silence_minutes: int | str = 60,
        matcher: str = "",
        severity: str = "P2",
        title: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.incident_id = incident_id
        self.actor = actor
        self.reason = reason
        self.silence_minutes = silence_minutes
        self.matcher = matcher
        self.severity = severity
        self.title = title

    @cached_property
    def incidents(self) -> IncidentService:
        from tradeops.incidents.service import IncidentService

        return IncidentService()

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.exceptions import IncidentError

        if self.action not in ACTIONS:
            raise AirflowFailException(f"action must be one of {ACTIONS}, got {self.action!r}")
        if not str(self.actor).strip():
            raise AirflowFailException("say who you are (actor)")
        try:
            return self._act(context)
        except IncidentError as err:
            raise AirflowFailException(str(err)) from None

    def _act(self, context: Context) -> dict[str, Any]:
        from tradeops.incidents.models import IncidentSource, NewIncident

        if self.action == "open":
            if not self.title.strip():
                raise AirflowFailException("opening an incident needs a title")
            opened = self.incidents.open(
                NewIncident(
                    dedup_key=f"manual:{context['ti'].run_id}",
                    source=IncidentSource.MANUAL,
                    severity=self.severity,
                    title=self.title,
                    summary=f"Opened by {self.actor}: {self.reason}",
                    actor=self.actor,
                )
            )
            return {"incident_id": opened.incident.id, "action": "opened"}
        if self.action == "silence":
            matcher = self.matcher
            if not matcher and self.incident_id:
                matcher = self.incidents.get(int(self.incident_id)).dedup_key
            if not matcher:
                raise AirflowFailException("a silence needs an incident id or a dedup-key prefix (matcher)")
            silence = self.incidents.silence(
                matcher, self.actor, self.reason, timedelta(minutes=int(self.silence_minutes))
            )
            return {"silence_id": silence.id, "matcher": matcher, "until": silence.ends_at.isoformat()}
        if not self.incident_id:
            raise AirflowFailException(f"{self.action} needs an incident id")
        operation = self.incidents.acknowledge if self.action == "acknowledge" else self.incidents.resolve
        incident = operation(int(self.incident_id), self.actor, self.reason)
        return {"incident_id": incident.id, "status": incident.status.value}
