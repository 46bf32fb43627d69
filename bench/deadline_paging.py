"""Deadline → first Slack message, TradeOps vs Airflow's stock notifier, and escalation-step timing, on the real stack.

Each of --runs runs of ``bench_deadline_paging`` misses a deadline watched by two callbacks at once: TradeOps'
incident callback (L1 page in #trading-alerts) and the stock ``SlackWebhookNotifier`` (#trading-ops). Measured from
the deadline's ``deadline_time`` to the message's Slack timestamp (the sandbox's clock, the same machine). Then,
with the demo policy (P2: L2 8 s after L1, L3 10 s later) and the escalation engine running in the triggerer, the
L2 and L3 messages are timed against when the policy wanted them; the incident is then resolved from Slack.

    python bench/deadline_paging.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
DAG_ID = "bench_deadline_paging"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    from devstack.client import parse
    from devstack.drill import Drill, posted_at
    from devstack.stack import DEMO_CONFIG, LocalStack
    from tradeops.incidents.policy import EscalationPolicy

    stack = LocalStack(
        REPO / ".run" / "bench-deadline",
        auto_ports=True,
        config_path=DEMO_CONFIG,
        extra_dag_files=[REPO / "bench" / "dags" / "bench_deadline_paging.py"],
    )
    with stack:
        drill = Drill(stack)
        drill.wait_for_engine()
        policy = EscalationPolicy(stack.config.escalation)
        client, slack = stack.client, stack.sandbox
        client.wait_for_dags({DAG_ID})
        rows = []
        for index in range(args.runs):
            run_id, due = drill.trigger(DAG_ID)
            page = drill.wait_for_page(run_id, due, 120, dag_id=DAG_ID)
            stock = drill.wait_until(
                "stock notifier message",
                lambda: next(
                    (m for m in slack.slack_messages("#trading-ops") if DAG_ID in m["text"] and posted_at(m) >= due),
                    None,
                ),
                120,
            )
            incident_id = page.incident_id
            incident, _ = client.incident(incident_id)
            anchor = parse(incident["escalation_anchor"])
            errors = []
            for level, channel in ((2, "#ops-management"), (3, "#exec-escalations")):
                message = drill.wait_for_level(incident_id, level, channel, timeout=120)
                wanted = anchor + policy.offset(incident["severity"], level, 0)
                errors.append((posted_at(message) - wanted).total_seconds())
            slack.click(page.message, "incident_resolve", user="bench")
            rows.append(
                {
                    "tradeops": page.latency_s,
                    "stock": (posted_at(stock) - due).total_seconds(),
                    "l2": errors[0],
                    "l3": errors[1],
                }
            )
            print(
                f"run {index + 1:>2}: deadline {due:%H:%M:%S.%f}"[:-3] + f"  TradeOps L1 +{rows[-1]['tradeops']:.2f}s"
                f"  stock webhook +{rows[-1]['stock']:.2f}s  L2 error {errors[0]:+.2f}s  L3 error {errors[1]:+.2f}s",
                flush=True,
            )
            client.wait_for_run(DAG_ID, run_id, timeout=120)
            # Stock messages are told apart by time only: let this run's land before the next deadline.
            time.sleep(1)

    def stats(key: str) -> str:
        values = [row[key] for row in rows]
        return f"median {statistics.median(values):+.2f}s, max {max(values, key=abs):+.2f}s"

    print()
    print(f"Deadline → first Slack message over {len(rows)} runs ({datetime.now():%Y-%m-%d}):")
    print(f"  TradeOps incident page (L1, Block Kit, thread root): {stats('tradeops')}")
    print(f"  stock SlackWebhookNotifier (one line, no escalation): {stats('stock')}")
    print("Escalation-step timing error (Slack message vs the policy's moment):")
    print(f"  L2: {stats('l2')}")
    print(f"  L3: {stats('l3')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
