"""Executor benchmark: the LocalExecutor stack (``make up``) vs the Celery topology (``make up-celery``: two workers,
Redis broker) on this machine, each running the same wide DAG of no-op tasks (``bench/dags/bench_wide_noop.py``).

Measured per executor: tasks per minute (from the first task's start to the last task's end, over --runs runs, read
from the task instances), run wall time (trigger to success), and the peak RSS/PSS of the whole stack (Airflow and the
sandbox, every process).

    python bench/executors.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
DAG_ID = "bench_wide_noop"


def measure(celery: bool, runs: int) -> dict:
    from devstack.client import parse
    from devstack.stack import LocalStack

    name = "celery" if celery else "local"
    stack = LocalStack(
        REPO / ".run" / f"bench-executor-{name}",
        auto_ports=True,
        celery=celery,
        log=lambda message: None,
        extra_dag_files=[REPO / "bench" / "dags" / "bench_wide_noop.py"],
    )
    throughputs, walls = [], []
    with stack:
        stack.client.wait_for_dags({DAG_ID})
        stack.client.set_paused(DAG_ID, False)
        for _ in range(runs):
            started = time.monotonic()
            run_id = stack.client.trigger(DAG_ID)
            run = stack.client.wait_for_run(DAG_ID, run_id, timeout=900)
            walls.append(time.monotonic() - started)
            assert run["state"] == "success", run
            tis = stack.client.task_instances(DAG_ID, run_id)
            first = min(parse(ti["start_date"]) for ti in tis)
            last = max(parse(ti["end_date"]) for ti in tis)
            throughputs.append(len(tis) / (last - first).total_seconds() * 60)
        peak_rss, peak_pss = stack.memory.peak_rss, stack.memory.peak_pss
    return {
        "executor": "CeleryExecutor (2 workers x 2)" if celery else "LocalExecutor (parallelism 4)",
        "tasks_per_min": statistics.median(throughputs),
        "wall_s": statistics.median(walls),
        "peak_rss_mb": peak_rss / 2**20,
        "peak_pss_mb": peak_pss / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = [measure(celery, args.runs) for celery in (False, True)]
    print(f"\nA DAG of 60 no-op tasks, median of {args.runs} runs, on this machine:")
    print(f"{'executor':34} {'tasks/min':>10} {'run wall s':>11} {'peak RSS MB':>12} {'peak PSS MB':>12}")
    for row in rows:
        print(
            f"{row['executor']:34} {row['tasks_per_min']:10.0f} {row['wall_s']:11.1f} "
            f"{row['peak_rss_mb']:12.0f} {row['peak_pss_mb']:12.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
