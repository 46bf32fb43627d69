"""The database DAGs run in-process (``dag.test()``) with their real operators against a copy of the platform
database on the sandbox's PostgreSQL, its Kubernetes API and platform API. Deadlines are removed from the copies
(``dag.test()`` cannot run a DAG with deadlines, upstream #73428); they are tested under the real scheduler."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from airflow.sdk.exceptions import ParamValidationError
from psycopg.rows import dict_row

from tests.dagtest import runnable, states
from tests.forms import validate_form
from tradeops.database import backup, retention


@pytest.fixture
def on_the_copy(airflow_connections, platform_connection, monkeypatch, tmp_path):
    """Point the platform database connection at the test's copy, and backups at a temporary folder."""
    monkeypatch.setenv("TRADEOPS_BACKUP_DIR", str(tmp_path / "backups"))
    return platform_connection


def incidents_of(state_dsn: str, dag_run) -> dict[str, dict]:
    with psycopg.connect(state_dsn, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dag_id = %s AND run_id = %s", (dag_run.dag_id, dag_run.run_id)
        ).fetchall()
    return {row["task_id"]: row for row in rows}


def test_daily_db_maintenance_runs_every_step_on_a_live_database(
    dagbag, airflow_db, on_the_copy, config, sandbox_settings
):
    now = datetime.now(UTC)
    with psycopg.connect(on_the_copy, row_factory=dict_row, autocommit=True) as db:
        expired_before = db.execute(
            "SELECT count(*) AS n FROM audit_log WHERE created_at < %s",
            (retention.cutoff_for(config.database.tables[0], now),),
        ).fetchone()["n"]
    assert expired_before > 0

    run = runnable(dagbag, "daily_db_maintenance").test()

    task_states = states(run)
    assert run.state == "success", task_states
    assert task_states["verdict"] == "skipped"
    assert {s for t, s in task_states.items() if t != "verdict"} == {"success"}
    with psycopg.connect(on_the_copy, row_factory=dict_row, autocommit=True) as db:
        for table in config.database.tables:
            if table.retention_days:
                cutoff = retention.cutoff_for(table, now)
                left = db.execute(
                    f"SELECT count(*) AS n FROM {table.name} WHERE {table.time_column} < %s", (cutoff,)
                ).fetchone()["n"]
                assert left == 0, table.name
        assert db.execute("SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid").fetchone()["n"] == 0
    with psycopg.connect(sandbox_settings["postgres"]["state_dsn"], row_factory=dict_row) as state:
        sizes = state.execute(
            "SELECT relation, kind FROM tradeops.relation_sizes WHERE captured_at > %s", (now,)
        ).fetchall()
    assert {"audit_log", "trades", "trades_pkey", "audit_log_pkey"} <= {r["relation"] for r in sizes}
    report = airflow_db / "reports" / "daily_db_maintenance"
    [path] = list(report.glob("*-sizes.json"))
    content = json.loads(path.read_text())
    assert content["database"] == config.database.name and content["total_bytes"] > 0


def test_weekly_maintenance_refuses_to_start_outside_its_window_and_pages(
    dagbag, airflow_db, on_the_copy, tmp_path, sandbox_settings
):
    state_dsn = sandbox_settings["postgres"]["state_dsn"]
    with psycopg.connect(state_dsn) as state:  # an earlier test's refused window would take this one's occurrence
        state.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now() "
            "WHERE dedup_key = 'runbook:weekly_maintenance' AND status <> 'resolved'"
        )
    # Monday morning (UTC) is outside the Sunday 02:00-04:00 ET window: nothing but the gate runs.
    run = runnable(dagbag, "weekly_maintenance").test()
    task_states = states(run)
    assert run.state == "failed"
    assert task_states["enter_window"] == "failed"
    assert task_states["backup"] == "upstream_failed" and task_states["restart"] == "upstream_failed"
    assert not (tmp_path / "backups").exists()
    # The refused gate pages: the runbook's incident (incidents.runbook_failure), nothing else.
    [incident] = incidents_of(state_dsn, run).values()
    assert (incident["dedup_key"], incident["severity"], incident["task_id"], incident["status"]) == (
        "runbook:weekly_maintenance",
        "P2",
        "enter_window",
        "open",
    )
    assert incident["summary"].startswith(f"`enter_window` failed in run `{run.run_id}`: AirflowFailException: ")


