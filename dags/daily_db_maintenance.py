"""
### Daily database maintenance

Seed runbook: *Daily Database Optimization* (02:00 ET, Database Administrator), rebuilt to be safe on a live trading
database. Runs at `schedules.daily_db_maintenance` (02:00 exchange time) on every day the market is closed then;
every table and step comes from `database` in `tradeops.yaml`, and each is its own task, retried on its own.

- `retention.<table>`: a partitioned table loses its expired daily partitions (`DETACH PARTITION ... CONCURRENTLY`,
  then `DROP TABLE`) and gains the next `partitions_ahead_days`; another table is deleted from in short batches
  under `lock_timeout`/`statement_timeout`, logging rows/s and ETA, stopping at `time_budget` and resuming the next
  night. Never one unbounded `DELETE` (~780 MB of WAL for 2.5 M rows).
- `upkeep.analyze_<table>`: `ANALYZE` (fresh statistics for the planner and the bloat estimate).
- `upkeep.reindex_<table>`: `REINDEX INDEX CONCURRENTLY` of the indexes past `reindex_min_bloat_pct` and
  `reindex_min_size_mb`; invalid `_ccnew` leftovers of failed rebuilds are dropped. Never plain `REINDEX` (it blocks
  writers and readers for the whole rebuild) nor `REINDEX DATABASE`.
- `upkeep.vacuum_<table>`: plain `VACUUM (ANALYZE)` past `vacuum_min_dead_pct` and `vacuum_min_dead_tuples`. Never
  a full rewrite of the table (ACCESS EXCLUSIVE for the whole rewrite).
- `size_report`: table and index sizes (partitions rolled up), growth since the last run, stored in TradeOps' state
  database for trends and written as a JSON report.
- `db_long_queries`, `db_blocked_sessions`, `db_connections`, `db_wraparound`: queries running longer than
  `long_query_after`, sessions waiting on locks and who blocks them (`pg_blocking_pids`), connections against
  `max_connections`, transaction-ID wraparound age.
- `report_incidents`: a failing health query opens its incident at its `incidents.check_severity`; one that
  passes again resolves it. `verdict` fails the run when any step failed.

Retention runs for tables with `retention_days`, upkeep for tables marked `heavy`. Every lock wait is bounded by
`lock_timeout_ms` and retried with backoff (`lock_retries`), so a step never queues the platform's writers behind it.
Deadlines: still running at 03:00 ET opens a P3 incident, two hours before the open a P2 one.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import TaskGroup

from tradeops.checks.operators import CheckOperator
from tradeops.config import load_config
from tradeops.dagkit import scheduled_dag
from tradeops.database.checks import BlockedSessions, DatabaseConnections, LongQueries, Wraparound
from tradeops.database.operators import RetentionOperator, SizeReportOperator, TableUpkeepOperator
from tradeops.incidents.operators import ReportCheckIncidentsOperator

HEALTH_QUERIES = {
    "db_long_queries": LongQueries(),
    "db_blocked_sessions": BlockedSessions(),
    "db_connections": DatabaseConnections(),
    "db_wraparound": Wraparound(),
}
tables = load_config().database.tables

with scheduled_dag(
    "daily_db_maintenance",
    owner="dba",
    retries=2,
    retry_delay=timedelta(minutes=2),
    verdict=True,
    description="Retention, reindex and vacuum where needed, size report and health queries, safe on a live database",
    dagrun_timeout=timedelta(hours=3),
    tags=["database"],
    doc_md=__doc__,
):
    with TaskGroup("retention"):
        retention = [RetentionOperator(task_id=t.name, table=t.name) for t in tables if t.retention_days]
    with TaskGroup("upkeep"):
        vacuums = []
        for table in (t for t in tables if t.heavy):
            # After retention (vacuum then sees its dead tuples), whether or not every table's retention worked.
            analyze = TableUpkeepOperator(
                task_id=f"analyze_{table.name}", table=table.name, step="analyze", trigger_rule="all_done"
            )
            reindex = TableUpkeepOperator(task_id=f"reindex_{table.name}", table=table.name, step="reindex")
            vacuum = TableUpkeepOperator(task_id=f"vacuum_{table.name}", table=table.name, step="vacuum")
            retention >> analyze >> reindex >> vacuum
            vacuums.append(vacuum)
    sizes = SizeReportOperator(task_id="size_report", trigger_rule="all_done")
    checks = [CheckOperator(task_id=task_id, check=check) for task_id, check in HEALTH_QUERIES.items()]
    report = ReportCheckIncidentsOperator(task_id="report_incidents", check_task_ids=[c.task_id for c in checks])
    (vacuums or retention) >> sizes
    checks >> report
