"""pre_market_startup run in-process (``dag.test()``) with its real operators against the sandbox (platform API,
Kubernetes API, state database, Slack stand-in): the happy path scales to market hours and posts one checklist,
a second run for the same session posts nothing more; margin too low scales nothing, opens one incident at the
gate severity and fails the run without "startup complete", until a run whose gates pass resolves it. Deadlines
are removed from the copy (``dag.test()`` cannot run a DAG with deadlines, upstream #73428); they run under the
real scheduler in tests/e2e."""

from __future__ import annotations

import json
import types

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tests.dagtest import runnable, states

DAG = "pre_market_startup"


@pytest.fixture
def cluster(k8s_connection, airflow_connections, config):
    """The scaled deployments at their off-hours replicas before and after the test (admin identity)."""
    from tradeops.kubernetes.hooks import KubernetesApiHook

    hook = KubernetesApiHook(k8s_connection("admin"))
    scaled = [d for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]

    def off_hours() -> None:
        for d in scaled:
            hook.patch_deployment(d.namespace, d.name, {"spec": {"replicas": d.replicas.off_hours}})

    def replicas() -> dict[str, int]:
        return {d.name: hook.deployment(d.namespace, d.name)["spec"]["replicas"] for d in scaled}

    off_hours()
    yield types.SimpleNamespace(hook=hook, scaled=scaled, replicas=replicas)
    off_hours()


@pytest.fixture
def platform(airflow_connections, config):
    from tradeops.platform.hooks import TradingPlatformHook

    hook = TradingPlatformHook(config.connections.platform_api)
    off = config.trading_day.monitoring_modes.off_hours
    hook.request("PUT", "/v1/monitoring/mode", json={"mode": off, "reason": "test setup"})
    yield hook
    hook.request("PUT", "/v1/monitoring/mode", json={"mode": off, "reason": "test teardown"})


@pytest.fixture
def startup(dagbag, airflow_db, airflow_connections, sandbox, sandbox_settings, recheck_after, cluster, platform):
    """The DAG, runnable in-process; Slack's messages cleared and the DAG's incidents resolved first."""
    from tradeops.incidents import store

    recheck_after("1s")
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    with store.connect(dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE dag_id = %s AND status <> 'resolved'",
            (DAG,),
        )
    return runnable(dagbag, DAG)


def checklists(sandbox) -> list[dict]:
    return [m for m in sandbox.slack_messages("#trading-ops") if "Pre-market startup" in m["text"]]


def incidents_of(dsn: str, dag_run) -> list[dict]:
    with psycopg.connect(dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dag_id = %s AND run_id = %s", (dag_run.dag_id, dag_run.run_id)
        ).fetchall()


def test_the_happy_path_scales_to_market_hours_and_posts_one_checklist_per_session(
    startup, sandbox, cluster, platform, config, sandbox_settings
):
    market_hours = {d.name: d.replicas.market_hours for d in cluster.scaled}
    assert cluster.replicas() != market_hours

    run = startup.test()

    task_states = states(run)
    assert run.state == "success", task_states
    assert task_states.pop("verdict") == "skipped"
    assert set(task_states.values()) == {"success"}
    assert cluster.replicas() == market_hours
    assert platform.get("/v1/monitoring/mode")["mode"] == config.trading_day.monitoring_modes.market_hours
    [checklist] = checklists(sandbox)
    headline, *items = checklist["text"].splitlines()
    assert "startup complete" in headline and "FAILED" not in headline
    assert sum(1 for line in items if line.startswith(":large_green_circle:")) >= 7
    assert incidents_of(sandbox_settings["postgres"]["state_dsn"], run) == []

    again = startup.test()  # the same session: the same end state, no second message

    assert again.state == "success", states(again)
    assert cluster.replicas() == market_hours
    assert checklists(sandbox) == [checklist]
    pushed = again.get_task_instance("scale_market_hours").xcom_pull(task_ids="scale_market_hours")
    records = json.loads(pushed) if isinstance(pushed, str) else pushed
    assert {r["deployment"]: r["changed"] for r in records} == dict.fromkeys(market_hours, False), "already there"


def test_margin_too_low_scales_nothing_opens_one_incident_and_fails_the_run_until_funded_again(
    startup, sandbox, cluster, config, sandbox_settings
):
    off_hours = cluster.replicas()
    sandbox.set_faults("platform_api", margin_available_pct=10.0)

    run = startup.test()

    task_states = states(run)
    assert run.state == "failed"
    assert task_states["account_ready"] == "failed"
    assert task_states["model_files"] == task_states["risk_limits"] == "success"
    for task_id in ("scale_market_hours", "rollout_market_hours", "agent_communication", "monitoring_mode"):
        assert task_states[task_id] == "upstream_failed", task_id
    assert task_states["checklist"] == "success" and task_states["verdict"] == "failed"
    assert cluster.replicas() == off_hours
    [incident] = incidents_of(sandbox_settings["postgres"]["state_dsn"], run)
    assert (incident["dedup_key"], incident["severity"], incident["status"]) == (
        "startup:pre_market_startup",
        config.trading_day.gate_severity,
        "open",
    )
    assert "margin available 10% (minimum 25%)" in incident["summary"]
    [checklist] = checklists(sandbox)
    assert "startup FAILED — trading not started" in checklist["text"]
    assert "startup complete" not in checklist["text"]
    assert "margin available 10%" in checklist["text"]

    sandbox.clear_faults("platform_api")  # funded again: the next run passes the gates and resolves the incident
    fixed = startup.test()
    assert fixed.state == "success", states(fixed)
    with psycopg.connect(sandbox_settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        status = conn.execute("SELECT status FROM tradeops.incidents WHERE id = %s", (incident["id"],)).fetchone()
    assert status["status"] == "resolved"
