"""Operators of the incident machinery: the escalation engine's window, task-level deadlines, check reports, and the
actions people take from the Airflow UI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

ACTIONS = ("acknowledge", "resolve", "silence", "open")


class EscalationEngineOperator(BaseOperator):
    """Run the escalation engine for ``window`` in the triggerer (no worker held). Windows of successive runs
    overlap a little so that escalation never pauses; two engines never act on the same incident at once."""

    ui_color = "#f7e1e1"

    def __init__(self, *, window: timedelta = timedelta(minutes=31), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = window

    def execute(self, context) -> None:
        from tradeops.incidents.triggers import EscalationEngineTrigger

        until = datetime.now(UTC) + self.window
        self.log.info("Escalation engine running in the triggerer until %s", until.isoformat())
        self.defer(trigger=EscalationEngineTrigger(until.isoformat()), method_name="execute_complete",
                   timeout=self.window + timedelta(minutes=5))

    def execute_complete(self, context, event: dict | None = None) -> Any:
        return event


class TaskDeadlineSensor(BaseOperator):
    """A task-level deadline (Airflow only has run-level ones): if ``tasks`` of this run have not all succeeded by
    the market moment ``by`` (e.g. ``{anchor: open, offset: -10m}``), an incident opens at ``severity``. Waits in the
    triggerer; ends as soon as the tasks succeed (or fail: a failure is its own incident)."""

    template_fields: Sequence[str] = ("tasks",)
    ui_color = "#f3e8ff"

    def __init__(self, *, tasks: Sequence[str], by: Any, deadline_name: str, severity: str = "P2",
                 exchange: str = "XNYS", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks = list(tasks)
        self.by = by
        self.deadline_name = deadline_name
        self.severity = severity
        self.exchange = exchange

    def execute(self, context) -> None:
        from tradeops.calendar.deadlines import ExchangeSessionDeadline
        from tradeops.incidents.triggers import TaskDeadlineTrigger

        dag_run = context["dag_run"]
        run_after = dag_run.run_after or datetime.now(UTC)
        deadline = ExchangeSessionDeadline(self.by, self.exchange).due_for(run_after)
        self.log.info("%s must have succeeded by %s (%s)", self.tasks, deadline.isoformat(), self.deadline_name)
        self.defer(trigger=TaskDeadlineTrigger(dag_run.dag_id, dag_run.run_id, self.tasks, deadline.isoformat(),
                                               self.deadline_name, self.severity),
                   method_name="execute_complete")

    def execute_complete(self, context, event: dict | None = None) -> Any:
        return event


class ReportCheckIncidentsOperator(BaseOperator):
    """Open (or add an occurrence to) one incident per failed check, at ``severities`` (a task id's severity; by default
    the config's ``incidents.check_severity``, else P3); resolve the incident of a check that passes again. Runs
    whatever the checks' states (``all_done``)."""

    ui_color = "#fde2e2"

    def __init__(self, *, check_task_ids: Sequence[str], severities: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.check_task_ids = list(check_task_ids)
        self.severities = dict(severities or {})

    def execute(self, context) -> dict:
        from tradeops.checks.base import RESULT_KEY
        from tradeops.incidents import store
        from tradeops.incidents.service import Incidents, check_key

        incidents = Incidents()
        ti = context["ti"]
        pushed = {task_id: ti.xcom_pull(task_ids=task_id, key=RESULT_KEY) for task_id in self.check_task_ids}
        # A check that never ran (skipped, or its upstream failed) has nothing to report; one that crashed before
        # reporting is a failed check.
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        results = {task_id: result or {"status": "fail", "title": task_id,
                                       "summary": "the check ended before reporting (see its log)"}
                   for task_id, result in pushed.items()
                   if result or states.get(task_id) not in ("skipped", "upstream_failed")}
        passed = {check_key(ti.dag_id, task_id): result for task_id, result in results.items()
                  if result["status"] != "fail"}
        with store.connect(incidents.dsn) as conn:
            active = store.find_active(conn, list(passed))
        opened, resolved = [], []
        for task_id, result in results.items():
            if result["status"] == "fail":
                severity = (self.severities.get(task_id)
                            or incidents.config.incidents.check_severity.get(task_id, "P3"))
                found = incidents.check_failed(dag_id=ti.dag_id, run_id=ti.run_id, check=task_id,
                                               title=result["title"], summary=result["summary"], severity=severity)
                opened.append(found.incident["id"])
        for key, incident in active.items():
            result = passed[key]
            incidents.resolve(incident["id"], "tradeops (the check passed again)",
                              note=f"{result['title']}: {result['summary']}")
            resolved.append(incident["id"])
        self.log.info("Incidents opened or updated: %s; resolved: %s", opened, resolved)
        return {"opened": opened, "resolved": resolved}


class IncidentActionOperator(BaseOperator):
    """What a person does from the Airflow UI form: acknowledge, resolve, silence, or open (page) an incident."""

    template_fields: Sequence[str] = ("action", "incident_id", "actor", "reason", "silence_minutes", "matcher",
                                      "severity", "title")
    ui_color = "#e2f0fd"

    def __init__(self, *, action: str, actor: str, reason: str = "", incident_id: int | str | None = None,
                 silence_minutes: int | str = 60, matcher: str = "", severity: str = "P2", title: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.incident_id = incident_id
        self.actor = actor
        self.reason = reason
        self.silence_minutes = silence_minutes
        self.matcher = matcher
        self.severity = severity
        self.title = title

    def execute(self, context) -> dict:
        from tradeops.incidents import store
        from tradeops.incidents.service import Incidents

        if self.action not in ACTIONS:
            raise AirflowFailException(f"action must be one of {ACTIONS}, got {self.action!r}")
        if not str(self.actor).strip():
            raise AirflowFailException("say who you are (actor)")
        incidents = Incidents()
        try:
            if self.action == "open":
                if not self.title.strip():
                    raise AirflowFailException("opening an incident needs a title")
                ti = context["ti"]
                opened = incidents.open(dedup_key=f"manual:{ti.run_id}", source="manual", severity=self.severity,
                                        title=self.title, summary=f"Opened by {self.actor}: {self.reason}",
                                        actor=self.actor)
                return {"incident_id": opened.incident["id"], "action": "opened"}
            if self.action == "silence":
                matcher = self.matcher
                if not matcher and self.incident_id:
                    with store.connect(incidents.dsn) as conn:
                        matcher = store.get(conn, int(self.incident_id))["dedup_key"]
                if not matcher:
                    raise AirflowFailException("a silence needs an incident id or a dedup-key prefix (matcher)")
                row = incidents.silence(matcher, self.actor, self.reason,
                                        timedelta(minutes=int(self.silence_minutes)))
                return {"silence_id": row["id"], "matcher": matcher, "until": row["ends_at"].isoformat()}
            if not self.incident_id:
                raise AirflowFailException(f"{self.action} needs an incident id")
            operation = incidents.acknowledge if self.action == "acknowledge" else incidents.resolve
            row = operation(int(self.incident_id), self.actor, self.reason)
            return {"incident_id": row["id"], "status": row["status"]}
        except store.IncidentError as err:
            raise AirflowFailException(str(err)) from None
