"""Market-hours watch benchmark, in one run on the real stack (scheduler, triggerer, LocalExecutor, sandbox).

Two designs of the seed's every-minute loop, against the same platform API and rules:
- ``market_hours_watch``: one run per session, one deferrable task; measured on a drill run of ``--watch-minutes``
  with one error-rate breach (80 s, its rule needs 60 s) injected when the task first defers: worker seconds (time
  in ``running``, the task's state polled every 0.5 s), metadata writes, and the detection latency (the incident's
  ``opened_at`` minus the moment the breach met its duration).
- ``bench_market_watch_naive``: one run per minute (390 a session), each reading the metrics once, its rules' state
  in a Variable; ``--naive-runs`` runs triggered back to back, their means extrapolated to 390.

Metadata writes are PostgreSQL's own counters (``pg_stat_user_tables``: rows inserted + updated + deleted) over the
run-related tables, between the start and the end of each phase; rows left are the rows carrying the DAG's id.

    python bench/market_watch.py [--naive-runs 10] [--watch-minutes 4]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]
WATCH, NAIVE = "market_hours_watch", "bench_market_watch_naive"
SESSION_MINUTES = 390
RUN_TABLES = (
    "dag_run",
    "task_instance",
    "task_instance_history",
    "xcom",
    "log",
    "trigger",
    "rendered_task_instance_fields",
    "deadline",
    "variable",
    "dag_run_note",
    "task_instance_note",
)


def table_writes(dsn: str) -> dict[str, int]:
    """``{"<table>.ins|upd|del": rows}`` of the run-related tables, from PostgreSQL's counters."""
    import psycopg

    time.sleep(1.5)  # PostgreSQL flushes a backend's table counters at most once a second
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            (list(RUN_TABLES),),
        ).fetchall()
    return {f"{table}.{kind}": count for table, *counts in rows for kind, count in zip(("ins", "upd", "del"), counts)}


def total(writes: dict[str, int], kind: str, exclude: str = "") -> int:
    return sum(v for k, v in writes.items() if k.endswith(f".{kind}") and not (exclude and k.startswith(exclude)))


def rows_of(dsn: str, dag_id: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_name = 'dag_id' ORDER BY table_name"
            ).fetchall()
        ]
        return {
            t: conn.execute(f'SELECT count(*) FROM "{t}" WHERE dag_id = %s', (dag_id,)).fetchone()[0] for t in tables
        }


