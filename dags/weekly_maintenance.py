"""
### Weekly maintenance window

Seed runbook: *Weekly Maintenance Window* (Sunday 02:00-04:00 ET, Operations Team) and the weekly *Database
Maintenance*. Starts at `schedules.weekly_maintenance` and owns the window for `weekly_maintenance.window`.

1. `enter_window` refuses to start outside the window or while the exchange is open, unless the run is triggered
   with `break_glass` and a `reason` (logged). Every later step checks the window before it starts: once it has
   closed, the remaining steps are **skipped** (abandoned cleanly), and the post-check still runs.
2. `pre_check`: platform status and database sessions blocked on locks.
3. `backup`: `pg_dump` (directory format, parallel), verified (checksums, table of contents), restored into a scratch
   database with row counts compared when `database.backup.restore_check_every` is due; old backups pruned.
4. `update_images` to the versions `tradeops.yaml` pins (never `:latest`), then `wait_images` until rolled out.
5. `db_maintenance`: per table, `REINDEX INDEX CONCURRENTLY` where bloated and plain `VACUUM (ANALYZE)` where dead
   tuples pile up (never a full table rewrite or a database-wide reindex).
6. `log_cleanup` (indices older than `log_retention_days`), `certificate_check` (TLS secrets expiring within
   `certificate_min_days`), `security_scan` (fails on critical findings): each reports on its own.
7. `restart` (rollout restart of `weekly_maintenance.deployments`), then `wait_restart`.
8. `post_check` (runs whatever happened before) and `report_incidents`: a failed backup or check opens an incident.

Deadline: still running when the window closes (04:00 ET) opens a P2 incident.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, TaskGroup

from tradeops.calendar.deadlines import deadline_alerts
from tradeops.calendar.events import anchor_to_dict
from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.config import load_config
from tradeops.database.operators import BackupOperator, DatabaseCheckOperator, TableUpkeepOperator
from tradeops.incidents.callbacks import apply_incident_policy
from tradeops.incidents.operators import ReportCheckIncidentsOperator
from tradeops.kubernetes.operators import RolloutRestartOperator, SetImageOperator
from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.operators.health import HealthCheckOperator
from tradeops.operators.maintenance import (
    CertificateExpiryOperator,
    EnterMaintenanceWindowOperator,
    PlatformMaintenanceOperator,
    abandon_after_window,
)
from tradeops.operators.verdict import add_run_verdict

config = load_config()
DAG_ID = "weekly_maintenance"
weekly = config.weekly_maintenance
deployments = weekly.deployments
in_window = {"pre_execute": abandon_after_window}

with DAG(
    dag_id=DAG_ID,
    description="The Sunday window: verified backup, pinned images, database upkeep, cleanup, checks, restarts",
    schedule=ExchangeSessionTimetable(config.schedules[DAG_ID], config.platform.exchange),
    deadline=deadline_alerts(DAG_ID, config.deadlines.get(DAG_ID, []), config.platform.exchange),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=weekly.window + timedelta(minutes=30),
    render_template_as_native_obj=True,  # the form's break_glass reaches the gate as a boolean
    default_args={"owner": "trading-ops", "retries": 1, "retry_delay": timedelta(minutes=2)},
    params={
        "break_glass": Param(False, type="boolean",
                             description="start outside the window or while the market is open (needs a reason)"),
        "reason": Param("", type="string", maxLength=500, description="why the glass was broken (logged)"),
    },
    tags=["tradeops", "maintenance", "database", "kubernetes", "scheduled"],
    doc_md=__doc__,
) as dag:
    gate = EnterMaintenanceWindowOperator(
        task_id="enter_window", schedule=anchor_to_dict(config.schedules[DAG_ID]), length=weekly.window,
        exchange=config.platform.exchange, break_glass="{{ params.break_glass }}", reason="{{ params.reason }}")
    with TaskGroup("pre_check") as pre_check:
        HealthCheckOperator(task_id="system_status", check="system_status", **in_window)
        DatabaseCheckOperator(task_id="db_blocked_sessions", check="blocked_sessions", **in_window)
    backup = BackupOperator(task_id="backup", **in_window)
    update_images = SetImageOperator(
        task_id="update_images", images={name: config.kubernetes.deployment(name).image for name in deployments},
        **in_window)
    wait_images = RolloutStatusSensor(task_id="wait_images", names=deployments, timeout=900, **in_window)
    with TaskGroup("db_maintenance") as db_maintenance:
        for table in config.database.tables:
            if not table.partitioning:
                (TableUpkeepOperator(task_id=f"reindex_{table.name}", table=table.name, step="reindex", **in_window)
                 >> TableUpkeepOperator(task_id=f"vacuum_{table.name}", table=table.name, step="vacuum",
                                        **in_window))
    log_cleanup = PlatformMaintenanceOperator(
        task_id="log_cleanup", path="/v1/maintenance/logs/cleanup",
        payload={"older_than_days": weekly.log_retention_days, "dry_run": False}, **in_window)
    certificates = CertificateExpiryOperator(task_id="certificate_check", min_days=weekly.certificate_min_days,
                                             **in_window)
    scan = PlatformMaintenanceOperator(
        task_id="security_scan", path="/v1/security/scan",
        payload={"images": [config.kubernetes.deployment(name).image for name in deployments],
                 "fail_on": ["critical"]}, **in_window)
    restart = RolloutRestartOperator(task_id="restart", deployments=deployments, **in_window)
    wait_restart = RolloutStatusSensor(task_id="wait_restart", names=deployments, timeout=900, **in_window)
    with TaskGroup("post_check", default_args={"trigger_rule": "all_done"}) as post_check:
        HealthCheckOperator(task_id="system_status", check="system_status")
        HealthCheckOperator(task_id="agents", check="agents")
    report = ReportCheckIncidentsOperator(
        task_id="report_incidents",
        check_task_ids=["backup", "certificate_check", "post_check.system_status", "post_check.agents"],
        severities={"backup": config.database.maintenance.severities.backup})

    gate >> pre_check >> backup >> update_images >> wait_images >> db_maintenance
    db_maintenance >> [log_cleanup, certificates, scan, restart]
    restart >> wait_restart
    [log_cleanup, certificates, scan, wait_restart] >> post_check >> report
    apply_incident_policy(dag, config)
    add_run_verdict(dag)
