"""``incident_response``'s last step, whatever happened: the outcome on the incident and one summary in Slack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.config import load_config
from tradeops.incident_response.operators import CHECK_TASK, RunbookStep
from tradeops.incident_response.runbooks import runbook_of
from tradeops.incidents.models import EventKind, IncidentEvent

if TYPE_CHECKING:
    from airflow.sdk import Context


def outcome(
    states: Mapping[str, str | None],
    dry_run: bool | None,
    response_type: str | None = "critical",
    results: Sequence[str] = (),
) -> str:
    """The run's outcome in words, from its tasks' states and the runbook of its type (pure). ``results``: what its
    changes did, in their own words (their summaries on the trail); without them, the runbook's general words."""
    runbook = runbook_of(response_type)
    if states.get(CHECK_TASK) != "success":
        return "REFUSED, nothing done"
    failed = [step for step in (*runbook.steps, *runbook.actions) if states.get(step) == "failed"]
    if failed:
        done = [step for step in runbook.actions if states.get(step) == "success"]
        return f"FAILED at {', '.join(failed)}" + (f" (done before: {', '.join(done)})" if done else "")
    if dry_run:
        return "dry run: plan listed, nothing changed"
    if any(states.get(step) == "skipped" for step in runbook.gated):
        return f"not approved (rejected or timed out): {runbook.unapproved}"
    skipped = [step for step in runbook.actions if states.get(step) == "skipped"]
    said = f"done: {'; '.join(results)}" if results else runbook.done
    return said + (f" (skipped: {', '.join(skipped)})" if skipped else "")


def action_results(events: Sequence[IncidentEvent], run_id: str, response_type: str | None) -> list[str]:
    """The summaries the runbook's changes wrote on the trail in run ``run_id``, in order (pure)."""
    steps = {action.rsplit(".", 1)[-1] for action in runbook_of(response_type).actions}
    return [
        str(event.detail["summary"])
        for event in events
        if event.kind is EventKind.RUNBOOK_STEP
        and event.detail.get("run_id") == run_id
        and event.detail.get("step") in steps
        and event.detail.get("summary")
    ]


class ResponseReportOperator(RunbookStep, BaseOperator):
    """Whatever happened (``all_done``): the outcome recorded on the incident and one summary (the plan, what was
    done, who, why) through the outbox (key ``incident_response:<dag_id>:<run_id>``: a retry sends nothing twice).
    A refusal (no such incident, or resolved) records nothing on it. Returns ``{outcome, plan}``.

    :param incident_id: the incident. (templated)
    :param reason: why the runbook was started. (templated)
    """

    template_fields: Sequence[str] = ("incident_id", "reason")

    def __init__(self, *, incident_id: int | str, reason: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incidents.operators import triggering_user

        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        started = ti.xcom_pull(task_ids=CHECK_TASK) or {}
        planned = ti.xcom_pull(task_ids=runbook_of(started.get("type")).plan) or {}
        trail = self.incidents.timeline(int(self.incident_id)) if started else []
        results = action_results(trail, ti.run_id, started.get("type"))
        result = outcome(states, started.get("dry_run"), started.get("type"), results)
        user, config = triggering_user(context), load_config()
        lines = [
            f"*Incident response #{self.incident_id} ({started.get('type', '?')}): {result}*",
            f"By {user}: {self.reason}",
        ]
        if planned:
            lines.append(("Plan (not applied):\n" if planned["dry_run"] else "Plan:\n") + planned["text"])
        text = "\n".join(lines)
        self.log.info("%s", text)
        if started:
            failed = result.startswith("FAILED")
            self.record(context, "outcome", {"summary": result, "failed": failed, "plan": planned.get("plan", [])})
        channel = config.slack.channels["alerts" if result.startswith(("FAILED", "REFUSED")) else "ops"]
        self.incidents.send_report(f"incident_response:{ti.dag_id}:{ti.run_id}", channel, text)
        return {"outcome": result, "plan": planned.get("plan", [])}
