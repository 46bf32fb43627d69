"""
### Emergency rollback

Seed runbooks: *Rollback Procedure / Emergency Rollback* and *Automated Rollback*. Manual trigger only, with a form
checked when the run is triggered (a bad value is refused: REST 400, CLI non-zero exit, and no run exists):

| field | what |
|---|---|
| `target` | a version (an image tag matching the tag of `kubernetes.allowed_image_pattern`), or `previous` (1) |
| `deployments` | from the config's deployments of the platform namespace; default the trading services |
| `reason` | required, not blank: in Slack and the incident |
| `confirm` | must be `true`, no default: the gate |
| `dry_run` | default `false` (2); `true` computes and shows the plan and changes nothing |
| `incident_id` | optional: the incident this rollback answers (the rollback is recorded on it) |

| task | does | when it fails |
|---|---|---|
| `stop_trading` | lease, record, plan, then the trading services to 0 (3) | refused, nothing changed |
| `apply` | continues only when this is not a dry run | - |
| `roll_back_images` | each deployment to its target image, or its previous revision's template | P1 (4) |
| `restore_replicas` | the trading services back to the replica counts recorded when stopped | P1 (4) |
| `wait_rollouts` | every changed deployment rolled out (deferrable, in the triggerer) | P1 (4) |
| `health` | the platform's agents check | P1 (4) |
| `report` | always: one Slack message (before/after images, who, why, outcome) and the incident | - |
| `release_lock` | always: gives back this run's leases | - |
| `verdict` | fails the run when any step failed | - |

1. Never `latest`; `previous` is each deployment's previous revision, as `kubectl rollout undo`.
2. The confirmation is the gate; at 3 AM a compulsory dry run first would cost minutes of trading on a bad version.
3. Takes the lease of every deployment it changes (refused at once, naming the holder, when another runbook holds
   one), records images, revisions and replicas, computes the plan and checks every image, then stops trading.
4. The trading services are scaled to 0 again (trading left stopped), a P1 incident opens, and Slack says so.
   Every step is safe to retry and is retried once, 5 s later, after a transient error (an API hiccup); a
   refusal or a failed rollout is not retried.

Who rolled back is the authenticated user who triggered the run, never a field. There is no trading halt in the
platform API: stopping trading is scaling the trading services (`trading_day.scale_roles`) to 0, done in the first
task so that no scheduler hand-off delays it. No shell, no string-built command, never `:latest`.

Exempt from the market-hours rule by definition: an emergency rollback runs whenever it is triggered. One run at a
time (`max_active_runs=1`), and never at the same time as another runbook changing the same deployments (the
lease, `tradeops.change_locks`, which also covers the weekly window's image and restart steps).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import ShortCircuitOperator

from tradeops.changes.operators import ReleaseDeploymentLockOperator
from tradeops.checks.operators import CheckOperator
from tradeops.config import load_config
from tradeops.dagkit import add_run_verdict, manual_dag
from tradeops.kubernetes.operators import ScaleDeploymentsOperator
from tradeops.platform.checks import Agents
from tradeops.rollback.forms import platform_namespace, rollback_form, trading_services
from tradeops.rollback.operators import (
    RollBackImagesOperator,
    RollbackReportOperator,
    StopTradingForRollbackOperator,
)
from tradeops.rollback.sensors import WaitRollbackRolloutsSensor

CONFIG = load_config()
NAMESPACE = platform_namespace(CONFIG)
TRADING = trading_services(CONFIG, namespace=NAMESPACE)

with manual_dag(
    "emergency_rollback",
    owner="trading-ops",
    description="Stop trading, roll deployments back to a version or their previous revision, restore, verify",
    params=rollback_form(CONFIG),
    render_template_as_native_obj=True,  # the form's list and booleans reach the operators as such
    retry_delay=timedelta(seconds=5),  # a transient API error is retried at once; refusals and failed rollouts fail
    dagrun_timeout=timedelta(minutes=30),
    tags=["kubernetes", "rollback"],
    doc_md=__doc__,
) as dag:
    stop = StopTradingForRollbackOperator(
        task_id="stop_trading",
        namespace=NAMESPACE,
        deployments="{{ params.deployments }}",
        target="{{ params.target }}",
        trading=TRADING,
        dry_run="{{ params.dry_run }}",
        ttl=timedelta(minutes=45),
    )
    apply = ShortCircuitOperator(
        task_id="apply",
        python_callable=lambda planned: not planned["dry_run"],
        op_args=["{{ ti.xcom_pull(task_ids='stop_trading') }}"],
    )
    images = RollBackImagesOperator(task_id="roll_back_images")
    restore = ScaleDeploymentsOperator(task_id="restore_replicas", deployments=TRADING, profile="restore")
    rollouts = WaitRollbackRolloutsSensor(task_id="wait_rollouts", namespace=NAMESPACE, timeout=600)
    health = CheckOperator(task_id="health", check=Agents())
    report = RollbackReportOperator(
        task_id="report",
        reason="{{ params.reason }}",
        target="{{ params.target }}",
        incident_id="{{ params.incident_id }}",
    )
    release = ReleaseDeploymentLockOperator(task_id="release_lock")

    stop >> apply >> images >> restore >> rollouts >> health >> report >> release
    add_run_verdict(dag)
