"""emergency_rollback run in-process (``dag.test()``, triggered as ``dag_test``) with its real operators against
the sandbox's Kubernetes API, platform API, state database and Slack: a version rollback stops trading, rolls back,
restores the recorded replicas and reports who and why; a dry run changes nothing, object by object, and returns the
plan; an unpullable target is a P1 with trading left stopped; a deployment another runbook holds is refused, naming
the holder, with nothing changed; the automatic rollback policy answers a weekly window whose pinned image fails to
roll out."""

from __future__ import annotations

import json
import time
import types
from datetime import timedelta

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tests.dagtest import runnable, states
from tradeops.changes.locks import ChangeLocks
from tradeops.incidents import store
from tradeops.rollback.forms import trading_services

DAG = "emergency_rollback"
REGISTRY = "registry.quantnova.internal/grandmodel"
FORM = {"reason": "fills rejected since 1.8.2", "confirm": True}


def xcom(run, task_id: str):
    value = run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def cluster(k8s_connection, airflow_connections, config):
    """The trading services and tactical-marl put back as they were (template, replicas, annotations)."""
    from tradeops.kubernetes.hooks import KubernetesApiHook

    hook = KubernetesApiHook(k8s_connection("admin"))
    names = trading_services(config)

    def snapshot() -> dict[str, dict]:
        objects = {name: hook.deployment("grandmodel", name) for name in names}
        return {
            name: {
                "replicas": obj["spec"]["replicas"],
                "template": obj["spec"]["template"],
                "annotations": obj["metadata"].get("annotations") or {},
                "generation": obj["metadata"]["generation"],
                "progressDeadlineSeconds": obj["spec"].get("progressDeadlineSeconds"),
            }
            for name, obj in objects.items()
        }

    before = snapshot()
    yield types.SimpleNamespace(hook=hook, names=names, snapshot=snapshot, before=before)
    for name, was in before.items():
        hook.patch_deployment(
            "grandmodel",
            name,
            [
                {"op": "replace", "path": "/spec/template", "value": was["template"]},
                {"op": "replace", "path": "/spec/replicas", "value": was["replicas"]},
                {"op": "replace", "path": "/spec/progressDeadlineSeconds", "value": was["progressDeadlineSeconds"]},
                {"op": "replace", "path": "/metadata/annotations", "value": was["annotations"]},
            ],
        )

    def observed(obj: dict) -> bool:
        return obj["status"].get("observedGeneration", 0) >= obj["metadata"]["generation"]

    settled = time.monotonic() + 30  # the controller answers the restore (revision annotation) before the next test
    while time.monotonic() < settled and not all(observed(hook.deployment("grandmodel", name)) for name in before):
        time.sleep(0.2)


@pytest.fixture
def rollback(dagbag, airflow_db, airflow_connections, sandbox, sandbox_settings, recheck_after, cluster):
    recheck_after("1s")
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    store.migrate(sandbox_settings["postgres"]["state_dsn"])
    return runnable(dagbag, DAG)


def incidents_of(state_dsn: str, run) -> list[dict]:
    with psycopg.connect(state_dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dag_id = %s AND run_id = %s ORDER BY id", (DAG, run.run_id)
        ).fetchall()


def reports(sandbox) -> list[str]:
    return [m["text"] for m in sandbox.slack_messages() if m["text"].startswith("*Emergency rollback")]


