"""A wide DAG of no-op Python tasks (not EmptyOperator, which the scheduler completes without an executor): the
executor benchmark's load. Each task is a real task: a worker slot, a task process, the execution API."""

from __future__ import annotations

from airflow.sdk import DAG, task

WIDTH = 60

with DAG("bench_wide_noop", schedule=None, catchup=False, tags=["bench"]):

    @task
    def noop(index: int) -> int:
        return index

    for index in range(WIDTH):
        noop.override(task_id=f"noop_{index:03d}")(index)
