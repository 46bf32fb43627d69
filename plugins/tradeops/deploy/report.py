"""``BlueGreenReportOperator``: one message per run saying how the deploy ended; an incident when it failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context


def outcome(states: dict[str, str | None], dry_run: bool) -> tuple[str, bool]:
    """(what happened, whether it is a failure) from the run's task states."""
    failed = sorted(task for task, state in states.items() if state in ("failed", "upstream_failed"))
    if dry_run and not failed:
        return "dry run: plan computed, nothing changed", False
    if states.get("retire_green") == "success":
        return "deployed: green soaked, blue now runs the new version and serves", False
    if states.get("soak") == "failed":
        return "green failed during the soak: switched back to blue, green deleted", True
    if states.get("approve") == "success" and states.get("switch") == "skipped":
        return "rejected: nothing switched, green deleted, blue serving", False
    if failed:
        return f"failed at {', '.join(failed)}: blue keeps serving, green deleted unless it serves", True
    return "ended without switching: blue serving", False


class BlueGreenReportOperator(BaseOperator):
    """However the run ended (``trigger_rule=all_done``): one message (dedup key ``blue_green:<run_id>``, so a re-run
    of this task sends nothing more) with the version, services, who and why; on a failure a P2 incident and the
    task fails (so the run does).

    :param steps: the task ids whose states decide the outcome.
    :param reason: the form's reason (templated).
    :param severity: the incident's severity on failure.
    """

    template_fields: Sequence[str] = ("reason",)
    ui_color = "#e8e8e8"

    def __init__(self, *, steps: Sequence[str], reason: str, severity: str = "P2", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.steps = list(steps)
        self.reason = reason
        self.severity = severity

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incidents.models import IncidentSource, NewIncident
        from tradeops.incidents.service import IncidentService

        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        states = context["ti"].get_task_states(dag_id=dag_id, task_ids=self.steps, run_ids=[run_id]).get(run_id, {})
        plan = context["ti"].xcom_pull(task_ids="plan") or {}
        what, failure = outcome(states, bool(plan.get("dry_run")))
        who = context["dag_run"].triggering_user_name or "unknown"
        services = ", ".join(plan.get("services") or {}) or "?"
        text = (
            f"{'FAILED' if failure else 'Blue-green'} deploy of {plan.get('version', '?')} to {services} "
            f"by {who}: {what}. Reason: {self.reason}"
        )
        config = load_config()
        service = IncidentService(config)
        service.send_report(f"blue_green:{run_id}", config.slack.channels["ops"], text)
        if failure:
            service.open(
                NewIncident(
                    dedup_key=f"blue_green:{run_id}",
                    source=IncidentSource.TASK_FAILURE,
                    severity=self.severity,
                    title=f"Blue-green deploy of {plan.get('version', '?')} failed",
                    summary=text,
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=self.task_id,
                    details={"states": states},
                )
            )
            raise AirflowFailException(text)
        return {"outcome": what, "states": states}
