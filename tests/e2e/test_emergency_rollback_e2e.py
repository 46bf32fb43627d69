"""emergency_rollback under the real scheduler and triggerer against the stack's sandbox: a rollback to a version
stops trading, rolls back and restores, and the real kubectl confirms images, replicas and revisions; a second run
triggered meanwhile waits its turn (one run at a time), and being a dry run changes nothing and plans object by
object; deployments another runbook holds are refused with a message naming the holder and nothing changed; an
unpullable target fails the run as a P1 with trading left stopped. (Every invalid input through the REST API, 400
and no run, and the CLI's non-zero exit: tests/e2e/test_forms_e2e.py.)"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import psycopg
import pytest

from tradeops.changes.locks import ChangeLocks

pytestmark = pytest.mark.e2e
DAG = "emergency_rollback"
REGISTRY = "registry.quantnova.internal/grandmodel"
TRADING = ["data-handler", "strategic-marl", "tactical-marl", "risk-management", "execution-engine"]
FORM = {"deployments": ["tactical-marl"], "reason": "e2e: fills rejected since 1.8.2", "confirm": True}


def picture(kubectl) -> dict[str, dict]:
    """What kubectl says of the trading services: replicas, images, revision, generation."""
    items = {d["metadata"]["name"]: d for d in kubectl.json("get", "deployments")["items"]}
    return {
        name: {
            "replicas": items[name]["spec"]["replicas"],
            "images": [c["image"] for c in items[name]["spec"]["template"]["spec"]["containers"]],
            "revision": int(items[name]["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
            "generation": items[name]["metadata"]["generation"],
        }
        for name in TRADING
    }


@pytest.fixture
def cluster(stack, kubectl_for):
    """Admin kubectl on the stack's sandbox; the trading services put back as they were afterwards."""
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    before = {name: kubectl.json("get", "deployment", name) for name in TRADING}
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)
    yield kubectl
    for name, obj in before.items():
        patch = [
            {"op": "replace", "path": "/spec/template", "value": obj["spec"]["template"]},
            {"op": "replace", "path": "/spec/replicas", "value": obj["spec"]["replicas"]},
            {"op": "replace", "path": "/metadata/annotations", "value": obj["metadata"]["annotations"]},
            {"op": "replace", "path": "/spec/progressDeadlineSeconds", "value": obj["spec"]["progressDeadlineSeconds"]},
        ]
        kubectl.ok("patch", "deployment", name, "--type=json", "-p", json.dumps(patch))
    for name in TRADING:
        kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=120s")


def test_a_rollback_to_a_version_and_a_second_run_that_waits_its_turn(stack, cluster):
    before = picture(cluster)
    first = stack.client.trigger(DAG, {"target": "1.8.1", **FORM})
    second = stack.client.trigger(DAG, {"target": "1.8.0", **FORM, "dry_run": True})

    seen = set()
    while stack.client.dag_run(DAG, first)["state"] in ("queued", "running"):
        seen.add(stack.client.dag_run(DAG, second)["state"])
        time.sleep(0.5)
    assert seen == {"queued"}, "max_active_runs=1: the second run waited for the first"
    assert stack.client.dag_run(DAG, first)["state"] == "success"

    after = picture(cluster)
    assert after["tactical-marl"]["images"] == [f"{REGISTRY}/tactical-marl:1.8.1"]
    assert after["tactical-marl"]["revision"] > before["tactical-marl"]["revision"]
    assert {n: s["replicas"] for n, s in after.items()} == {n: s["replicas"] for n, s in before.items()}
    pods = cluster.json("get", "pods", "-l", "app=tactical-marl")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"{REGISTRY}/tactical-marl:1.8.1"}
    report = stack.client.xcom(DAG, first, "report")
    assert report["outcome"] == "done, trading resumed" and report["by"]

    assert stack.client.wait_for_run(DAG, second, timeout=120)["state"] == "success"
    assert picture(cluster) == after, "the dry run changed nothing"
    planned = stack.client.xcom(DAG, second, "stop_trading")
    images = [(c["name"], c["before"], c["after"]) for c in planned["plan"] if c["field"].startswith("image[")]
    assert images == [("tactical-marl", f"{REGISTRY}/tactical-marl:1.8.1", f"{REGISTRY}/tactical-marl:1.8.0")]
    stops = {c["name"]: c["before"] for c in planned["plan"] if c["field"] == "spec.replicas" and c["after"] == 0}
    assert stops == {name: state["replicas"] for name, state in after.items() if state["replicas"]}
    assert planned["stopped"] == [] and planned["dry_run"] is True


def test_deployments_another_runbook_holds_are_refused_naming_the_holder(stack, cluster):
    before = picture(cluster)
    locks = ChangeLocks(stack.settings["postgres"]["state_dsn"])
    holder = "blue_green_deploy/manual__e2e"
    locks.acquire("grandmodel", ["tactical-marl"], holder, timedelta(minutes=5))
    try:
        run_id = stack.client.trigger(DAG, {"target": "1.8.1", **FORM})
        assert stack.client.wait_for_run(DAG, run_id, timeout=120)["state"] == "failed"
    finally:
        locks.release(holder)
    message = f"grandmodel/tactical-marl is held by {holder}"
    assert message in stack.client.task_log_containing(DAG, run_id, "stop_trading", message)
    assert picture(cluster) == before, "nothing changed"


def test_an_unpullable_target_is_a_p1_and_trading_is_left_stopped(stack, cluster):
    broken = f"{REGISTRY}/tactical-marl:9.9.9"
    cluster.ok("patch", "deployment", "tactical-marl", "-p", json.dumps({"spec": {"progressDeadlineSeconds": 5}}))
    stack.sandbox.set_faults("kubernetes", unpullable_images=[broken])
    try:
        run_id = stack.client.trigger(DAG, {"target": "9.9.9", **FORM})
        run = stack.client.wait_for_run(DAG, run_id, timeout=240)
    finally:
        stack.sandbox.clear_faults("kubernetes")
    states = stack.client.task_states(DAG, run_id)
    assert run["state"] == "failed", states
    assert states["wait_rollouts"] == "failed" and states["health"] == "upstream_failed", states
    assert {name: state["replicas"] for name, state in picture(cluster).items()} == dict.fromkeys(TRADING, 0)
    report = stack.client.xcom(DAG, run_id, "report")
    assert "FAILED at wait_rollouts: trading LEFT STOPPED" in report["outcome"]
    incident, _ = stack.client.incident(report["incident_id"])
    with psycopg.connect(stack.settings["postgres"]["state_dsn"]) as state:  # no P1 escalating through later tests
        state.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now() WHERE id = %s", (incident["id"],)
        )
    assert incident["severity"] == "P1"
