"""Alert intake benchmark on the real stack (scheduler, triggerer, api-server, LocalExecutor, sandbox Alertmanager):
for a critical alert in the ``alerts.runbooks`` table, the time from its webhook reaching the api-server (the
incident's ``opened_at``, written by the webhook) to the incident's first page in Slack (the sandbox's message
timestamp) and to ``incident_response``'s first task running (``check_incident``'s ``start_date``), side by side in
the same stack with the floor: an empty DAG's time from its REST trigger to its first task running. The time from
posting the alert to Alertmanager to its webhook is shown too (Alertmanager's grouping, not TradeOps'). Each run's
approval is rejected through the REST API once it waits, so nothing is changed and the next run is not queued.

Targets: page within 5 s, first task within 15 s.

    python bench/alert_intake.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
DAG, FLOOR, ALERT = "incident_response", "bench_rollback_floor", "TradingSystemDown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import psycopg
    from psycopg.rows import dict_row

    from devstack.client import parse
    from devstack.drill import Drill, posted_at
    from devstack.hitl import answer
    from devstack.stack import DEMO_CONFIG, LocalStack

    stack = LocalStack(
        REPO / ".run" / "bench-alert-intake",
        auto_ports=True,
        config_path=DEMO_CONFIG,
        extra_dag_files=[REPO / "bench" / "dags" / f"{FLOOR}.py"],
    )
    rows = []
    with stack:
        client, alertmanager = stack.client, stack.settings["alertmanager"]["url"]
        client.wait_for_dags({DAG, FLOOR})
        client.set_paused(FLOOR, False)

        def wait(find, timeout: float = 120):
            return Drill(stack).wait_until("bench", find, timeout)

        def incident(label: str) -> dict | None:
            with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
                return conn.execute(
                    "SELECT * FROM tradeops.incidents WHERE details->'labels'->>'bench' = %s", (label,)
                ).fetchone()

        def started(dag_id: str, run_id: str, task_id: str) -> datetime | None:
            try:
                ti = client.task_instance(dag_id, run_id, task_id)
            except RuntimeError:  # the run does not exist yet
                return None
            return parse(ti["start_date"]) if ti.get("start_date") else None

        for _ in range(args.runs):
            triggered = datetime.now(UTC)
            floor_run = client.trigger(FLOOR)
            [floor_task] = wait(lambda: [ti for ti in client.task_instances(FLOOR, floor_run) if ti["start_date"]])
            floor = (parse(floor_task["start_date"]) - triggered).total_seconds()

            label = uuid.uuid4().hex[:8]
            alert = {"labels": {"alertname": ALERT, "severity": "critical", "bench": label}}
            posted = datetime.now(UTC)
            requests.post(alertmanager + "/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
            opened = wait(lambda: incident(label))
            webhook = opened["opened_at"]
            page = wait(
                lambda: [m for m in stack.sandbox.slack_messages("#trading-alerts") if f"#{opened['id']} " in m["text"]]
            )[0]
            run_id = f"incident_{opened['id']}__alert"
            first_task = wait(lambda: started(DAG, run_id, "check_incident"))
            answer(stack, DAG, run_id, "approve", ["Reject"])  # nothing changes; the next run is not queued
            client.wait_for_run(DAG, run_id, timeout=180)
            ended = {**alert, "endsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
            requests.post(alertmanager + "/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
            rows.append(
                {
                    "alertmanager": (webhook - posted).total_seconds(),
                    "page": (posted_at(page) - webhook).total_seconds(),
                    "first_task": (first_task - webhook).total_seconds(),
                    "floor": floor,
                }
            )
            print("  " + "  ".join(f"{key} {value:6.2f}s" for key, value in rows[-1].items()), flush=True)

    print(f"\nAlert intake, {len(rows)} runs (median / max, seconds):")
    print(f"{'':50} {'median':>8} {'max':>8}  target")
    labels = {
        "alertmanager": ("alert posted → webhook (Alertmanager's grouping)", None),
        "page": ("webhook → first page in Slack", 5.0),
        "first_task": ("webhook → incident_response's first task", 15.0),
        "floor": ("floor: REST trigger → an empty DAG's task", None),
    }
    for key, (label, target) in labels.items():
        values = [row[key] for row in rows]
        goal = f"< {target:.0f} s: {'met' if max(values) < target else 'MISSED'}" if target else ""
        print(f"{label:50} {statistics.median(values):8.2f} {max(values):8.2f}  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
