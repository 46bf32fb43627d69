"""
### Weekly maintenance window

Seed runbook: *Weekly Maintenance Window* (Sunday 02:00-04:00 ET, Operations Team) and the weekly *Database
Maintenance*. Starts at `schedules.weekly_maintenance` and owns the window for `weekly_maintenance.window`.

1. `enter_window` refuses to start outside the window or while the exchange is open, unless the run is triggered
   with a `break_glass_reason` (logged; the form refuses a blank one). Every later step checks the window before it
   starts: once it has closed, the remaining steps are **skipped** (abandoned cleanly), and the post-check still runs.
2. `pre_check`: platform status and database sessions blocked on locks.
3. `backup`: `pg_dump` (directory format, parallel), verified (checksums, table of contents), restored into a scratch
   database with row counts compared when `database.backup.restore_check_every` is due; old backups pruned.
4. `update_images` to the versions `tradeops.yaml` pins (never `:latest`), then `wait_images` until rolled out.
   Both steps and the restarts hold the deployment lease (`lock_deployments`, waiting up to 10 min for another
   runbook's; `release_deployments` always gives it back), so no other runbook changes them meanwhile.
5. `db_maintenance`: per table, `REINDEX INDEX CONCURRENTLY` where bloated and plain `VACUUM (ANALYZE)` where dead
   tuples pile up (never a full table rewrite or a database-wide reindex).
6. `log_cleanup` (indices older than `log_retention_days`), `certificate_check` (TLS secrets expiring within
   `certificate_min_days`), `security_scan` (fails on critical findings): each reports on its own.
7. `restart` (rollout restart of `weekly_maintenance.deployments`), then `wait_restart`.
   When `wait_images` fails, `roll_back_images` (the automatic rollback policy, `weekly_maintenance.automatic_rollback`)
   triggers `emergency_rollback` for exactly the deployments `update_images` changed, back to their previous
   revision, once the lease is given back; it is recorded on the window's incident.
8. `post_check` (runs whatever happened before) and `report_incidents`: a failed backup or check opens an incident.

Deadline: still running when the window closes (04:00 ET) opens a P2 incident.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TaskGroup

from tradeops.changes.operators import AcquireDeploymentLockOperator, ReleaseDeploymentLockOperator
from tradeops.checks.operators import CheckOperator
from tradeops.config import load_config
from tradeops.dagkit import scheduled_dag, window_group
from tradeops.database.checks import BlockedSessions
from tradeops.database.operators import BackupOperator, TableUpkeepOperator
from tradeops.incidents.operators import ReportCheckIncidentsOperator
from tradeops.kubernetes.checks import CertificateExpiry
from tradeops.kubernetes.operators import RolloutRestartOperator, SetImageOperator
from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.maintenance.forms import break_glass_form
from tradeops.maintenance.operators import EnterMaintenanceWindowOperator
from tradeops.platform.checks import Agents, SystemStatus
from tradeops.platform.operators import PlatformMaintenanceOperator
from tradeops.rollback.operators import AutomaticRollbackOperator

config = load_config()
weekly = config.weekly_maintenance
deployments = weekly.deployments
images = {name: config.kubernetes.deployment(name).image for name in deployments}

with scheduled_dag(
    "weekly_maintenance",
    owner="trading-ops",
    retry_delay=timedelta(minutes=2),
    verdict=True,
    description="The Sunday window: verified backup, pinned images, database upkeep, cleanup, checks, restarts",
    dagrun_timeout=weekly.window + timedelta(minutes=30),
    params=break_glass_form(),
    tags=["maintenance", "database", "kubernetes"],
    doc_md=__doc__,
):
    gate = EnterMaintenanceWindowOperator(task_id="enter_window", break_glass_reason="{{ params.break_glass_reason }}")
    with window_group("maintenance_window"):
        with TaskGroup("pre_check") as pre_check:
            CheckOperator(task_id="system_status", check=SystemStatus())
            CheckOperator(task_id="db_blocked_sessions", check=BlockedSessions())
        backup = BackupOperator(task_id="backup")
        # One change at a time: no other runbook changes these deployments from the image update to the restarts.
        lock = AcquireDeploymentLockOperator(
            task_id="lock_deployments",
            namespace=config.kubernetes.deployment(deployments[0]).namespace,
            deployments=deployments,
            ttl=weekly.window + timedelta(minutes=30),
            wait=timedelta(minutes=10),
        )
        update_images = SetImageOperator(task_id="update_images", images=images)
        wait_images = RolloutStatusSensor(task_id="wait_images", names=deployments, timeout=900)
        with TaskGroup("db_maintenance") as db_maintenance:
            for table in (t for t in config.database.tables if not t.partitioning):
                (
                    TableUpkeepOperator(task_id=f"reindex_{table.name}", table=table.name, step="reindex")
                    >> TableUpkeepOperator(task_id=f"vacuum_{table.name}", table=table.name, step="vacuum")
                )
        log_cleanup = PlatformMaintenanceOperator(
            task_id="log_cleanup",
            path="/v1/maintenance/logs/cleanup",
            payload={"older_than_days": weekly.log_retention_days, "dry_run": False},
        )
        certificates = CheckOperator(
            task_id="certificate_check", check=CertificateExpiry(min_days=weekly.certificate_min_days)
        )
        scan = PlatformMaintenanceOperator(
            task_id="security_scan",
            path="/v1/security/scan",
            payload={"images": list(images.values()), "fail_on": ["critical"]},
        )
        restart = RolloutRestartOperator(task_id="restart", deployments=deployments)
        wait_restart = RolloutStatusSensor(task_id="wait_restart", names=deployments, timeout=900)
    release = ReleaseDeploymentLockOperator(task_id="release_deployments")  # all_done, outside the window's skip
    with TaskGroup("post_check") as post_check:  # runs whatever happened before
        CheckOperator(task_id="system_status", check=SystemStatus(), trigger_rule="all_done")
        CheckOperator(task_id="agents", check=Agents(), trigger_rule="all_done")
    report = ReportCheckIncidentsOperator(
        task_id="report_incidents",
        check_task_ids=["backup", "certificate_check", "post_check.system_status", "post_check.agents"],
    )

    if weekly.automatic_rollback:
        roll_back = AutomaticRollbackOperator(
            task_id="roll_back_images", change_task_id=update_images.task_id, rollout_task_id=wait_images.task_id
        )
        [wait_images, release] >> roll_back
    gate >> pre_check >> backup >> lock >> update_images >> wait_images >> db_maintenance
    db_maintenance >> [log_cleanup, certificates, scan, restart]
    restart >> wait_restart >> release
    [log_cleanup, certificates, scan, wait_restart] >> post_check >> report
