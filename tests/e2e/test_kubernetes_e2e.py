"""Set an image and wait for the rollout under the real scheduler and triggerer: the sensor holds no worker while a
60 s rollout runs, and a broken image fails the DAG with kubectl's message."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e
REGISTRY = "registry.quantnova.internal/grandmodel"


@pytest.fixture
def cluster(stack, kubectl_for):
    """Admin kubectl on the stack's sandbox; tactical-marl put back as it was afterwards."""
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    before = kubectl.json("get", "deployment", "tactical-marl")
    yield kubectl
    stack.sandbox.clear_faults("kubernetes")
    kubectl.ok(
        "patch",
        "deployment",
        "tactical-marl",
        "--type=json",
        "-p",
        json.dumps(
            [
                {"op": "replace", "path": "/spec/template", "value": before["spec"]["template"]},
                {"op": "replace", "path": "/spec/replicas", "value": before["spec"]["replicas"]},
                {
                    "op": "replace",
                    "path": "/spec/progressDeadlineSeconds",
                    "value": before["spec"]["progressDeadlineSeconds"],
                },
            ]
        ),
    )
    kubectl.ok("rollout", "status", "deployment/tactical-marl", "--timeout=120s")


def test_a_60s_rollout_holds_no_worker(stack, cluster, watch_task):
    cluster.ok("scale", "deployment/tactical-marl", "--replicas=3")
    cluster.ok("rollout", "status", "deployment/tactical-marl", "--timeout=60s")
    stack.sandbox.set_faults("kubernetes", pod_ready_seconds=20)  # three pods one at a time: about a minute
    stack.client.wait_for_dags({"e2e_rollout"})
    stack.client.set_paused("e2e_rollout", False)
    run_id = stack.client.trigger("e2e_rollout", {"image": f"{REGISTRY}/tactical-marl:1.9.0"})

    ti, seconds, first_seen = watch_task(stack, "e2e_rollout", run_id, "wait_for_rollout", timeout=240)
    assert ti["state"] == "success"
    assert seconds.get("deferred", 0) > 40, f"the wait happened in the triggerer: {seconds}"
    # A worker runs only the task's start (process, DAG parse, the provider's Kubernetes imports: ~1.5-2 s on two
    # idle cores, 7.7 s seen on a loaded machine) and the first read; that cost is fixed, while a poking sensor
    # would hold the worker for the whole wait and leave ~0 s deferred.
    running = seconds.get("running", 0)
    assert running < seconds["deferred"] / 4, f"a worker ran the sensor only briefly: {seconds}"
    assert stack.client.wait_for_run("e2e_rollout", run_id, timeout=60)["state"] == "success"
    pods = cluster.json("get", "pods", "-l", "app=tactical-marl")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"{REGISTRY}/tactical-marl:1.9.0"}
    changes = stack.client.xcom("e2e_rollout", run_id, "set_image")
    assert changes[0]["to"] == f"{REGISTRY}/tactical-marl:1.9.0" and changes[0]["changed"] is True


def test_a_broken_image_fails_the_dag_with_kubectls_message(stack, cluster, watch_task):
    broken = f"{REGISTRY}/tactical-marl:9.9.9"
    stack.sandbox.set_faults("kubernetes", unpullable_images=[broken])
    cluster.ok("patch", "deployment", "tactical-marl", "-p", '{"spec":{"progressDeadlineSeconds":5}}')
    stack.client.wait_for_dags({"e2e_rollout"})
    stack.client.set_paused("e2e_rollout", False)
    run_id = stack.client.trigger("e2e_rollout", {"image": broken})
    ti, _, _ = watch_task(stack, "e2e_rollout", run_id, "wait_for_rollout", timeout=120)
    assert ti["state"] == "failed"
    assert stack.client.wait_for_run("e2e_rollout", run_id, timeout=60)["state"] == "failed"
    message = 'deployment "tactical-marl" exceeded its progress deadline'
    log = stack.client.task_log_containing("e2e_rollout", run_id, "wait_for_rollout", message, ti["try_number"])
    assert message in log
