"""The distributed topology as plain processes (``make up-celery``): the CeleryExecutor with two workers, the
sandbox's Redis as broker and its PostgreSQL as result backend. A runbook's tasks run on both workers, each on the
queue of its domain (the cluster work on one, the database work on the other); a worker SIGKILLed while it closes
the book costs the day nothing: its task times out (heartbeat), its retry runs on the other worker, and nothing is
applied twice (the platform's trades, the real kubectl); a task a killed worker had taken from the broker but not
started is sent again (Airflow's queued timeout) and runs on the restarted worker.

Runs before tests/e2e (a separate stack: the two are never up at the same time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
import psycopg
import pytest

from devstack.drill import Drill
from devstack.stack import DEMO_CONFIG, LocalStack
from tests.waiting import wait_for

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
            # A task the killed worker had taken from the broker but not started stays `queued` (its message is
            # unacknowledged until the visibility timeout): Airflow sends it again after 60 s (600 s by default).
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        },
    ) as stack:
        Drill(stack).wait_for_engine()  # the health check's escalation_engine check needs it deferred
        yield stack


def worker_of(task_instance: dict) -> str:
    """The worker a task ran on: its hostname is ``<worker name>.<host>`` (tradeops.workers.worker_hostname)."""
    return (task_instance.get("hostname") or "").split(".", 1)[0]


def run_tasks(stack, dag_id: str, run_id: str) -> dict[str, dict]:
    return {ti["task_id"]: ti for ti in stack.client.task_instances(dag_id, run_id)}


def running(stack, dag_id: str, run_id: str) -> list[dict]:
    """The run's task instances running on one of the two workers now."""
    tasks = run_tasks(stack, dag_id, run_id).values()
    return [ti for ti in tasks if ti["state"] == "running" and worker_of(ti) in (CLUSTER, DATA)]


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


@dataclass
class TradingDay:
    """A trading day as post-market shutdown finds it: positions open, trading services at their market-hours count."""

    opened: list[str]
    trading: list
    since: datetime

    @classmethod
    def open(cls, stack, kubectl) -> TradingDay:
        trading = [d for d in stack.config.kubernetes.deployments if d.role in stack.config.trading_day.scale_roles]
        for deployment in trading:
            replicas = f"--replicas={deployment.replicas.market_hours}"
            kubectl.ok("scale", f"deployment/{deployment.name}", replicas, "-n", deployment.namespace)
        with psycopg.connect(stack.settings["postgres"]["platform_dsn"]) as conn:
            conn.execute("UPDATE positions SET qty = 5 WHERE symbol IN (SELECT symbol FROM positions LIMIT 4)")
            opened = sorted(s for (s,) in conn.execute("SELECT symbol FROM positions WHERE qty <> 0"))
        assert opened, "a book to close"
        return cls(opened, trading, datetime.now(UTC))

    def assert_closed_once(self, stack, kubectl) -> None:
        """The book flat with one closing trade per position, the trading services at their off-hours count."""
        with psycopg.connect(stack.settings["postgres"]["platform_dsn"]) as conn:
            assert conn.execute("SELECT count(*) FROM positions WHERE qty <> 0").fetchone()[0] == 0, "the book is flat"
            closing = conn.execute(
                "SELECT symbol, count(*) FROM trades WHERE strategy = 'flatten' AND trade_ts >= %s GROUP BY symbol",
                (self.since,),
            ).fetchall()
        assert dict(closing) == dict.fromkeys(self.opened, 1), "each position closed once, not again by a retry"
        for deployment in self.trading:
            live = kubectl.json("get", "deployment", deployment.name, "-n", deployment.namespace)
            assert live["spec"]["replicas"] == deployment.replicas.off_hours, deployment.name


