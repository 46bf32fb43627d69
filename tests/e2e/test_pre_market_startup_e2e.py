"""pre_market_startup under the real scheduler, triggerer and api-server, against the stack's sandbox: the happy
path scales data feeds and agents to market hours (the real kubectl confirms the replica counts) and posts one
checklist, and a second run for the same session posts none; margin too low scales nothing, opens one incident at
the gate severity and fails the run with no "startup complete"; a stuck rollout fails the run with kubectl's
message. The scaled deployments are back at their off-hours replicas afterwards."""

from __future__ import annotations

import json

import pytest

from tradeops.config import load_config

pytestmark = pytest.mark.e2e
DAG = "pre_market_startup"
CONFIG = load_config()
SCALED = [d for d in CONFIG.kubernetes.deployments if d.role in CONFIG.trading_day.scale_roles]


@pytest.fixture
def startup(stack, kubectl_for):
    """Admin kubectl on the stack's sandbox; the scaled deployments at off hours before and after, faults cleared
    and the monitoring back in its off-hours mode."""
    from sandbox.connections import connections_in_environment
    from tradeops.platform.hooks import TradingPlatformHook

    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])

    def off_hours() -> None:
        for d in SCALED:
            kubectl.ok("scale", f"deployment/{d.name}", f"--replicas={d.replicas.off_hours}")
        for d in SCALED:
            kubectl.ok("rollout", "status", f"deployment/{d.name}", "--timeout=120s")

    off_hours()
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)
    yield kubectl
    stack.sandbox.clear_faults("platform_api")
    stack.sandbox.clear_faults("kubernetes")
    off_hours()
    with connections_in_environment(stack.settings, CONFIG):
        platform = TradingPlatformHook(CONFIG.connections.platform_api)
        mode = CONFIG.trading_day.monitoring_modes.off_hours
        platform.request("PUT", "/v1/monitoring/mode", json={"mode": mode, "reason": "e2e teardown"})


def replicas(kubectl) -> dict[str, int]:
    return {d.name: kubectl.json("get", "deployment", d.name)["spec"]["replicas"] for d in SCALED}


def run_startup(stack) -> tuple[dict, dict[str, str]]:
    run_id = stack.client.trigger(DAG)
    run = stack.client.wait_for_run(DAG, run_id, timeout=300)
    return run, stack.client.task_states(DAG, run_id)


def checklists(stack) -> list[dict]:
    return [m for m in stack.sandbox.slack_messages("#trading-ops") if "Pre-market startup" in m["text"]]


def open_incidents(stack, key: str) -> list[dict]:
    incidents = stack.client._tradeops("/incidents.json?limit=100")["incidents"]
    return [i for i in incidents if i["dedup_key"] == key and i["status"] != "resolved"]


def test_startup_scales_to_market_hours_and_a_second_run_posts_no_second_checklist(stack, startup):
    before = len(checklists(stack))
    run, states = run_startup(stack)
    assert run["state"] == "success", states
    assert states["rollout_market_hours"] == "success" and states["verdict"] == "skipped"
    assert replicas(startup) == {d.name: d.replicas.market_hours for d in SCALED}
    for d in SCALED:
        ready = startup.json("get", "deployment", d.name)["status"].get("readyReplicas")
        assert ready == d.replicas.market_hours, d.name
    posted = checklists(stack)[before:]
    assert len(posted) == 1 and "startup complete" in posted[0]["text"].splitlines()[0]

    again, states = run_startup(stack)
    assert again["state"] == "success", states
    assert replicas(startup) == {d.name: d.replicas.market_hours for d in SCALED}
    assert checklists(stack)[before:] == posted, "the same session: no second checklist"


def test_margin_too_low_scales_nothing_pages_at_the_gate_severity_and_fails(stack, startup):
    off_hours = replicas(startup)
    before = len(checklists(stack))
    stack.sandbox.set_faults("platform_api", margin_available_pct=10.0)
    run, states = run_startup(stack)
    assert run["state"] == "failed"
    assert states["account_ready"] == "failed" and states["scale_market_hours"] == "upstream_failed"
    assert replicas(startup) == off_hours
    [incident] = open_incidents(stack, "startup:pre_market_startup")
    assert incident["severity"] == CONFIG.trading_day.gate_severity
    assert "margin available 10% (minimum 25%)" in incident["summary"]
    [checklist] = checklists(stack)[before:]
    assert "startup FAILED — trading not started" in checklist["text"]
    assert "startup complete" not in checklist["text"]


def test_a_stuck_rollout_fails_the_run_with_kubectls_message(stack, startup):
    stuck = next(d for d in SCALED if d.name == "tactical-marl")
    deadline = startup.json("get", "deployment", stuck.name)["spec"]["progressDeadlineSeconds"]
    startup.ok("patch", "deployment", stuck.name, "-p", json.dumps({"spec": {"progressDeadlineSeconds": 5}}))
    stack.sandbox.set_faults("kubernetes", unpullable_images=[stuck.image])
    try:
        run, states = run_startup(stack)
        assert run["state"] == "failed"
        assert states["scale_market_hours"] == "success" and states["rollout_market_hours"] == "failed"
        assert states["agent_communication"] == states["monitoring_mode"] == "upstream_failed"
        [incident] = open_incidents(stack, "runbook:pre_market_startup")
        assert incident["details"]["task_id"] == "rollout_market_hours"
        assert f'deployment "{stuck.name}" exceeded its progress deadline' in incident["summary"]
        assert "startup FAILED" in checklists(stack)[-1]["text"]
    finally:
        stack.sandbox.clear_faults("kubernetes")
        startup.ok("patch", "deployment", stuck.name, "-p", json.dumps({"spec": {"progressDeadlineSeconds": deadline}}))