def test_a_version_rollback_stops_trading_rolls_back_restores_and_reports(rollback, cluster, sandbox, sandbox_settings):
    run = rollback.test(run_conf={"target": "1.8.1", "deployments": ["tactical-marl"], **FORM, "dry_run": False})

    assert run.state == "success", states(run)
    after = cluster.snapshot()
    image = after["tactical-marl"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{REGISTRY}/tactical-marl:1.8.1"
    assert {n: s["replicas"] for n, s in after.items()} == {n: s["replicas"] for n, s in cluster.before.items()}
    planned = xcom(run, "stop_trading")
    assert sorted(planned["stopped"]) == sorted(n for n, s in cluster.before.items() if s["replicas"])
    assert {"field": "image[tactical-marl]", "after": image} in [
        {"field": c["field"], "after": c["after"]} for c in planned["plan"]
    ]
    [text] = reports(sandbox)
    assert "done, trading resumed" in text and "By dag_test" in text and "fills rejected since 1.8.2" in text
    assert f"tactical-marl: {REGISTRY}/tactical-marl:1.8.2 → {image}" in text or "tactical-marl:" in text
    [incident] = incidents_of(sandbox_settings["postgres"]["state_dsn"], run)
    assert incident["severity"] == "P2"
    assert ChangeLocks(sandbox_settings["postgres"]["state_dsn"]).held("grandmodel") == [], "released"


def test_a_dry_run_changes_nothing_object_by_object_and_returns_the_plan(rollback, cluster, sandbox):
    run = rollback.test(run_conf={"target": "1.8.1", "deployments": ["tactical-marl"], **FORM, "dry_run": True})

    assert run.state == "success", states(run)
    assert cluster.snapshot() == cluster.before
    planned = xcom(run, "stop_trading")
    assert planned["dry_run"] is True and planned["stopped"] == []
    current = cluster.before["tactical-marl"]["template"]["spec"]["containers"][0]["image"]
    images = [c for c in planned["plan"] if c["field"].startswith("image[")]
    assert images == [
        {
            "kind": "Deployment",
            "namespace": "grandmodel",
            "name": "tactical-marl",
            "field": "image[tactical-marl]",
            "before": current,
            "after": f"{REGISTRY}/tactical-marl:1.8.1",
        }
    ]
    stops = {c["name"]: c["before"] for c in planned["plan"] if c["field"] == "spec.replicas" and c["after"] == 0}
    assert stops == {n: s["replicas"] for n, s in cluster.before.items() if s["replicas"]}
    assert states(run)["roll_back_images"] == "skipped" and reports(sandbox) == []


def test_the_dry_run_asks_the_api_server_which_stores_nothing_and_refuses_a_stale_plan(cluster, config):
    from tradeops.rollback.cluster import refused_on_server
    from tradeops.rollback.plans import rollback_target

    hook = cluster.hook
    objects = {name: hook.deployment("grandmodel", name) for name in cluster.names}
    pattern = config.kubernetes.allowed_image_pattern
    target = rollback_target(objects["tactical-marl"], "tactical-marl", "1.8.1", pattern)
    running = [name for name, state in cluster.before.items() if state["replicas"]]

    assert refused_on_server(hook, "grandmodel", objects, [target], {}, running) == []
    assert cluster.snapshot() == cluster.before, "dryRun=All stores nothing"

    # Only the controllers' status moved on since the plan's read (an older resourceVersion, the same spec): no refusal.
    aged = {name: {**obj, "metadata": {**obj["metadata"], "resourceVersion": "1"}} for name, obj in objects.items()}
    assert refused_on_server(hook, "grandmodel", aged, [target], {}, running) == []

    # Someone changes a trading service after the plan read it: its stop, guarded by that read, is refused.
    hook.patch_deployment("grandmodel", running[0], {"metadata": {"annotations": {"tradeops.test/touched": "1"}}})
    [refused] = refused_on_server(hook, "grandmodel", objects, [target], {}, running)
    assert refused.startswith(f"{running[0]}: ") and "conflict" in refused


def test_an_unpullable_target_is_a_p1_and_trading_is_left_stopped(rollback, cluster, sandbox, sandbox_settings):
    broken = f"{REGISTRY}/tactical-marl:9.9.9"
    sandbox.set_faults("kubernetes", unpullable_images=[broken])
    cluster.hook.patch_deployment("grandmodel", "tactical-marl", {"spec": {"progressDeadlineSeconds": 3}})

    run = rollback.test(run_conf={"target": "9.9.9", "deployments": ["tactical-marl"], **FORM, "dry_run": False})

    assert run.state == "failed"
    assert states(run)["wait_rollouts"] == "failed" and states(run)["health"] == "upstream_failed"
    assert {n: s["replicas"] for n, s in cluster.snapshot().items()} == dict.fromkeys(cluster.names, 0)
    [incident] = incidents_of(sandbox_settings["postgres"]["state_dsn"], run)
    assert incident["severity"] == "P1"
    [text] = reports(sandbox)
    assert "FAILED at wait_rollouts: trading LEFT STOPPED" in text
    assert ChangeLocks(sandbox_settings["postgres"]["state_dsn"]).held("grandmodel") == [], "released"


def test_deployments_another_runbook_holds_are_refused_naming_the_holder(rollback, cluster, sandbox, sandbox_settings):
    locks = ChangeLocks(sandbox_settings["postgres"]["state_dsn"])
    locks.acquire("grandmodel", ["tactical-marl"], "weekly_maintenance/scheduled__x", timedelta(minutes=5))
    try:
        run = rollback.test(run_conf={"target": "1.8.1", "deployments": ["tactical-marl"], **FORM, "dry_run": False})
    finally:
        locks.release("weekly_maintenance/scheduled__x")

    assert run.state == "failed"
    assert states(run)["stop_trading"] == "failed" and states(run)["roll_back_images"] == "upstream_failed"
    assert cluster.snapshot() == cluster.before, "nothing changed"
    [text] = reports(sandbox)
    assert "REFUSED, nothing changed" in text


def test_a_pinned_image_that_fails_to_roll_out_is_rolled_back_automatically(
    dagbag, rollback, cluster, sandbox, sandbox_settings, config
):
    """The automatic rollback policy, on the real weekly window: its image update sets the pinned image on a
    deployment running an older one, the rollout fails, and once the lease is given back ``roll_back_images``
    triggers ``emergency_rollback`` (previous revision, that deployment only, on the window's incident); that
    run's form, run as triggered, puts the older image back."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    state_dsn = sandbox_settings["postgres"]["state_dsn"]
    with psycopg.connect(state_dsn) as state:  # a window incident left open by another test would be updated instead
        state.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now() WHERE dedup_key = %s",
            ("runbook:weekly_maintenance",),
        )
    pinned = config.kubernetes.deployment("tactical-marl").image
    older = pinned.rsplit(":", 1)[0] + ":1.8.1"
    template = {"spec": {"containers": [{"name": "tactical-marl", "image": older}]}}
    cluster.hook.patch_deployment("grandmodel", "tactical-marl", {"spec": {"template": template}})
    settled = time.monotonic() + 30
    while time.monotonic() < settled:
        obj = cluster.hook.deployment("grandmodel", "tactical-marl")
        status = obj["status"]
        if (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and status.get("updatedReplicas") == status.get("availableReplicas") == obj["spec"]["replicas"]
        ):
            break
        time.sleep(0.2)
    cluster.hook.patch_deployment("grandmodel", "tactical-marl", {"spec": {"progressDeadlineSeconds": 3}})
    sandbox.set_faults("kubernetes", unpullable_images=[pinned])
    try:
        weekly = runnable(dagbag, "weekly_maintenance").test(
            run_conf={"break_glass_reason": "test: pinned image rollout"}, mark_success_pattern="^backup$"
        )
    finally:
        sandbox.clear_faults("kubernetes")

    window = states(weekly)
    assert window["wait_images"] == "failed" and window["roll_back_images"] == "success", window
    with create_session() as session:
        [triggered] = DagRun.find(
            dag_id=DAG, run_id=f"automatic_rollback__weekly_maintenance__{weekly.run_id}", session=session
        )
        conf, run_type = dict(triggered.conf), triggered.run_type
    [incident] = incidents_of_key(state_dsn, "runbook:weekly_maintenance")
    assert run_type == "operator_triggered"
    assert conf == {
        "target": "previous",
        "deployments": ["tactical-marl"],
        "reason": f"automatic: weekly_maintenance run {weekly.run_id} set new images on tactical-marl and "
        "wait_images failed",
        "confirm": True,
        "dry_run": False,
        "incident_id": incident["id"],
    }
    [started] = [e for e in timeline(state_dsn, incident["id"]) if "rolls them back" in e["detail"].get("summary", "")]
    assert started["detail"]["summary"] == (
        f"{conf['reason']}: emergency_rollback run `automatic_rollback__weekly_maintenance__{weekly.run_id}` rolls "
        "them back to their previous revision"
    )

    run = rollback.test(run_conf=conf)
    assert run.state == "success", states(run)
    image = cluster.snapshot()["tactical-marl"]["template"]["spec"]["containers"][0]["image"]
    assert image == older
    [recorded] = incidents_of_key(state_dsn, "runbook:weekly_maintenance")
    assert recorded["id"] == incident["id"] and recorded["details"]["last_occurrence"]["rollback"], "on the incident"
    [done] = [e for e in timeline(state_dsn, incident["id"]) if "By dag_test, target `previous`" in str(e["detail"])]
    assert f"tactical-marl: {pinned} → {older}" in done["detail"]["summary"]


def incidents_of_key(state_dsn: str, key: str) -> list[dict]:
    with psycopg.connect(state_dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key = %s AND status <> 'resolved'", (key,)
        ).fetchall()


def timeline(state_dsn: str, incident_id: int) -> list[dict]:
    with psycopg.connect(state_dsn, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT kind, actor, detail FROM tradeops.incident_events WHERE incident_id = %s ORDER BY id",
            (incident_id,),
        ).fetchall()
