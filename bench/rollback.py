"""emergency_rollback benchmark on the real stack (scheduler, triggerer, LocalExecutor, sandbox): the time from the
trigger (the REST call returning) to "trading stopped" (every trading deployment at 0 ready replicas, polled from
the Kubernetes API every 50 ms), side by side in the same stack with the floor: an empty DAG's time from the trigger
to its first task running (the task's start_date). Runs alternate, each rollback rolls tactical-marl to 1.8.1 and
the deployments are put back (and rolled out) before the next.

Target: under 10 s, and within 3 s of the floor.

    python bench/rollback.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
DAG, FLOOR = "emergency_rollback", "bench_rollback_floor"
FORM = {"target": "1.8.1", "deployments": ["tactical-marl"], "reason": "bench", "confirm": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from devstack.client import parse
    from devstack.stack import LocalStack
    from tradeops.kubernetes.rollout import rollout_state
    from tradeops.rollback.forms import trading_services

    stack = LocalStack(
        REPO / ".run" / "bench-rollback",
        auto_ports=True,
        extra_dag_files=[REPO / "bench" / "dags" / f"{FLOOR}.py"],
    )
    floors, stops, states = [], [], []
    with stack:
        names = trading_services(stack.config)
        api_client = k8s_config.new_client_from_config(stack.settings["kubernetes"]["kubeconfig"], context="admin")
        apps = k8s.AppsV1Api(api_client)

        def manifest(name: str) -> dict:
            return json.loads(apps.read_namespaced_deployment(name, "grandmodel", _preload_content=False).data)

        original = {name: manifest(name) for name in names}

        def put_back() -> None:
            for name, obj in original.items():
                body = [
                    {"op": "replace", "path": "/spec/template", "value": obj["spec"]["template"]},
                    {"op": "replace", "path": "/spec/replicas", "value": max(obj["spec"]["replicas"], 1)},
                    {"op": "replace", "path": "/metadata/annotations", "value": obj["metadata"]["annotations"]},
                ]
                apps.patch_namespaced_deployment(name, "grandmodel", body)
            for name in names:
                while not (rollout_state(manifest(name)).done and manifest(name)["status"].get("readyReplicas")):
                    time.sleep(0.2)

        stack.client.wait_for_dags({DAG, FLOOR})
        stack.client.set_paused(DAG, False)
        stack.client.set_paused(FLOOR, False)
        for _ in range(args.runs):
            put_back()
            started = datetime.now(UTC)
            run_id = stack.client.trigger(FLOOR)
            stack.client.wait_for_run(FLOOR, run_id, timeout=120)
            [ti] = stack.client.task_instances(FLOOR, run_id)
            floors.append((parse(ti["start_date"]) - started).total_seconds())

            started, started_s = datetime.now(UTC), time.monotonic()
            run_id = stack.client.trigger(DAG, FORM)
            while any(manifest(name)["status"].get("readyReplicas") for name in names):
                time.sleep(0.05)
            stops.append(time.monotonic() - started_s)
            states.append(stack.client.wait_for_run(DAG, run_id, timeout=300)["state"])
            stop = stack.client.task_instance(DAG, run_id, "stop_trading")
            marks = {k: (parse(stop[k]) - started).total_seconds() for k in ("queued_when", "start_date", "end_date")}
            print(
                f"floor {floors[-1]:.2f} s, trading stopped {stops[-1]:.2f} s ({states[-1]}); stop_trading queued "
                f"+{marks['queued_when']:.2f} s, started +{marks['start_date']:.2f} s, "
                f"ended +{marks['end_date']:.2f} s",
                flush=True,
            )
        put_back()
    floor, stop = statistics.median(floors), statistics.median(stops)
    print(
        f"\n| runs | floor (median) | trading stopped (median, max) | minus floor | target | at {datetime.now():%F} |"
    )
    print(
        f"| {len(stops)} | {floor:.2f} s | {stop:.2f} s, {max(stops):.2f} s | {stop - floor:+.2f} s | < 10 s, < +3 s |"
    )
    return 0 if all(state == "success" for state in states) else 1


if __name__ == "__main__":
    sys.exit(main())
