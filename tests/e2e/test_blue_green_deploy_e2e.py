"""blue_green_deploy under the real scheduler, triggerer and api-server, against the stack's sandbox, answered
through the REST API as a person would (``PATCH .../hitlDetails``), with the real kubectl confirming each end state:
a dry run (the form's default) → the plan object by object and nothing written; approved → blue runs the new
version and serves, green gone; rejected → nothing switched, green gone; a green that
never becomes ready → blue keeps serving, green gone, the run failed; the platform reporting the service unhealthy
during the soak → switched back to blue automatically, green gone, the run failed. The demo config's timings
(green must progress within 15 s, a 10 s soak) keep the module within a few minutes; auth-service's image is put
back afterwards."""

from __future__ import annotations

import time

import pytest

from devstack.hitl import answer
from tradeops.config import load_config

pytestmark = pytest.mark.e2e
DAG = "blue_green_deploy"
SERVICE = "auth-service"
CONFIG = load_config()
REPOSITORY = CONFIG.kubernetes.deployment(SERVICE).image.rsplit(":", 1)[0]
BREAK_GLASS = {"break_glass": True, "break_glass_reason": "e2e: whatever the market hours"}


@pytest.fixture(scope="module")
def kubectl(stack, kubectl_for):
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)
    yield kubectl
    stack.sandbox.clear_faults("platform_api")
    stack.sandbox.clear_faults("kubernetes")
    kubectl.ok("set", "image", f"deployment/{SERVICE}", f"{SERVICE}={CONFIG.kubernetes.deployment(SERVICE).image}")
    kubectl.ok("rollout", "status", f"deployment/{SERVICE}", "--timeout=120s")


def cluster(kubectl) -> dict:
    """What kubectl sees of auth-service: blue's image and replicas, the Service's selector, the greens."""
    blue = kubectl.json("get", "deployment", SERVICE)
    greens = kubectl.json("get", "deployments", "-l", "color=green")["items"]
    return {
        "image": blue["spec"]["template"]["spec"]["containers"][0]["image"],
        "replicas": blue["spec"]["replicas"],
        "selector": kubectl.json("get", "service", SERVICE)["spec"]["selector"],
        "greens": [d["metadata"]["name"] for d in greens],
    }


def ended(stack, run_id: str, timeout: float) -> tuple[dict, dict[str, str]]:
    """The finished run and its task states; a failed task's log is in the assertion message when one is off."""
    run = stack.client.wait_for_run(DAG, run_id, timeout=timeout)
    return run, stack.client.task_states(DAG, run_id)


def failure_logs(stack, run_id: str, states: dict[str, str]) -> str:
    """Every task's state, then the log of each that failed (an f-string: pytest shows it whole)."""
    logs = "\n".join(
        f"--- {task}:\n{stack.client.task_log(DAG, run_id, task)[-1500:]}"
        for task, s in states.items()
        if s == "failed"
    )
    return f"{states}\n{logs}"


def deploy(stack, version: str) -> str:
    conf = {"version": version, "services": [SERVICE], "reason": f"e2e: ship {version}", "dry_run": False}
    return stack.client.trigger(DAG, {**conf, **BREAK_GLASS})


