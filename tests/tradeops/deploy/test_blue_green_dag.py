"""blue_green_deploy run in-process (``dag.test()``) with its real operators against the sandbox's Kubernetes API
(as TradeOps' least-privilege identity), the state database and the Slack stand-in: a dry run plans and changes
nothing; a green that never becomes ready is deleted and blue keeps serving, untouched but for its colour label.
The approval never resolves under ``dag.test()``: the approval, the switch and the soak run end to end in
tests/e2e/test_blue_green_deploy_e2e.py."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.dagtest import runnable, states
from tradeops.config import default_config_path

DAG = "blue_green_deploy"
NAMESPACE = "grandmodel"
SERVICE = "auth-service"
BREAK_GLASS = {"break_glass": True, "break_glass_reason": "tests run whatever the market hours"}


@pytest.fixture
def fast(tmp_path, monkeypatch):
    """The demo's blue-green timings for the tasks of this test (green must progress within 15 s)."""
    demo = default_config_path().with_name("tradeops.demo.yaml")
    path = tmp_path / "tradeops-blue-green.yaml"
    path.write_text(f'extends: "{demo}"\n')
    monkeypatch.setenv("TRADEOPS_CONFIG", str(path))


@pytest.fixture
def cluster(k8s_connection, airflow_connections):
    """The admin's view of auth-service: its image, Service selector and whether a green exists."""
    from tradeops.deploy.operators import green_exists
    from tradeops.kubernetes.hooks import KubernetesApiHook

    hook = KubernetesApiHook(k8s_connection("admin"))

    def read() -> dict:
        blue = hook.deployment(NAMESPACE, SERVICE)
        return {
            "image": blue["spec"]["template"]["spec"]["containers"][0]["image"],
            "replicas": blue["spec"]["replicas"],
            "selector": hook.service(NAMESPACE, SERVICE)["spec"]["selector"],
            "green": green_exists(hook, NAMESPACE, f"{SERVICE}-green"),
        }

    return read


def test_a_dry_run_plans_every_change_and_changes_nothing(dagbag, airflow_db, cluster, sandbox):
    before = cluster()
    run = runnable(dagbag, DAG).test(
        run_conf={"version": "2.3.0", "services": [SERVICE], "reason": "plan the 2.3.0 release", **BREAK_GLASS}
    )
    task_states = states(run)
    assert run.state == "success", task_states
    assert task_states["plan"] == task_states["lock"] == task_states["release"] == task_states["report"] == "success"
    assert {task_states[t] for t in ("prepare_blue", "deploy_green", "approve", "switch", "clean_up")} == {"skipped"}
    assert cluster() == before
    plan = run.get_task_instance("plan").xcom_pull(task_ids="plan")
    assert plan["dry_run"] is True and plan["locked"] == []
    image = before["image"].rsplit(":", 1)[0] + ":2.3.0"
    assert plan["services"] == {SERVICE: {"container": SERVICE, "blue_image": before["image"], "image": image}}
    fields = [(c["kind"], c["name"], c["field"], c["after"]) for c in plan["plan"]]
    assert ("Deployment", f"{SERVICE}-green", "(create)", image) in fields
    assert ("Deployment", SERVICE, f"image[{SERVICE}]", image) in fields
    assert "spec.selector" in plan["switch_plan"] and "'color': 'green'" in plan["switch_plan"]
    reports = [m for m in sandbox.slack_messages("#trading-ops") if run.run_id in str(m) or "2.3.0" in m["text"]]
    assert any("dry run: plan computed, nothing changed" in m["text"] for m in reports)


def test_a_green_that_never_becomes_ready_is_deleted_and_blue_keeps_serving(
    dagbag, airflow_db, cluster, sandbox, fast, config
):
    before = cluster()
    broken = before["image"].rsplit(":", 1)[0] + ":6.6.6"
    sandbox.set_faults("kubernetes", unpullable_images=[broken])
    run = runnable(dagbag, DAG).test(
        run_conf={"version": "6.6.6", "services": [SERVICE], "reason": "ship 6.6.6", "dry_run": False, **BREAK_GLASS}
    )
    task_states = states(run)
    assert run.state == "failed", task_states
    assert task_states["deploy_green"] == "success" and task_states["green_ready"] == "failed"
    assert task_states["approve"] == task_states["switch"] == "upstream_failed"
    assert task_states["clean_up"] == task_states["release"] == "success"
    after = cluster()
    assert after["green"] is False
    assert after["image"] == before["image"] and after["replicas"] == before["replicas"]
    assert after["selector"] == {**before["selector"], "color": "blue"}
    with psycopg.connect(config_dsn(config), row_factory=dict_row) as conn:
        incidents = conn.execute(
            "SELECT severity, title FROM tradeops.incidents WHERE dag_id = %s AND run_id = %s", (DAG, run.run_id)
        ).fetchall()
        leases = conn.execute("SELECT * FROM tradeops.change_locks WHERE holder LIKE %s", (f"{DAG}/%",)).fetchall()
    assert incidents == [{"severity": "P2", "title": "Blue-green deploy of 6.6.6 failed"}]
    assert leases == []


def config_dsn(config) -> str:
    from tradeops.connections import postgres_dsn

    return postgres_dsn(config.connections.state_db)
