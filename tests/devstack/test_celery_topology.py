"""The distributed topology as plain processes (``make up-celery``): the CeleryExecutor with two workers, the
sandbox's Redis as broker and its PostgreSQL as result backend. A runbook's tasks run on both workers, each on the
queue of its domain (the cluster work on one, the database work on the other); a worker SIGKILLed mid-run costs the
run nothing: its task times out (heartbeat) and its retry runs on the other worker.

Runs before tests/e2e (a separate stack: the two are never up at the same time)."""

from __future__ import annotations

import time

import pytest

from devstack.drill import Drill
from devstack.stack import DEMO_CONFIG, LocalStack

pytestmark = pytest.mark.e2e
CLUSTER, DATA = "cluster", "data"


@pytest.fixture(scope="module")
def celery_stack(run_dir):
    with LocalStack(
        run_dir("celery-stack"),
        auto_ports=True,
        celery=True,
        config_path=DEMO_CONFIG,
        log=lambda message: None,
        sample_memory=False,
        extra_env={
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            # A killed worker's task is given up after 20 s without a heartbeat (300 s by default).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        },
    ) as stack:
        Drill(stack).wait_for_engine()  # the health check's escalation_engine check needs it deferred
        yield stack


def worker_of(task_instance: dict) -> str:
    """The worker a task ran on: its hostname is ``<worker name>.<host>`` (tradeops.workers.worker_hostname)."""
    return (task_instance.get("hostname") or "").split(".", 1)[0]


def run_tasks(stack, dag_id: str, run_id: str) -> dict[str, dict]:
    return {ti["task_id"]: ti for ti in stack.client.task_instances(dag_id, run_id)}


def test_a_runbook_runs_on_both_workers_each_task_on_its_domains_queue(celery_stack, kubectl_for):
    dag_id = "post_market_shutdown"
    stack = celery_stack
    stack.client.wait_for_dags({dag_id})
    stack.client.set_paused(dag_id, False)
    run_id = stack.client.trigger(dag_id)
    assert stack.client.wait_for_run(dag_id, run_id, timeout=600)["state"] == "success"

    tasks = run_tasks(stack, dag_id, run_id)
    ran = {task_id: ti for task_id, ti in tasks.items() if ti["state"] == "success" and ti["hostname"]}
    by_queue: dict[str, set[str]] = {}
    for ti in ran.values():
        by_queue.setdefault(ti["queue"], set()).add(worker_of(ti))
    assert by_queue["kubernetes"] == {CLUSTER}, by_queue
    assert by_queue["database"] == {DATA}, by_queue
    assert {worker_of(ti) for ti in ran.values()} == {CLUSTER, DATA}
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    for deployment in stack.config.kubernetes.deployments:
        if deployment.role in stack.config.trading_day.scale_roles:
            live = kubectl.json("get", "deployment", deployment.name, "-n", deployment.namespace)
            assert live["spec"]["replicas"] == deployment.replicas.off_hours, deployment.name


def test_a_worker_killed_mid_run_costs_the_run_nothing(celery_stack):
    dag_id = "daily_health_check"
    stack = celery_stack
    stack.client.wait_for_dags({dag_id})
    stack.client.set_paused(dag_id, False)
    # Every platform answer takes 3 s: the checks are still running when a worker is killed.
    stack.sandbox.set_faults("platform_api", latency_ms=3000)
    try:
        run_id = stack.client.trigger(dag_id)
        victim = None
        deadline = time.monotonic() + 180
        while victim is None and time.monotonic() < deadline:
            running = [ti for ti in run_tasks(stack, dag_id, run_id).values() if ti["state"] == "running"]
            victim = next((ti for ti in running if worker_of(ti) in (CLUSTER, DATA)), None)
            time.sleep(0.2)
        assert victim is not None, "no task seen running on a worker"
        killed = worker_of(victim)
        stack.airflow.kill((f"worker-{killed}",))

        run = stack.client.wait_for_run(dag_id, run_id, timeout=420)
        task = stack.client.task_instance(dag_id, run_id, victim["task_id"])
    finally:
        stack.sandbox.clear_faults("platform_api")
    assert run["state"] == "success", run_tasks(stack, dag_id, run_id)
    survivor = DATA if killed == CLUSTER else CLUSTER
    assert task["state"] == "success" and task["try_number"] == victim["try_number"] + 1
    assert worker_of(task) == survivor, f"{victim['task_id']} retried on {task['hostname']}"
