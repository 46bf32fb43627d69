"""Operators of the incident machinery: the escalation engine's window, task-level deadlines, check reports, and the
actions people take from the Airflow UI's forms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.checks.operators import CheckReporter
from tradeops.incidents.mixins import WithIncidentService

if TYPE_CHECKING:
    from airflow.sdk import Context


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


class ReportCheckIncidentsOperator(CheckReporter):
    """Open (or add an occurrence to) one incident per failed check, at the check task's severity in the config's
    ``incidents.check_severity`` (else P3), except that checks which could not reach a shared dependency (the
    platform API, the database, ...) are held back under one incident for it; resolve the incident of a check
    that passes again (see :meth:`~tradeops.incidents.service.IncidentService.report_checks`). Runs whatever the
    checks' states (``all_done``): a check that never ran (skipped, or its upstream failed) has nothing to report;
    one that ended without reporting is a failed check.

    The check tasks it lists (:class:`~tradeops.checks.operators.CheckOperator`) report their own confirmed
    failure the moment they see it, so that nobody waits for the other checks and for retries to be paged; this
    task then sees the whole run: it deduplicates into those incidents, opens those a check task could not (the
    state database unreachable at the time, the task killed), and does all the resolving.

    :param check_task_ids: the check tasks of this run whose results (XCom ``check_result``) are reported.

    :return: the ids of the incidents ``opened`` (or updated) and ``resolved``.
    """

    ui_color = "#fde2e2"
    reports_each_check = True

    def execute(self, context: Context) -> dict[str, list[int]]:
        from tradeops.checks.base import RESULT_KEY, CheckResult

        ti = context["ti"]
        pushed = {task_id: ti.xcom_pull(task_ids=task_id, key=RESULT_KEY) for task_id in self.check_task_ids}
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        results = {
            task_id: CheckResult.from_dict(data) if data else CheckResult.missing(task_id)
            for task_id, data in pushed.items()
            if data or states.get(task_id) not in ("skipped", "upstream_failed")
        }
        reported = self.incidents.report_checks(ti.dag_id, ti.run_id, results)
        self.log.info("Incidents opened or updated: %s; resolved: %s", reported["opened"], reported["resolved"])
        return reported


def triggering_user(context: Context) -> str:
    """The authenticated user who triggered the run (Airflow records it on the run; a form never asks for it)."""
    user = getattr(context["dag_run"], "triggering_user_name", None)
    if not user:
        raise AirflowFailException("this run has no triggering user: act from the Airflow UI, API or CLI as yourself")
    return user


class PersonActionOperator(WithIncidentService, BaseOperator):
    """Base of what a person does to incidents from a form. The actor recorded in the audit trail is the
    authenticated user who triggered the run, never a typed name; an action that cannot be done (unknown incident,
    wrong status) fails the task with the reason, without retries.

    :param note: free text for the audit trail, next to the identity. (templated)
    """

    template_fields: Sequence[str] = ("note",)
    ui_color = "#e2f0fd"

    def __init__(self, *, note: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.note = note

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.exceptions import IncidentError

        try:
            return self.act(triggering_user(context), context)
        except IncidentError as err:
            raise AirflowFailException(str(err)) from None

    def act(self, actor: str, context: Context) -> dict[str, Any]:
        raise NotImplementedError


class ChangeIncidentStatusOperator(PersonActionOperator):
    """Acknowledge (stop escalating) or resolve an incident.

    :param incident_id: the incident (``#`` in Slack). (templated)
    :param resolve: resolve instead of acknowledging.
    :param note: free text for the audit trail. (templated)

    :return: the incident and its new status.
    """

    template_fields: Sequence[str] = ("incident_id", "note")

    def __init__(self, *, incident_id: int | str, resolve: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.resolve = resolve

    def act(self, actor: str, context: Context) -> dict[str, Any]:
        operation = self.incidents.resolve if self.resolve else self.incidents.acknowledge
        incident = operation(int(self.incident_id), actor, self.note)
        return {"incident_id": incident.id, "status": incident.status.value, "by": actor}


class SilenceIncidentsOperator(PersonActionOperator):
    """Silence one incident or every incident whose dedup key starts with a prefix, after logging what it matches
    (and which P1 and security incidents it leaves paging) and the silences already in effect.

    :param target: ``#<id>`` for one incident's dedup key, or a dedup-key prefix (literal). (templated)
    :param reason: why (required, recorded). (templated)
    :param minutes: how long; at most the config's ``incidents.max_silence_minutes``. (templated)
    :param covers_critical: also mute P1 and security incidents (a confirmation). (templated)
    :param preview_only: only show what the silence would match. (templated)

    :return: what it matched (muted and still paging) and, unless a preview, the silence's id and end.
    """

    template_fields: Sequence[str] = ("target", "reason", "minutes", "covers_critical", "preview_only")

    def __init__(
        self,
        *,
        target: str,
        reason: str,
        minutes: int | str = 60,
        covers_critical: bool | str = False,
        preview_only: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.reason = reason
        self.minutes = minutes
        self.covers_critical = covers_critical
        self.preview_only = preview_only

    def act(self, actor: str, context: Context) -> dict[str, Any]:
        target = str(self.target)
        matcher = self.incidents.get(int(target[1:])).dedup_key if target.startswith("#") else target
        covers_critical = _flag(self.covers_critical, "include_p1_and_security")
        preview = self.incidents.preview_silence(matcher, covers_critical=covers_critical)
        for silence in self.incidents.active_silences():
            self.log.info(
                "In effect: silence #%s %r until %s by %s", silence.id, silence.matcher, silence.ends_at, silence.author
            )
        for incident in preview.muted:
            self.log.info(
                "Would mute #%s %s %s: %s", incident.id, incident.severity, incident.dedup_key, incident.title
            )
        for incident in preview.still_paging:
            self.log.warning("Keeps paging (%s, not confirmed): #%s %s", incident.severity, incident.id, incident.title)
        result: dict[str, Any] = {
            "matcher": matcher,
            "muted": [i.id for i in preview.muted],
            "still_paging": [i.id for i in preview.still_paging],
        }
        if _flag(self.preview_only, "preview_only"):
            return result
        silence = self.incidents.silence(
            matcher, actor, str(self.reason), timedelta(minutes=int(self.minutes)), covers_critical=covers_critical
        )
        return {**result, "silence_id": silence.id, "until": silence.ends_at.isoformat(), "by": actor}


class EndSilenceOperator(PersonActionOperator):
    """End a silence early; the incidents it held page again at once, unless another silence covers them.

    :param silence_id: the silence. (templated)
    :param note: free text for the log. (templated)

    :return: the silence and who ended it.
    """

    template_fields: Sequence[str] = ("silence_id", "note")

    def __init__(self, *, silence_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.silence_id = silence_id

    def act(self, actor: str, context: Context) -> dict[str, Any]:
        ended = self.incidents.end_silence(int(self.silence_id), actor)
        self.log.info("Silence #%s (%r) ended by %s. %s", ended.id, ended.matcher, actor, self.note)
        return {"silence_id": ended.id, "matcher": ended.matcher, "ended_by": actor}


class OpenIncidentOperator(PersonActionOperator):
    """Page the on-call chain by hand: an incident keyed by the run (``manual:<run id>``).

    :param title: what is wrong. (templated)
    :param severity: P1 to P4, or security. (templated)
    :param note: what you see; the incident's summary. (templated)

    :return: the incident's id.
    """

    template_fields: Sequence[str] = ("title", "severity", "note")

    def __init__(self, *, title: str, severity: str = "P2", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.severity = severity

    def act(self, actor: str, context: Context) -> dict[str, Any]:
        from tradeops.incidents.models import IncidentSource, NewIncident

        opened = self.incidents.open(
            NewIncident(
                dedup_key=f"manual:{context['ti'].run_id}",
                source=IncidentSource.MANUAL,
                severity=self.severity,
                title=self.title,
                summary=self.note,
                actor=actor,
            )
        )
        return {"incident_id": opened.incident.id, "by": actor}


def _flag(value: bool | str, name: str) -> bool:
    """A form's boolean, rendered natively (a bool) or as text."""
    if isinstance(value, bool):
        return value
    if str(value) in ("True", "False"):
        return str(value) == "True"
    raise AirflowFailException(f"{name} must be true or false, got {value!r}")