def wait_for_task(stack, run_id: str, task_id: str, wanted: set[str], timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = stack.client.task_instance(DAG, run_id, task_id)["state"]
        if state in wanted:
            return state
        assert state not in ("failed", "upstream_failed", "skipped"), (task_id, state)
        time.sleep(0.5)
    states = stack.client.task_states(DAG, run_id)
    stuck = {task: s for task, s in states.items() if s in ("failed", "up_for_retry")}
    logs = "\n".join(f"--- {task}:\n{stack.client.task_log(DAG, run_id, task)[-1500:]}" for task in stuck)
    raise TimeoutError(f"{task_id} never reached {wanted}: {states}\n{logs}")


def test_a_dry_run_plans_object_by_object_and_changes_nothing(stack, kubectl):
    before = cluster(kubectl)
    blue = kubectl.json("get", "deployment", SERVICE)
    conf = {"version": "2.6.0", "services": [SERVICE], "reason": "e2e: plan 2.6.0", **BREAK_GLASS}
    run_id = stack.client.trigger(DAG, conf)  # dry_run is the form's default
    run, states = ended(stack, run_id, timeout=180)
    assert run["state"] == "success", failure_logs(stack, run_id, states)
    assert {states[t] for t in ("prepare_blue", "deploy_green", "approve", "switch", "clean_up")} == {"skipped"}
    assert cluster(kubectl) == before
    now = kubectl.json("get", "deployment", SERVICE)
    assert now["metadata"]["generation"] == blue["metadata"]["generation"], "nothing written"
    plan = stack.client.xcom(DAG, run_id, "plan")
    assert plan["dry_run"] is True and plan["locked"] == []
    fields = [(c["kind"], c["name"], c["field"], c["before"], c["after"]) for c in plan["plan"]]
    image = f"{REPOSITORY}:2.6.0"
    assert ("Deployment", f"{SERVICE}-green", "(create)", None, image) in fields
    assert ("Deployment", SERVICE, f"image[{SERVICE}]", before["image"], image) in fields


def test_approved_green_is_switched_to_soaked_and_becomes_blue(stack, kubectl):
    before = cluster(kubectl)
    run_id = deploy(stack, "2.3.0")
    wait_for_task(stack, run_id, "approve", {"awaiting_input"})
    waiting = cluster(kubectl)
    assert waiting["greens"] == [f"{SERVICE}-green"] and waiting["selector"]["color"] == "blue"
    green = kubectl.json("get", "deployment", f"{SERVICE}-green")
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == f"{REPOSITORY}:2.3.0"
    assert green["status"]["readyReplicas"] == green["spec"]["replicas"] == before["replicas"]
    answer(stack, DAG, run_id, "approve", ["Approve"])
    soaking = wait_for_task(stack, run_id, "soak", {"up_for_reschedule", "running", "success"})
    if soaking != "success":  # a loaded machine may only see the soak done: promote and retire take seconds more
        assert cluster(kubectl)["selector"]["color"] == "green"  # green serves during the soak

    run, states = ended(stack, run_id, timeout=300)
    assert run["state"] == "success", failure_logs(stack, run_id, states)
    soak = stack.client.task_instance(DAG, run_id, "soak")
    assert "green healthy for" in stack.client.task_log(DAG, run_id, "soak", soak["try_number"])
    after = cluster(kubectl)
    assert after == {
        "image": f"{REPOSITORY}:2.3.0",
        "replicas": before["replicas"],
        "selector": {**before["selector"], "color": "blue"},
        "greens": [],
    }


def test_a_rejected_switch_changes_nothing_and_deletes_green(stack, kubectl):
    before = cluster(kubectl)
    run_id = deploy(stack, "2.4.0")
    answer(stack, DAG, run_id, "approve", ["Reject"])
    run, states = ended(stack, run_id, timeout=300)
    assert run["state"] == "success", failure_logs(stack, run_id, states)
    assert states["switch"] == states["soak"] == states["retire_green"] == "skipped"
    assert states["clean_up"] == "success"
    assert cluster(kubectl) == {**before, "selector": {**before["selector"], "color": "blue"}, "greens": []}


def test_an_unready_green_is_deleted_and_blue_keeps_serving(stack, kubectl):
    before = cluster(kubectl)
    stack.sandbox.set_faults("kubernetes", unpullable_images=[f"{REPOSITORY}:6.6.6"])
    try:
        run_id = deploy(stack, "6.6.6")
        run = stack.client.wait_for_run(DAG, run_id, timeout=300)
    finally:
        stack.sandbox.clear_faults("kubernetes")
    states = stack.client.task_states(DAG, run_id)
    assert run["state"] == "failed", failure_logs(stack, run_id, states)
    assert states["green_ready"] == "failed" and states["approve"] == "upstream_failed"
    assert cluster(kubectl) == {**before, "selector": {**before["selector"], "color": "blue"}, "greens": []}


def test_green_failing_during_the_soak_is_switched_back_automatically(stack, kubectl):
    before = cluster(kubectl)
    run_id = deploy(stack, "2.5.0")
    wait_for_task(stack, run_id, "approve", {"awaiting_input"})
    # Only the soak asks the platform (the smoke checks before the approval read the cluster), so the service
    # reported unhealthy from now on fails green at the soak's first look, however short the soak is.
    stack.sandbox.set_faults("platform_api", unhealthy=[SERVICE])
    try:
        answer(stack, DAG, run_id, "approve", ["Approve"])
        run = stack.client.wait_for_run(DAG, run_id, timeout=300)
    finally:
        stack.sandbox.clear_faults("platform_api")
    states = stack.client.task_states(DAG, run_id)
    assert run["state"] == "failed", failure_logs(stack, run_id, states)
    assert states["switch"] == "success" and states["soak"] == "failed" and states["promote"] == "upstream_failed"
    assert cluster(kubectl) == {**before, "selector": {**before["selector"], "color": "blue"}, "greens": []}
    assert "switched back to blue" in stack.client.task_log(DAG, run_id, "soak")
