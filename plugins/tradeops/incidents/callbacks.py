"""Callbacks that open incidents: for missed deadlines (they run in the triggerer, so they are ``async``) and for
failed critical tasks (they run in the task's worker)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradeops.incidents.models import Opened


async def deadline_missed(context: dict[str, Any], *, dag_id: str, tier: str, severity: str) -> None:
    """A DeadlineAlert callback: Airflow hands it only the run (REST form) and the deadline."""
    from tradeops.config import load_config
    from tradeops.connections import apostgres_dsn
    from tradeops.incidents.service import IncidentService

    config = load_config()
    dsn = await apostgres_dsn(config.connections.state_db)

    def open_it() -> Opened | None:
        return IncidentService(config, dsn).deadline_missed(
            context["dag_run"], context["deadline"], dag_id=dag_id, tier=tier, severity=severity
        )

    await asyncio.to_thread(open_it)


class OpenIncidentOnFailure:
    """``on_failure_callback`` for a critical task: one incident per failed run, at ``severity``."""

    def __init__(self, severity: str):
        self.severity = severity

    def __call__(self, context: Any) -> None:
        from tradeops.incidents.service import IncidentService

        ti = context["ti"]
        error = context.get("exception")
        IncidentService().task_failed(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            severity=self.severity,
            error=f"{type(error).__name__}: {error}" if error else "failed",
        )
