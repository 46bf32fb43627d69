"""The verdict of a DAG whose reporting tasks run whatever happened (``all_done``): Airflow decides a run's state
from its leaf tasks only, so without this a failed step followed by a successful report would leave the run green."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException


class RunVerdictOperator(BaseOperator):
    """Runs only when a task upstream failed (``one_failed``), and then fails the run; skipped otherwise."""

    ui_color = "#f2f2f2"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "one_failed")
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)

    def execute(self, context) -> None:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        failed = sorted(task_id for task_id, state in states.items() if state in ("failed", "upstream_failed"))
        raise AirflowFailException(f"failed: {', '.join(failed) or 'see the grid'}")


def add_run_verdict(dag) -> RunVerdictOperator:
    """Make every task of ``dag`` an upstream of one :class:`RunVerdictOperator` named ``verdict``."""
    tasks = list(dag.tasks)
    verdict = RunVerdictOperator(task_id="verdict", dag=dag)
    for task in tasks:
        task >> verdict
    return verdict
