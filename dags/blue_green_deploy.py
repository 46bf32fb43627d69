"""
### Blue-green deployment

Deploys `version` of the chosen `services` as **green** next to the serving **blue**, switches each Service to green
after an approval, watches green for a soak period (switching back to blue at the first failure) and only then
retires the old version. Manual trigger only, one run at a time; the form refuses a version outside
`blue_green.version_pattern` (never `latest`), unknown services and a blank reason before a run exists. While the
market is open the run refuses to start unless `break_glass` with a `break_glass_reason`.

`dry_run` is on by default: the plan (object by object, from → to; green's manifest validated by the API server
with `dryRun=All`) is computed and logged, and nothing changes.

Colours: blue is always the config's Deployment `<name>` (pods `color: blue`, Service selecting `color: blue`); green
is the temporary `<name>-green`. After the soak blue is moved to the new version, the Service goes back to blue and
green is deleted, so the next deploy (and every other runbook) finds `<name>` serving.

Every step reads the cluster before it changes it, so it is safe to retry, and it is retried once after a transient
error (an API hiccup). A refusal, a failed rollout, failed smoke checks and a soak failure are not retried; an
approval nobody answers within `blue_green.approval_timeout` is asked once more, then the run fails, switching nothing.

| Task | What it does |
| --- | --- |
| `plan` | market-hours / break-glass gate; the plan (XCom), green validated server-side in a dry run |
| `lock` | the deployment leases of the services and their greens (`tradeops.changes`), or fail naming the holder |
| `prepare_blue` | first blue-green deploy of a service: label blue's pods `color: blue` |
| `blue_ready` | blue rolled out (deferrable) |
| `deploy_green` | narrow each Service to blue, create `<name>-green` with the new image |
| `green_ready` | green rolled out within `blue_green.rollout_timeout` (deferrable) |
| `check_green` | smoke checks: replicas ready, pods ready on the new image, no restarts |
| `approve` | approval by `blue_green.approvers`, showing each Service's selector from → to |
| `switch` | Services select `color: green` |
| `soak` | green healthy for `blue_green.soak` (reschedule mode); at the first failure: back to blue, fail |
| `promote` / `promoted` | blue moved to the new version (serving nothing), rolled out |
| `retire_green` | Services back to blue, green deleted |
| `clean_up` | (always) delete any green no Service selects: a failure or rejection leaves blue serving alone |
| `release` | (always) give back the leases |
| `report` | (always) one message per run; on failure a P2 incident and the run fails |
"""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator

from tradeops.changes.operators import AcquireDeploymentLockOperator, ReleaseDeploymentLockOperator
from tradeops.config import load_config
from tradeops.dagkit import manual_dag
from tradeops.deploy.forms import blue_green_form
from tradeops.deploy.operators import (
    CheckGreenOperator,
    CleanUpGreenOperator,
    DeployGreenOperator,
    PlanBlueGreenOperator,
    PrepareBlueOperator,
    PromoteBlueOperator,
    RetireGreenOperator,
    SwitchServicesOperator,
)
from tradeops.deploy.report import BlueGreenReportOperator
from tradeops.deploy.sensors import PlannedRolloutSensor, SoakSensor

config = load_config()
rules = config.blue_green
PLAN = "ti.xcom_pull(task_ids='plan')"


def rolled_out(task_id: str, planned: str) -> PlannedRolloutSensor:
    """Wait (deferred) until the plan's ``planned`` deployments (``services`` or ``greens``) have rolled out."""
    return PlannedRolloutSensor(
        task_id=task_id,
        names=f"{{{{ {PLAN}['{planned}'] | list }}}}",
        namespace=f"{{{{ {PLAN}['namespace'] }}}}",
        timeout=rules.rollout_timeout.total_seconds(),
    )


with manual_dag(
    "blue_green_deploy",
    owner="platform",
    description="Green next to blue, approved switch of the Services, soak with automatic switch-back (dry run by "
    "default)",
    params=blue_green_form(config),
    render_template_as_native_obj=True,  # services as a list, dry_run as a boolean
    tags=["kubernetes", "deploy"],
    doc_md=__doc__,
):
    plan = PlanBlueGreenOperator(
        task_id="plan",
        services="{{ params.services }}",
        version="{{ params.version }}",
        plan_only="{{ params.dry_run }}",
        break_glass="{{ params.break_glass }}",
        break_glass_reason="{{ params.break_glass_reason }}",
    )
    lock = AcquireDeploymentLockOperator(
        task_id="lock",
        namespace=f"{{{{ {PLAN}['namespace'] }}}}",
        deployments=f"{{{{ {PLAN}['locked'] }}}}",
        ttl=rules.lock_ttl,
    )
    prepare = PrepareBlueOperator(task_id="prepare_blue")
    blue_ready = rolled_out("blue_ready", "services")
    deploy = DeployGreenOperator(task_id="deploy_green")
    green_ready = rolled_out("green_ready", "greens")
    check = CheckGreenOperator(task_id="check_green")
    approve = ApprovalOperator(
        task_id="approve",
        subject="Switch to green: {{ params.version }} for {{ params.services | join(', ') }}?",
        body=f"Reason: {{{{ params.reason }}}}\n\n{{{{ {PLAN}['switch_plan'] }}}}",
        assigned_users=[{"id": user, "name": user} for user in rules.approvers],
        response_timeout=rules.approval_timeout,
    )
    switch = SwitchServicesOperator(task_id="switch", colour="green")
    soak = SoakSensor(task_id="soak", soak=rules.soak, poke_interval=rules.soak_poll.total_seconds())
    promote = PromoteBlueOperator(task_id="promote")
    promoted = rolled_out("promoted", "services")
    retire = RetireGreenOperator(task_id="retire_green")
    steps = [
        plan,
        lock,
        prepare,
        blue_ready,
        deploy,
        green_ready,
        check,
        approve,
        switch,
        soak,
        promote,
        promoted,
        retire,
    ]
    clean_up = CleanUpGreenOperator(task_id="clean_up")
    release = ReleaseDeploymentLockOperator(task_id="release")
    report = BlueGreenReportOperator(
        task_id="report", steps=[s.task_id for s in steps] + ["clean_up"], reason="{{ params.reason }}"
    )
    plan >> lock >> prepare >> blue_ready >> deploy >> green_ready >> check >> approve >> switch >> soak
    soak >> promote >> promoted >> retire >> clean_up >> release >> report
