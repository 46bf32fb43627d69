"""``incident_response``'s ``approve`` step: a person approves the destructive steps, unless the incident came from
an alert (or has a dedup key) the config allows to act without approval (``alerts.runbooks``,
``act_without_approval: true``).

Decided from the incident in TradeOps' database, never from the run's form: its source is ``alert`` (only the
authenticated webhook opens those) and the labels recorded with it match, first match wins, an entry that allows it;
or it is another source's and an entry's ``key`` is exactly its dedup key.
A person's run on such an incident is approved the same way: anyone who may trigger the runbook may approve it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator

from tradeops.incident_response.operators import RunbookStep

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from tradeops.config import TradeOpsConfig
    from tradeops.config.alerts import RunbookEntry
    from tradeops.incidents.models import Incident


def approving_entry(incident: Incident, config: TradeOpsConfig, response_type: str) -> RunbookEntry | None:
    """The ``alerts.runbooks`` entry that lets the incident's runbook act without approval, if any (pure): only for
    the runbook the entry names (a run of another type on the same incident, typed in the form, asks a person)."""
    from tradeops.incident_response.runbooks import RUNBOOKS
    from tradeops.incident_response.starts import runbook_entry

    entry = runbook_entry(incident, config)
    if entry is None or not entry.act_without_approval:
        return None
    return entry if RUNBOOKS.get(response_type) is RUNBOOKS[entry.type] else None


class AlertApprovalOperator(RunbookStep, ApprovalOperator):
    """Waits for a person's Approve or Reject, as :class:`ApprovalOperator` does (a rejection skips what follows),
    except for an incident whose alert may act without approval, in a run of the runbook its entry names: then it
    approves at once, without waiting, and
    writes "approved without a person" with the matching entry on the incident's trail. Returns what the
    ``ApprovalOperator`` returns: ``{chosen_options, params_input, responded_at, responded_by_user}``.

    :param incident_id: the incident the runbook answers. (templated)
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "incident_id")

    def __init__(self, *, incident_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id

    def execute(self, context: Context) -> Any:
        from airflow.providers.standard.triggers.hitl import HITLTriggerEventSuccessPayload

        response_type = str(context["params"]["type"])
        entry = approving_entry(self.incidents.get(int(self.incident_id)), self.incidents.config, response_type)
        if entry is None:
            return super().execute(context)
        matching = f"alerts matching {entry.match}" if entry.match else f"incidents keyed {entry.key!r}"
        summary = f"approved without a person: alerts.runbooks allows {matching} to act"
        self.log.info("%s", summary)
        detail = {"match": entry.match} if entry.match else {"key": entry.key}
        self.record(context, "approval", {"summary": summary, "approved": True, **detail})
        self.hitl_summary_extra.update(approved=True, chosen_options=[self.APPROVE], automatic=True)
        return HITLTriggerEventSuccessPayload(
            chosen_options=[self.APPROVE], params_input={}, responded_at=datetime.now(UTC), responded_by_user=None
        )


def not_a_dry_run(planned: dict[str, Any]) -> bool:
    return not planned["dry_run"]


def approval_gate(
    plan: BaseOperator, *, incident_id: int | str, subject: str, timeout: timedelta
) -> tuple[ShortCircuitOperator, AlertApprovalOperator]:
    """The two steps between a runbook's plan and its changes, in the current task group: ``apply`` goes on only
    when the plan is not a dry run (it skips the approval and what follows it, never the report or the lock's
    release), then ``approve`` shows the plan to a person; unanswered within ``timeout`` it counts as rejected.
    Returns ``(apply, approve)``, chained."""
    plan_xcom = f"ti.xcom_pull(task_ids='{plan.task_id}')"
    apply = ShortCircuitOperator(
        task_id="apply",
        python_callable=not_a_dry_run,
        op_args=[f"{{{{ {plan_xcom} }}}}"],
        ignore_downstream_trigger_rules=False,
    )
    approve = AlertApprovalOperator(
        task_id="approve",
        incident_id=incident_id,
        subject=subject,
        body=f"Reason: {{{{ params.reason }}}}\n\n{{{{ {plan_xcom}['text'] }}}}",
        defaults=["Reject"],
        response_timeout=timeout,
    )
    plan >> apply >> approve
    return apply, approve
