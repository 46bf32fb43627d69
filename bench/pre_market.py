"""pre_market_startup benchmark on the real stack (scheduler, triggerer, LocalExecutor at parallelism 4, sandbox).

For each of --runs happy-path runs (the scaled deployments put back at their off-hours replicas first, so every run
scales up and waits for real rollouts, pods ready after --pod-ready seconds), from the run's task instances:
- wall time: the run's start to its end;
- the sum of the task durations (start to end of each task that ran; a deferred sensor counts its whole wait);
- the critical path: the longest chain of task durations through the DAG's dependencies.

Target: wall time within 1.25x the critical path (the independent checks run in parallel, and what is left is the
scheduler's hand-offs between dependent tasks). ``dag.test()`` is no measure of this: it runs one task at a time.

    python bench/pre_market.py [--runs 3] [--pod-ready 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
DAG = "pre_market_startup"


def critical_path(upstream: dict[str, set[str]], durations: dict[str, float]) -> tuple[float, list[str]]:
    """The longest chain of ``durations`` through the dependencies (``upstream``: each task's upstream ids)."""
    finish: dict[str, tuple[float, list[str]]] = {}

    def longest(task_id: str) -> tuple[float, list[str]]:
        if task_id not in finish:
            before = max((longest(u) for u in upstream[task_id]), default=(0.0, []), key=lambda item: item[0])
            finish[task_id] = (before[0] + durations.get(task_id, 0.0), [*before[1], task_id])
        return finish[task_id]

    return max((longest(t) for t in upstream), key=lambda item: item[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pod-ready", type=float, default=2.0)
    args = parser.parse_args()

    from airflow.dag_processing.dagbag import DagBag
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from devstack.client import parse
    from devstack.stack import LocalStack
    from tradeops.kubernetes.rollout import rollout_state

    dag = DagBag(dag_folder=str(REPO / "dags" / f"{DAG}.py")).dags[DAG]
    upstream = {task.task_id: set(task.upstream_task_ids) for task in dag.tasks}
    scale = dag.get_task("scale_market_hours")
    stack = LocalStack(REPO / ".run" / "bench-pre-market", auto_ports=True)
    with stack:
        cfg = stack.config
        scaled = [cfg.kubernetes.deployment(name) for name in scale.deployments]
        api_client = k8s_config.new_client_from_config(stack.settings["kubernetes"]["kubeconfig"], context="admin")
        apps = k8s.AppsV1Api(api_client)

        def manifest(name: str, namespace: str) -> dict:
            return json.loads(apps.read_namespaced_deployment(name, namespace, _preload_content=False).data)

        def off_hours() -> None:
            for d in scaled:
                apps.patch_namespaced_deployment(d.name, d.namespace, {"spec": {"replicas": d.replicas.off_hours}})
            for d in scaled:
                while not rollout_state(manifest(d.name, d.namespace)).done:
                    time.sleep(0.2)

        stack.sandbox.set_faults("kubernetes", pod_ready_seconds=args.pod_ready)
        stack.client.wait_for_dags({DAG})
        stack.client.set_paused(DAG, False)
        rows = []
        for _ in range(args.runs):
            off_hours()
            run_id = stack.client.trigger(DAG)
            run = stack.client.wait_for_run(DAG, run_id, timeout=600)
            tis = stack.client.task_instances(DAG, run_id)
            durations = {
                ti["task_id"]: (parse(ti["end_date"]) - parse(ti["start_date"])).total_seconds()
                for ti in tis
                if ti["start_date"] and ti["end_date"] and ti["state"] in ("success", "failed")
            }
            wall = (parse(run["end_date"]) - parse(run["start_date"])).total_seconds()
            path_s, path = critical_path(upstream, durations)
            rows.append({"state": run["state"], "wall": wall, "sum": sum(durations.values()), "path": path_s})
            print(
                f"{run_id}: {run['state']}, wall {wall:.1f} s, sum of tasks {sum(durations.values()):.1f} s, "
                f"critical path {path_s:.1f} s ({' > '.join(path)}), wall/path {wall / path_s:.2f}x",
                flush=True,
            )
            for task_id, seconds in sorted(durations.items(), key=lambda item: -item[1]):
                print(f"    {task_id:<24} {seconds:6.2f} s")
        off_hours()
    print(f"\n| runs | wall (median) | sum of tasks | critical path | wall / path | target | at {datetime.now():%F} |")
    wall, total, path = (statistics.median(r[k] for r in rows) for k in ("wall", "sum", "path"))
    print(f"| {len(rows)} | {wall:.1f} s | {total:.1f} s | {path:.1f} s | {wall / path:.2f}x | <= 1.25x | |")
    return 0 if all(r["state"] == "success" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
