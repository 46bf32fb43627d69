"""
### Incident response

Seed runbooks: *Critical Incident Response* and *System Failure Response* (one runbook for both), *Performance
Degradation Response*, *Security Incident Response*. Manual trigger, with a form checked when the run is triggered (a
bad value is refused: REST 400, CLI non-zero exit, and no run exists):

| field | what |
|---|---|
| `incident_id` | the incident this response answers: it must exist and not be resolved |
| `type` | `critical` or `system_failure` (the critical runbook), `performance`, `security` |
| `dry_run` | default `true`: list the plan and change nothing |
| `flush_cache` | default `false`; performance only: also flush the configured cache keys (after the approval) |
| `reason` | required, not blank: on the incident and in Slack |

`check_incident`, then `choose_runbook` branches on `type` to one task group; the others are skipped. Whatever
ran, `report`, `release_lock` and the `verdict` follow.

| task | does | when it fails |
|---|---|---|
| `check_incident` | the incident exists and is open; "runbook started" on its trail | refused, nothing done |
| `choose_runbook` | the type's task group: `critical` (critical, system_failure), `performance` or `security` | (1) |
| **critical** | | |
| `collect_diagnostics` | pod logs and events, bounded, one `.tar.gz` with its SHA-256, both on the incident | (1) |
| `notify` | an update in the incident's thread (the outbox); a P1 without a war room gets one | (1) |
| `plan` | what would be scaled, closed and isolated; on the incident | (1) |
| `apply` | continues only when this is not a dry run | - |
| `approve` | a person approves the destructive steps (2) | - |
| `lock` | the deployment lease of the trading services (3) | (1) |
| `stop_trading` | the trading services to 0 (counts recorded for the restore) | (1) |
| `close_positions` | close-all, read back until flat (as post-market) | P1 positions incident |
| `isolate_gateway` | the gateway Service to `ClusterIP`, `before` recorded for undo | (1) |
| **performance** | (no trading stopped, nothing isolated) | |
| `performance.diagnostics` | top CPU/memory consumers, active and blocked queries, latency by component | (1) |
| `performance.notify` | an update in the incident's thread (the outbox) | (1) |
| `performance.plan` | the degraded; each +`scale_step` replicas, capped at `replicas.max`; the flush if chosen | (1) |
| `performance.apply` | continues only when this is not a dry run | - |
| `performance.analyze` | `ANALYZE` of the platform's tables (no lock on writers) | (1) |
| `performance.approve` | a person approves the scale and the flush (2) | - |
| `performance.lock` | the deployment lease of the scalable deployments (3) | (1) |
| `performance.scale` | the plan's counts, never past `replicas.max`, only up (count recorded for the restore) | (1) |
| `performance.flush_cache` | only chosen and approved: the keys starting with `cache_prefix`, SCAN + UNLINK | (1) |
| **security** | (evidence first; nothing contained without it) | |
| `security.preserve_evidence` | logs, events, the incident and trail, 401/403s: a write-once bundle (4) | (1) |
| `security.page_security` | the security channel and team first, through the outbox, naming the bundle (5) | (1) |
| `security.plan` | what would be isolated, stopped and revoked; waits for the evidence | (1) |
| `security.apply` | continues only when this is not a dry run | - |
| `security.approve` | a person approves the containment (2) | - |
| `security.lock` | the deployment lease of the trading services (3) | (1) |
| `security.isolate_gateway` | the gateway Service to `ClusterIP`, `before` recorded | (1) |
| `security.stop_trading` | the trading services to 0 | (1) |
| `security.revoke_tokens` | every active API token revoked (platform API), read back; ids kept, never values | (1) |
| **always** | | |
| `report` | the outcome on the incident and one Slack summary | - |
| `release_lock` | gives back this run's leases | - |
| `verdict` | fails the run when any step failed | - |

1. A failed step fails the run (the verdict) and opens the runbook's incident (`runbook:incident_response`, P1 in
   the config's `incidents.runbook_failure`): a broken response pages. A refusal is not retried.
2. Assigned to no one in particular (anyone allowed to trigger it may answer, in the UI or through the REST API).
   Unanswered for 15 minutes, it counts as rejected: nothing changes and the report says "not approved". Not asked
   when the incident came from an alert whose `alerts.runbooks` entry says `act_without_approval` (read from the
   incident, never the form): it approves at once and says so on the trail.
3. Taken after the approval, so a person's hesitation does not hold other runbooks off the deployments. Up to 4
   runs go side by side (one incident's evidence and page never wait for another's approval); a run whose
   deployments another holds waits up to 15 minutes for them (rescheduled, no worker held), then fails naming it.
4. `<reports>/forensics/incident-<id>/evidence-NNN.tar.gz`: a manifest of each member's SHA-256 and a `sha256sum`
   file for the archive, created `O_EXCL` then read-only; an intact bundle is reused, a tampered one kept as it is
   and a new numbered one written. Listed on the incident (`details.forensic_bundle`).
5. `escalation.severities.security.first_targets` and `slack.channels.security`, even when the evidence failed (the
   plan, and so every containment step, waits for the evidence).

Started automatically too: a firing alert that opens a new incident and matches the config's `alerts.runbooks`
table starts a run (id `incident_<id>__alert`, one per incident, not a dry run, triggered by `Alertmanager`); see
`tradeops.incident_response.starts`. The DAG is unpaused when Airflow first sees it (it has no schedule: it only runs
what is triggered); pausing it switches the automatic starts off (the incident's trail says "not started: paused").

Every step writes a `runbook_step` entry on the incident's audit trail with who (the authenticated user who
triggered the run, never a field) and when. There is no trading halt in the platform API: stopping trading is
scaling the trading services (`trading_day.scale_roles`) to 0, as the emergency rollback does; restoring them (and
undoing a performance scale-up) is `ScaleDeploymentsOperator(profile="restore")`, un-isolating is setting the
recorded type back. The performance settings (degraded thresholds, step, cache prefix) are the config's
`incident_response.performance`. A new runbook is one more group here, its entry in
`tradeops.incident_response.runbooks` and its type in the form.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import BranchPythonOperator
from airflow.sdk import TaskGroup

from tradeops.changes.operators import AcquireDeploymentLockOperator, ReleaseDeploymentLockOperator
from tradeops.config import load_config
from tradeops.dagkit import add_run_verdict, manual_dag
from tradeops.incident_response.actions import (
    IsolateGatewayOperator,
    RunbookClosePositionsOperator,
    StopTradingOperator,
)
from tradeops.incident_response.approval import approval_gate
from tradeops.incident_response.forms import response_form
from tradeops.incident_response.operators import (
    CheckIncidentOperator,
    ResponsePlanOperator,
    RunbookDiagnosticsOperator,
    RunbookNotifyOperator,
)
from tradeops.incident_response.performance import PerformanceDiagnosticsOperator, PerformancePlanOperator, scalable
from tradeops.incident_response.performance_actions import (
    FlushCacheOperator,
    RefreshStatisticsOperator,
    ScaleWithinLimitsOperator,
)
from tradeops.incident_response.report import ResponseReportOperator
from tradeops.incident_response.runbooks import entry_task
from tradeops.incident_response.security import (
    PageSecurityOperator,
    PreserveEvidenceOperator,
    RevokeTokensOperator,
    SecurityPlanOperator,
)
from tradeops.rollback.forms import platform_namespace, trading_services

CONFIG = load_config()
NAMESPACE = platform_namespace(CONFIG)
TRADING = trading_services(CONFIG, namespace=NAMESPACE)
GATEWAY = next(d.name for d in CONFIG.kubernetes.deployments if d.role == "gateway" and d.namespace == NAMESPACE)
SCALABLE = list(scalable(CONFIG, NAMESPACE))
SECURITY_SERVICES = [d.name for d in CONFIG.kubernetes.deployments if d.role == "security" and d.namespace == NAMESPACE]
INCIDENT = "{{ params.incident_id }}"
APPROVAL_TIMEOUT = timedelta(minutes=15)
LOCK_WAIT = timedelta(minutes=15)  # another incident's run changing the same deployments: wait for it, then go on

with manual_dag(
    "incident_response",
    owner="trading-ops",
    description="Incident runbooks: critical / system failure (stop trading, close, isolate), performance (scale, "
    "ANALYZE, cache flush): diagnostics and notify, then the approved changes",
    params=response_form(),
    render_template_as_native_obj=True,  # the form's integer and booleans reach the operators as such
    retry_delay=timedelta(seconds=5),
    dagrun_timeout=timedelta(hours=1),
    page_on_failure=True,
    max_active_runs=4,  # incidents side by side: none waits behind another's approval; changes meet at the lock
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
    choose = BranchPythonOperator(task_id="choose_runbook", python_callable=entry_task, op_args=["{{ params.type }}"])

    # The first runbook keeps its task ids unprefixed (the automatic starts name its `approve`).
    with TaskGroup("critical", prefix_group_id=False) as critical:
        diagnostics = RunbookDiagnosticsOperator(
            task_id="collect_diagnostics", incident_id=INCIDENT, deployments=[*TRADING, GATEWAY], tail_lines=500
        )
        notify = RunbookNotifyOperator(task_id="notify", incident_id=INCIDENT, reason="{{ params.reason }}")
        plan = ResponsePlanOperator(
            task_id="plan", incident_id=INCIDENT, namespace=NAMESPACE, trading=TRADING, gateway=GATEWAY
        )
        _, approve = approval_gate(
            plan,
            incident_id=INCIDENT,
            subject="Incident #{{ params.incident_id }}: stop trading, close all positions, isolate the gateway?",
            timeout=APPROVAL_TIMEOUT,
        )
        lock = AcquireDeploymentLockOperator(
            task_id="lock", namespace=NAMESPACE, deployments=TRADING, ttl=timedelta(minutes=45), wait=LOCK_WAIT
        )
        stop = StopTradingOperator(task_id="stop_trading", incident_id=INCIDENT, namespace=NAMESPACE, trading=TRADING)
        close = RunbookClosePositionsOperator(
            task_id="close_positions",
            incident_id=INCIDENT,
            reason="incident {{ params.incident_id }}: {{ params.reason }}",
        )
        isolate = IsolateGatewayOperator(
            task_id="isolate_gateway", incident_id=INCIDENT, service=GATEWAY, namespace=NAMESPACE
        )
        diagnostics >> notify >> plan
        approve >> lock >> stop >> close >> isolate

    with TaskGroup("performance") as performance:
        perf_diagnostics = PerformanceDiagnosticsOperator(task_id="diagnostics", incident_id=INCIDENT)
        perf_notify = RunbookNotifyOperator(
            task_id="notify",
            incident_id=INCIDENT,
            reason="{{ params.reason }}",
            diagnostics_task="performance.diagnostics",
        )
        perf_plan = PerformancePlanOperator(
            task_id="plan", incident_id=INCIDENT, namespace=NAMESPACE, flush_cache="{{ params.flush_cache }}"
        )
        perf_apply, perf_approve = approval_gate(
            perf_plan,
            incident_id=INCIDENT,
            subject="Incident #{{ params.incident_id }}: scale the degraded services within their limits"
            "{{ ' and flush the cache' if params.flush_cache else '' }}?",
            timeout=APPROVAL_TIMEOUT,
        )
        analyze = RefreshStatisticsOperator(task_id="analyze", incident_id=INCIDENT)  # blocks no one: not approved
        perf_lock = AcquireDeploymentLockOperator(
            task_id="lock", namespace=NAMESPACE, deployments=SCALABLE, ttl=timedelta(minutes=30), wait=LOCK_WAIT
        )
        scale = ScaleWithinLimitsOperator(
            task_id="scale", incident_id=INCIDENT, namespace=NAMESPACE, plan_task="performance.plan"
        )
        flush = FlushCacheOperator(
            task_id="flush_cache",
            incident_id=INCIDENT,
            chosen="{{ params.flush_cache }}",
            approval_task="performance.approve",
        )
        perf_diagnostics >> perf_notify >> perf_plan
        perf_apply >> analyze
        perf_approve >> perf_lock >> scale
        perf_approve >> flush

    with TaskGroup("security") as security:
        evidence = PreserveEvidenceOperator(
            task_id="preserve_evidence", incident_id=INCIDENT, deployments=[*TRADING, GATEWAY, *SECURITY_SERVICES]
        )
        page_security = PageSecurityOperator(
            task_id="page_security",
            incident_id=INCIDENT,
            trigger_rule="all_done",  # paged even without evidence
        )
        sec_plan = SecurityPlanOperator(
            task_id="plan",
            incident_id=INCIDENT,
            namespace=NAMESPACE,
            trading=TRADING,
            gateway=GATEWAY,
            evidence=[*TRADING, GATEWAY, *SECURITY_SERVICES],
            all_tokens=True,
        )
        _, sec_approve = approval_gate(
            sec_plan,
            incident_id=INCIDENT,
            subject="Incident #{{ params.incident_id }} (security): isolate the gateway, stop trading, revoke every "
            "token?",
            timeout=APPROVAL_TIMEOUT,
        )
        sec_lock = AcquireDeploymentLockOperator(
            task_id="lock", namespace=NAMESPACE, deployments=TRADING, ttl=timedelta(minutes=45), wait=LOCK_WAIT
        )
        sec_isolate = IsolateGatewayOperator(
            task_id="isolate_gateway", incident_id=INCIDENT, service=GATEWAY, namespace=NAMESPACE
        )
        sec_stop = StopTradingOperator(
            task_id="stop_trading", incident_id=INCIDENT, namespace=NAMESPACE, trading=TRADING
        )
        revoke = RevokeTokensOperator(
            task_id="revoke_tokens",
            incident_id=INCIDENT,
            reason="{{ params.reason }}",
            all_tokens=True,
            dry_run="{{ params.dry_run }}",
        )
        # Evidence first, and no containment without it: the plan waits for the evidence as well as the page.
        evidence >> page_security >> sec_plan
        evidence >> sec_plan
        sec_approve >> sec_lock >> sec_isolate
        sec_isolate >> sec_stop >> revoke

    report = ResponseReportOperator(task_id="report", incident_id=INCIDENT, reason="{{ params.reason }}")
    release = ReleaseDeploymentLockOperator(task_id="release_lock")

    check >> choose >> [critical, performance, security]
    [critical, performance, security] >> report >> release
    add_run_verdict(dag)
