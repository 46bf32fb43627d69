"""
### Incident response

Seed runbooks: *Critical Incident Response* and *System Failure Response* (one runbook for both). Manual trigger,
with a form checked when the run is triggered (a bad value is refused: REST 400, CLI non-zero exit, and no run
exists):

| field | what |
|---|---|
| `incident_id` | the incident this response answers: it must exist and not be resolved |
| `type` | `critical` or `system_failure` (performance and security runbooks come later) |
| `dry_run` | default `true`: list the plan and change nothing |
| `reason` | required, not blank: on the incident and in Slack |

| task | does | when it fails |
|---|---|---|
| `check_incident` | the incident exists and is open; "runbook started" on its trail | refused, nothing done |
| `collect_diagnostics` | pod logs and events, bounded, one `.tar.gz` with its SHA-256, both on the incident | (1) |
| `notify` | an update in the incident's thread (the outbox); a P1 without a war room gets one | (1) |
| `plan` | what would be scaled, closed and isolated; on the incident | (1) |
| `apply` | continues only when this is not a dry run | - |
| `approve` | a person approves the destructive steps (2) | - |
| `lock` | the deployment lease of the trading services (3) | (1) |
| `stop_trading` | the trading services to 0 (counts recorded for the restore) | (1) |
| `close_positions` | close-all, read back until flat (as post-market) | P1 positions incident |
| `isolate_gateway` | the gateway Service to `ClusterIP`, `before` recorded for undo | (1) |
| `report` | always: the outcome on the incident and one Slack summary | - |
| `release_lock` | always: gives back this run's leases | - |
| `verdict` | fails the run when any step failed | - |

1. A failed step fails the run (the verdict) and opens the runbook's incident (`runbook:incident_response`, P1 in
   the config's `incidents.runbook_failure`): a broken response pages. A refusal is not retried.
2. Assigned to no one in particular (anyone allowed to trigger it may answer, in the UI or through the REST API).
   Unanswered for 15 minutes, it counts as rejected: nothing changes and the report says "not approved". Not asked
   when the incident came from an alert whose `alerts.runbooks` entry says `act_without_approval` (read from the
   incident, never the form): it approves at once and says so on the trail.
3. Taken after the approval, so a person's hesitation does not hold other runbooks off the deployments.

Started automatically too: a firing alert that opens a new incident and matches the config's `alerts.runbooks`
table starts a run (id `incident_<id>__alert`, one per incident, not a dry run, triggered by `Alertmanager`); see
`tradeops.incident_response.starts`. The DAG is unpaused when Airflow first sees it (it has no schedule: it only runs
what is triggered); pausing it switches the automatic starts off (the incident's trail says "not started: paused").

Every step writes a `runbook_step` entry on the incident's audit trail with who (the authenticated user who
triggered the run, never a field) and when. There is no trading halt in the platform API: stopping trading is
scaling the trading services (`trading_day.scale_roles`) to 0, as the emergency rollback does; restoring them is
`ScaleDeploymentsOperator(profile="restore")`, un-isolating is setting the recorded type back.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import ShortCircuitOperator

from tradeops.changes.operators import AcquireDeploymentLockOperator, ReleaseDeploymentLockOperator
from tradeops.config import load_config
from tradeops.dagkit import add_run_verdict, manual_dag
from tradeops.incident_response.actions import (
    IsolateGatewayOperator,
    RunbookClosePositionsOperator,
    StopTradingOperator,
)
from tradeops.incident_response.approval import AlertApprovalOperator
from tradeops.incident_response.forms import response_form
from tradeops.incident_response.operators import (
    CheckIncidentOperator,
    ResponsePlanOperator,
    RunbookDiagnosticsOperator,
    RunbookNotifyOperator,
)
from tradeops.incident_response.report import ResponseReportOperator
from tradeops.rollback.forms import platform_namespace, trading_services

CONFIG = load_config()
NAMESPACE = platform_namespace(CONFIG)
TRADING = [name for name in trading_services(CONFIG) if CONFIG.kubernetes.deployment(name).namespace == NAMESPACE]
GATEWAY = next(d.name for d in CONFIG.kubernetes.deployments if d.role == "gateway" and d.namespace == NAMESPACE)
INCIDENT = "{{ params.incident_id }}"
APPROVAL_TIMEOUT = timedelta(minutes=15)

with manual_dag(
    "incident_response",
    owner="trading-ops",
    description="Critical / system failure response: diagnostics, notify, then (approved) stop trading, close, isolate",
    params=response_form(),
    render_template_as_native_obj=True,  # the form's integer and boolean reach the operators as such
    retry_delay=timedelta(seconds=5),
    dagrun_timeout=timedelta(hours=1),
    page_on_failure=True,
    is_paused_upon_creation=False,  # started automatically by alerts (a paused DAG's run would never start)
    tags=["incidents", "kubernetes"],
    doc_md=__doc__,
) as dag:
    check = CheckIncidentOperator(
        task_id="check_incident",
        incident_id=INCIDENT,
        response_type="{{ params.type }}",
        dry_run="{{ params.dry_run }}",
        reason="{{ params.reason }}",
    )
    diagnostics = RunbookDiagnosticsOperator(
        task_id="collect_diagnostics", incident_id=INCIDENT, deployments=[*TRADING, GATEWAY], tail_lines=500
    )
    notify = RunbookNotifyOperator(task_id="notify", incident_id=INCIDENT, reason="{{ params.reason }}")
    plan = ResponsePlanOperator(
        task_id="plan", incident_id=INCIDENT, namespace=NAMESPACE, trading=TRADING, gateway=GATEWAY
    )
    apply = ShortCircuitOperator(
        task_id="apply",
        python_callable=lambda planned: not planned["dry_run"],
        op_args=["{{ ti.xcom_pull(task_ids='plan') }}"],
        ignore_downstream_trigger_rules=False,  # only the approval is skipped; the report and release still run
    )
    approve = AlertApprovalOperator(
        task_id="approve",
        incident_id=INCIDENT,
        subject="Incident #{{ params.incident_id }}: stop trading, close all positions, isolate the gateway?",
        body="Reason: {{ params.reason }}\n\n{{ ti.xcom_pull(task_ids='plan')['text'] }}",
        defaults=["Reject"],  # unanswered in time: not approved
        response_timeout=APPROVAL_TIMEOUT,
    )
    lock = AcquireDeploymentLockOperator(
        task_id="lock", namespace=NAMESPACE, deployments=TRADING, ttl=timedelta(minutes=45)
    )
    stop = StopTradingOperator(task_id="stop_trading", incident_id=INCIDENT, namespace=NAMESPACE, trading=TRADING)
    close = RunbookClosePositionsOperator(
        task_id="close_positions", incident_id=INCIDENT, reason="incident {{ params.incident_id }}: {{ params.reason }}"
    )
    isolate = IsolateGatewayOperator(
        task_id="isolate_gateway", incident_id=INCIDENT, service=GATEWAY, namespace=NAMESPACE
    )
    report = ResponseReportOperator(task_id="report", incident_id=INCIDENT, reason="{{ params.reason }}")
    release = ReleaseDeploymentLockOperator(task_id="release_lock")

    check >> diagnostics >> notify >> plan >> apply >> approve >> lock >> stop >> close >> isolate >> report >> release
    add_run_verdict(dag)