def test_weekly_maintenance_with_break_glass_runs_the_window(
    dagbag, airflow_db, on_the_copy, k8s_connection, config, tmp_path, sandbox_settings
):
    from tradeops.kubernetes.hooks import KubernetesApiHook

    run = runnable(dagbag, "weekly_maintenance").test(run_conf={"break_glass_reason": "test: forced run"})
    task_states = states(run)
    # The sandbox seeds certificates that expire in 5 days and 3 days ago: the check must catch them.
    assert task_states["certificate_check"] == "failed"
    assert run.state == "failed" and task_states["verdict"] == "failed"
    assert {t: s for t, s in task_states.items() if s != "success"} == {
        "certificate_check": "failed",
        "verdict": "failed",
        "roll_back_images": "skipped",  # the images rolled out: the automatic rollback has nothing to do
    }
    [(folder, manifest)] = backup.backups(tmp_path / "backups")
    assert manifest["restore_check"]["rows"] == sum(manifest["row_counts"].values())
    [incident] = incidents_of(sandbox_settings["postgres"]["state_dsn"], run).values()
    assert (incident["dedup_key"], incident["severity"]) == ("check:weekly_maintenance:certificate_check", "P2")
    admin = KubernetesApiHook(k8s_connection("admin"))
    for name in config.weekly_maintenance.deployments:
        template = admin.deployment("grandmodel", name)["spec"]["template"]["metadata"]
        assert template["annotations"]["tradeops.io/restart-id"].endswith(run.run_id), name


def test_weekly_maintenance_abandons_the_steps_left_when_the_window_closes(
    dagbag, airflow_db, on_the_copy, tmp_path, sandbox_settings
):
    dag = runnable(dagbag, "weekly_maintenance")
    dag.get_task("enter_window").length = timedelta(0)  # a window that has closed by the time the first step starts
    run = dag.test(run_conf={"break_glass_reason": "test: window closing"})
    task_states = states(run)
    assert task_states["enter_window"] == "success"
    guarded = [
        t
        for t in task_states
        if t
        not in (
            "enter_window",
            "post_check.system_status",
            "post_check.agents",
            "report_incidents",
            "verdict",
            "release_deployments",  # outside the window: always gives back whatever lease the run holds
        )
    ]
    assert {task_states[t] for t in guarded} == {"skipped"}
    assert task_states["post_check.system_status"] == "success" and task_states["post_check.agents"] == "success"
    assert task_states["release_deployments"] == "success"
    assert not (tmp_path / "backups").exists()
    assert incidents_of(sandbox_settings["postgres"]["state_dsn"], run) == {}, "skipped steps are not failures"


def test_db_restore_is_a_dry_run_by_default_and_restores_into_a_new_database(
    dagbag, airflow_db, on_the_copy, config, tmp_path, server_dsn
):
    settings = config.database.backup
    folder, manifest = backup.take_backup(on_the_copy, settings)
    backup.verify(folder)
    backup.publish(folder)
    dag = runnable(dagbag, "db_restore")
    target = f"restored_{manifest['id'][-16:-1].lower()}"

    dry = dag.test(run_conf={"target_database": target})
    assert dry.state == "success"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone()

    with pytest.raises(ParamValidationError, match="does not match"):  # the live database: refused at trigger time
        validate_form(dag, {"target_database": config.database.name, "dry_run": False})

    real = dag.test(run_conf={"target_database": target, "dry_run": False})
    try:
        assert real.state == "success"
        with psycopg.connect(psycopg.conninfo.make_conninfo(server_dsn, dbname=target), row_factory=dict_row) as conn:
            assert backup.row_counts(conn) == manifest["row_counts"]
        again = dag.test(run_conf={"target_database": target, "dry_run": False})
        assert again.state == "failed"  # never into an existing database
    finally:
        backup.drop_database(server_dsn, target)


def test_a_backup_blocked_by_a_lock_fails_fast_and_reports_a_failed_check(on_the_copy, tmp_path, monkeypatch):
    from tradeops.config import CONFIG_ENV, default_config_path
    from tradeops.database.operators import BackupOperator
    from tradeops.exceptions import CheckFailed

    impatient = tmp_path / "tradeops.yaml"
    impatient.write_text(f"extends: {default_config_path()}\ndatabase:\n  backup:\n    lock_wait_timeout_s: 1\n")
    monkeypatch.setenv(CONFIG_ENV, str(impatient))
    pushed: dict = {}
    ti = types.SimpleNamespace(task_id="backup", xcom_push=lambda key, value: pushed.__setitem__(key, value))
    context = {"ti": ti}
    with psycopg.connect(on_the_copy) as migration:  # a schema change holding its lock on a table
        migration.execute("LOCK TABLE positions IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(CheckFailed, match=r"a table stayed locked longer than lock_wait_timeout_s \(1 s\)"):
            BackupOperator(task_id="backup").execute(context)
        migration.rollback()
    assert pushed["check_result"]["status"] == "fail"
    assert "stayed locked" in pushed["check_result"]["summary"]
    assert backup.backups(tmp_path / "backups") == [], "a failed backup is never listed"