def celery_control(stack, command: str) -> str:
    """Run ``command`` with the executor's Celery ``app`` in scope, as the workers see it; its output."""
    code = f"from airflow.providers.celery.executors.celery_executor import app\n{command}"
    result = subprocess.run([sys.executable, "-c", code], env=stack.airflow.env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.timeout(900)
def test_a_worker_killed_while_the_book_closes_costs_the_day_nothing(celery_stack, kubectl_for):
    """``post_market_shutdown`` on a trading day (positions open, trading services at their market-hours count): the
    worker closing the book is SIGKILLed mid-close. Airflow gives its task up (heartbeat) and retries it on the other
    worker; the killed worker comes back, as its supervisor would restart it, for its own queue's work. The day
    ends as planned, nothing applied twice: one closing trade per position (the platform's database), the book flat,
    the trading services at their off-hours count (the real kubectl)."""
    dag_id = "post_market_shutdown"
    stack = celery_stack
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    day = TradingDay.open(stack, kubectl)
    stack.client.wait_for_dags({dag_id})
    stack.client.set_paused(dag_id, False)
    # Every platform answer takes 3 s: the close-out is still running when its worker is killed.
    stack.sandbox.set_faults("platform_api", latency_ms=3000)
    try:
        run_id = stack.client.trigger(dag_id)
        victim = wait_for(
            lambda: next((ti for ti in running(stack, dag_id, run_id) if ti["task_id"] == "close_positions"), None),
            timeout=180,
            what="close_positions running on a worker",
        )
        killed = worker_of(victim)
        stack.airflow.kill((f"worker-{killed}",))
        survivor = DATA if killed == CLUSTER else CLUSTER

        def retried() -> dict | None:
            task = stack.client.task_instance(dag_id, run_id, "close_positions")
            return task if task["try_number"] > victim["try_number"] and worker_of(task) == survivor else None

        wait_for(retried, timeout=180, every=0.5, what="close_positions retried on the other worker")
    finally:
        stack.sandbox.clear_faults("platform_api")
    stack.airflow.start((f"worker-{killed}",))
    stack.airflow.wait_workers()

    run = stack.client.wait_for_run(dag_id, run_id, timeout=420)
    assert run["state"] == "success", run_tasks(stack, dag_id, run_id)
    task = stack.client.task_instance(dag_id, run_id, "close_positions")
    assert task["state"] == "success" and task["try_number"] == victim["try_number"] + 1
    assert worker_of(task) == survivor, f"close_positions retried on {task['hostname']}"
    day.assert_closed_once(stack, kubectl)


@pytest.mark.timeout(900)
def test_a_task_a_killed_worker_had_taken_but_not_started_is_sent_again(celery_stack, kubectl_for):
    """The ``cluster`` worker takes ``scale_down`` from the broker but never starts it (its pool is stopped), then is
    SIGKILLed. The task stays ``queued`` (its message unacknowledged until the visibility timeout, 6 h); Airflow's
    queued timeout (60 s here) sends it again, without spending a try, and the restarted worker runs it. The day ends
    as planned: the book flat, one closing trade per position, the trading services at their off-hours count."""
    dag_id = "post_market_shutdown"
    stack = celery_stack
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    day = TradingDay.open(stack, kubectl)
    stack.client.wait_for_dags({dag_id})
    stack.client.set_paused(dag_id, False)
    (node,) = [name for name in stack.airflow.wait_workers() if name.startswith(f"{CLUSTER}@")]
    # `cluster` takes only the cluster work now, and starts none of it: its pool processes are stopped.
    celery_control(stack, f"app.control.cancel_consumer('default', destination=[{node!r}], reply=True)")
    (worker,) = [child for child in stack.airflow.children if child.name == f"worker-{CLUSTER}"]
    for pool_process in psutil.Process(worker.pid).children():
        os.kill(pool_process.pid, signal.SIGSTOP)

    run_id = stack.client.trigger(dag_id)

    def taken_by_cluster() -> bool:
        inspect = f"app.control.inspect(destination=[{node!r}])"
        taken = celery_control(stack, f"print({inspect}.reserved(), {inspect}.active())")
        return "scale_down" in taken and stack.client.task_instance(dag_id, run_id, "scale_down")["state"] == "queued"

    wait_for(taken_by_cluster, timeout=300, every=1, what="scale_down taken by the cluster worker")
    stack.airflow.kill((f"worker-{CLUSTER}",))
    stack.airflow.start((f"worker-{CLUSTER}",))
    stack.airflow.wait_workers()

    run = stack.client.wait_for_run(dag_id, run_id, timeout=420)
    assert run["state"] == "success", run_tasks(stack, dag_id, run_id)
    task = stack.client.task_instance(dag_id, run_id, "scale_down")
    assert task["try_number"] == 1 and worker_of(task) == CLUSTER, task
    sent_again = stack.client.event_logs(dag_id, "stuck in queued reschedule")
    assert [log["task_id"] for log in sent_again if log["run_id"] == run_id] == ["scale_down"], sent_again
    day.assert_closed_once(stack, kubectl)
