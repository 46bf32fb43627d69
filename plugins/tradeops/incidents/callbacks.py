"""Callbacks that open incidents: for missed deadlines (they run in the triggerer, so they are ``async``) and for
failed critical tasks (they run in the task's worker)."""

from __future__ import annotations

import asyncio


async def deadline_missed(context: dict, *, dag_id: str, tier: str, severity: str) -> None:
    """A DeadlineAlert callback: Airflow hands it only the run (REST form) and the deadline."""
    from airflow.sdk import BaseHook

    from tradeops.config import load_config
    from tradeops.incidents.service import Incidents
    from tradeops.incidents.store import dsn_from_connection

    config = load_config()
    dsn = dsn_from_connection(await BaseHook.aget_connection(config.connections.state_db))

    def open_it():
        return Incidents(config, dsn).deadline_missed(context["dag_run"], context["deadline"], dag_id=dag_id,
                                                      tier=tier, severity=severity)

    await asyncio.to_thread(open_it)


class OpenIncidentOnFailure:
    """``on_failure_callback`` for a critical task: one incident per failed run, at ``severity``."""

    def __init__(self, severity: str):
        self.severity = severity

    def __call__(self, context) -> None:
        from tradeops.incidents.service import Incidents

        ti = context["ti"]
        error = context.get("exception")
        Incidents().task_failed(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, severity=self.severity,
                                error=f"{type(error).__name__}: {error}" if error else "failed")


def apply_incident_policy(dag, config) -> None:
    """Wire the config's ``incidents`` section into this DAG: the failure of a task in ``critical_tasks`` opens an
    incident, and each of ``task_deadlines`` gets a ``TaskDeadlineSensor`` (``<name>_by_deadline``)."""
    from tradeops.incidents.operators import TaskDeadlineSensor

    for task_id, severity in config.incidents.critical_tasks.get(dag.dag_id, {}).items():
        task = dag.get_task(task_id)
        task.on_failure_callback = OpenIncidentOnFailure(severity)
    for deadline in config.incidents.task_deadlines.get(dag.dag_id, []):
        TaskDeadlineSensor(task_id=f"{deadline.name.replace('-', '_')}_by_deadline", tasks=deadline.tasks,
                           by=deadline.by, deadline_name=deadline.name, severity=deadline.severity,
                           exchange=config.platform.exchange, dag=dag)
