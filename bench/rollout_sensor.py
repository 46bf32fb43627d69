"""Rollout-sensor benchmark, in one run on the real stack (scheduler, triggerer, LocalExecutor, sandbox cluster).

For each of --rollouts image changes of tactical-marl (3 replicas, pods ready after --pod-ready seconds), two sensors
wait for the same rollout: the deferrable RolloutStatusSensor and a poke-mode one at a 30 s interval. Measured:
- detection delay: the sensor task's end minus the moment the API first showed the rollout done (this script polls
  the API every 50 ms with kubectl's rules);
- worker-slot seconds: time the task spent in the ``running`` state (polled every 0.1 s through the REST API).

    python bench/rollout_sensor.py [--rollouts 5] [--pod-ready 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
REGISTRY = "registry.quantnova.internal/grandmodel"
TASKS = ("deferrable", "poke_30s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=5)
    parser.add_argument("--pod-ready", type=float, default=10.0)
    args = parser.parse_args()

    from devstack.client import parse
    from devstack.stack import LocalStack
    from tradeops.kubernetes.rollout import rollout_state

    stack = LocalStack(
        REPO / ".run" / "bench-rollout",
        auto_ports=True,
        extra_dag_files=[REPO / "bench" / "dags" / "bench_rollout_sensors.py"],
    )
    with stack:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        api_client = k8s_config.new_client_from_config(stack.settings["kubernetes"]["kubeconfig"], context="admin")
        apps = k8s.AppsV1Api(api_client)

        def deployment() -> dict:
            return json.loads(
                apps.read_namespaced_deployment("tactical-marl", "grandmodel", _preload_content=False).data
            )

        apps.patch_namespaced_deployment("tactical-marl", "grandmodel", {"spec": {"replicas": 3}})
        while not rollout_state(deployment()).done:
            time.sleep(0.2)
        stack.sandbox.set_faults("kubernetes", pod_ready_seconds=args.pod_ready)
        stack.client.wait_for_dags({"bench_rollout_sensors"})
        stack.client.set_paused("bench_rollout_sensors", False)
        rows = []
        for index in range(args.rollouts):
            # The rollout starts first, so both sensors begin while it is in progress.
            apps.patch_namespaced_deployment(
                "tactical-marl",
                "grandmodel",
                {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": "tactical-marl", "image": f"{REGISTRY}/tactical-marl:1.9.{index}"}
                                ]
                            }
                        }
                    }
                },
            )
            run_id = stack.client.trigger("bench_rollout_sensors")
            running = dict.fromkeys(TASKS, 0.0)
            ended: dict[str, datetime] = {}

            def watch_tasks():
                last = time.monotonic()
                while len(ended) < len(TASKS):
                    for task in TASKS:
                        if task in ended:
                            continue
                        ti = stack.client.task_instance("bench_rollout_sensors", run_id, task)
                        now = time.monotonic()
                        if ti["state"] == "running":
                            running[task] += now - last
                        if ti["state"] in ("success", "failed"):
                            ended[task] = parse(ti["end_date"])
                    last = time.monotonic()
                    time.sleep(0.1)

            watcher = threading.Thread(target=watch_tasks)
            watcher.start()
            time.sleep(0.2)
            while not rollout_state(deployment()).done:
                time.sleep(0.05)
            done_at = datetime.now(UTC)
            watcher.join(timeout=120)
            row = {task: ((ended[task] - done_at).total_seconds(), running[task]) for task in TASKS}
            rows.append(row)
            print(
                f"rollout {index + 1}: "
                + ", ".join(f"{t} detected after {d:+.2f}s, worker {w:.1f}s" for t, (d, w) in row.items()),
                flush=True,
            )
    print(f"\nRolloutStatusSensor, {args.rollouts} rollouts of 3 pods ({args.pod_ready:g} s each), medians\n")
    print(f"{'sensor':<34} {'detection delay':>16} {'max':>8} {'worker-slot s':>14}")
    for task, label in (("deferrable", "deferrable (TradeOps)"), ("poke_30s", "poke mode, 30 s interval")):
        delays = [row[task][0] for row in rows]
        slots = [row[task][1] for row in rows]
        print(
            f"{label:<34} {statistics.median(delays):>15.2f}s {max(delays):>7.2f}s {statistics.median(slots):>13.1f}s"
        )
    deferrable = statistics.median(row["deferrable"][0] for row in rows)
    print(f"\ntarget: deferrable detection under 2 s (median): {'met' if deferrable < 2 else 'MISSED'}")
    return 0 if deferrable < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
