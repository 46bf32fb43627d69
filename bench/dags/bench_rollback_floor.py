"""The floor of the rollback benchmark: one no-op Python task (a real task: a worker slot, a task process), so
trigger → its start is what the scheduler and executor cost before any runbook's first task can act."""

from __future__ import annotations

from airflow.sdk import DAG, task

with DAG("bench_rollback_floor", schedule=None, catchup=False, tags=["bench"]):

    @task
    def first() -> None:
        return None

    first()