def workload_seconds(scheduler_log: Path, ti_ids: set[str]) -> dict[str, list[float]]:
    """Seconds each task instance held a LocalExecutor worker, per visit: the supervisor's ``Workload finished``
    lines (process start, DAG parse, the task's code, reporting its state)."""
    found: dict[str, list[float]] = {}
    pattern = re.compile(r"Workload finished.*?duration=([\d.]+).*?workload_id=([0-9a-f-]+)")
    for match in pattern.finditer(scheduler_log.read_text()):
        if match.group(2) in ti_ids:
            found.setdefault(match.group(2), []).append(float(match.group(1)))
    return found


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--naive-runs", type=int, default=10)
    parser.add_argument("--watch-minutes", type=int, default=4)
    args = parser.parse_args()

    from devstack.client import parse
    from devstack.stack import LocalStack

    stack = LocalStack(
        REPO / ".run" / "bench-market-watch",
        auto_ports=True,
        extra_dag_files=[REPO / "bench" / "dags" / "bench_market_watch_naive.py"],
    )
    with stack:
        dsn = stack.settings["postgres"]["airflow_dsn"]
        poll_s = stack.config.market_watch.poll_every.total_seconds()
        stack.client.wait_for_dags({WATCH, NAIVE})
        for dag_id in (WATCH, NAIVE):
            stack.client.set_paused(dag_id, False)

        # A warm-up run, not counted: a fresh stack's first task can lose its worker while the api-server is still
        # warming up (the supervisor cannot reach the execution API in time and is killed).
        stack.client.wait_for_run(NAIVE, stack.client.trigger(NAIVE), timeout=120)

        # --- the naive cron DAG: N runs back to back --------------------------------------------------------
        writes0, rows0 = table_writes(dsn), rows_of(dsn, NAIVE)
        worker_s, lateness_s = [], []
        naive_ti_ids: set[str] = set()
        for _ in range(args.naive_runs):
            run_id = stack.client.trigger(NAIVE)
            run = stack.client.wait_for_run(NAIVE, run_id, timeout=120)
            assert run["state"] == "success", run
            [ti] = stack.client.task_instances(NAIVE, run_id)
            naive_ti_ids.add(ti["id"])
            worker_s.append((parse(ti["end_date"]) - parse(ti["start_date"])).total_seconds())
            lateness_s.append((parse(run["end_date"]) - parse(run["queued_at"])).total_seconds())
        naive_writes = delta(table_writes(dsn), writes0)
        naive_rows = delta(rows_of(dsn, NAIVE), rows0)

        # --- the watch: one drill run with one breach -------------------------------------------------------
        writes0, rows0 = table_writes(dsn), rows_of(dsn, WATCH)
        run_id = stack.client.trigger(WATCH, {"minutes": args.watch_minutes})
        drill_started = time.monotonic()
        seconds: dict[str, float] = {}
        injected: datetime | None = None
        last = time.monotonic()
        while True:
            ti = stack.client.task_instance(WATCH, run_id, "watch")
            now, state = time.monotonic(), ti["state"] or "none"
            seconds[state] = seconds.get(state, 0.0) + now - last
            last = now
            if state == "deferred" and injected is None:
                injected = datetime.now(UTC)
                stack.sandbox.set_faults(
                    "platform_api", metric_breaches=[{"metric": "error_rate_pct", "value": 5, "seconds": 80}]
                )
            if state in ("success", "failed"):
                break
            time.sleep(0.5)
        assert ti["state"] == "success", ti
        drill_s = time.monotonic() - drill_started
        stack.sandbox.clear_faults("platform_api")
        watch_writes = delta(table_writes(dsn), writes0)
        watch_rows = delta(rows_of(dsn, WATCH), rows0)
        incidents = stack.client._tradeops("/incidents.json?limit=50")["incidents"]
        [incident] = [i for i in incidents if i["dedup_key"] == "watch:error_rate" and parse(i["opened_at"]) > injected]
        assert injected is not None
        detection = (parse(incident["opened_at"]) - (injected + timedelta(seconds=60))).total_seconds()
        resolved = (parse(incident["resolved_at"]) - (injected + timedelta(seconds=80))).total_seconds()
        time.sleep(3)  # the executor logs a workload's end after the state change
        log = stack.run_dir / "airflow" / "logs" / "scheduler.log"
        naive_visits = [v for visits in workload_seconds(log, naive_ti_ids).values() for v in visits]
        watch_visits = workload_seconds(log, {ti["id"]}).get(ti["id"], [])

    n = args.naive_runs
    naive_per_run_s = statistics.mean(worker_s)
    running = seconds.get("running", 0.0)  # queued and deferred hold no worker slot
    naive_slot_s = statistics.mean(naive_visits)
    watch_slot_s = sum(watch_visits)
    session_s = SESSION_MINUTES * 60
    # The scheduler rewrites a running run's one dag_run row (last_scheduling_decision) on each of its loops: that
    # part of the watch's writes grows with the session's length, the rest with its state changes only.
    run_row_rate = watch_writes.get("dag_run.upd", 0) / drill_s
    watch_upd = total(watch_writes, "upd", exclude="dag_run.") + run_row_rate * session_s
    print(
        f"\nnaive: {n} runs; worker s/run mean {naive_per_run_s:.2f} (max {max(worker_s):.2f}); queued->end "
        f"mean {statistics.mean(lateness_s):.1f}s; writes {naive_writes}; rows left {naive_rows}"
    )
    print(
        f"watch: {args.watch_minutes} min drill ({drill_s:.0f} s); states "
        f"{ ({k: round(v, 1) for k, v in seconds.items()}) }; writes {watch_writes}; rows left {watch_rows}"
    )
    print(
        f"watch detection: opened {detection:.1f}s after the breach met its duration; resolved {resolved:.1f}s "
        "after it cleared"
    )
    print("\n| per session (390 min) | naive every-minute cron | market_hours_watch |")
    print("|---|---|---|")
    print(f"| runs in the UI | {SESSION_MINUTES} | 1 |")
    print(
        f"| worker-slot seconds (executor workloads) | {naive_slot_s * SESSION_MINUTES:,.0f} "
        f"({naive_slot_s:.2f} s x 390; {len(naive_visits)} measured) | {watch_slot_s:.1f} with one breach "
        f"({len(watch_visits)} worker visits: "
        f"{', '.join(f'{v:.2f}' for v in watch_visits)} s) |"
    )
    print(
        f"| task running time (TI start to end; polled state for the watch) | "
        f"{naive_per_run_s * SESSION_MINUTES:,.0f} ({naive_per_run_s:.2f} s x 390) | {running:.1f} |"
    )
    print(
        f"| metadata rows inserted | {total(naive_writes, 'ins') / n * SESSION_MINUTES:,.0f} "
        f"({total(naive_writes, 'ins') / n:.1f} x 390) | {total(watch_writes, 'ins')} (with one breach) |"
    )
    print(
        f"| metadata row updates + deletes | "
        f"{(total(naive_writes, 'upd') + total(naive_writes, 'del')) / n * SESSION_MINUTES:,.0f} | "
        f"{watch_upd + total(watch_writes, 'del'):,.0f} (of which {run_row_rate * session_s:,.0f}: the one dag_run "
        f"row rewritten by the scheduler, {run_row_rate:.2f}/s) |"
    )
    print(
        f"| rows left carrying the DAG id | {sum(naive_rows.values()) / n * SESSION_MINUTES:,.0f} | "
        f"{sum(watch_rows.values())} |"
    )
    print(
        f"| detection after the duration is met | tick alignment 0-60 s + {statistics.mean(lateness_s):.1f} s "
        f"(queued to done) | {detection:.1f} s measured (at most one {poll_s:g} s poll + the resume) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
