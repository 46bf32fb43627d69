"""Callbacks that open incidents: for missed deadlines (they run in the triggerer, so they are ``async``), and for
failed tasks (``on_failure_callback``: they run in the task's worker, after the task's final state is reported).

A task's failure callback never changes the task's outcome: an error while opening the incident (the state database
unreachable) is logged in the task's log and goes no further.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tradeops.exceptions import PagedFailure, RunbookRefused

if TYPE_CHECKING:
    from tradeops.incidents.models import Opened

log = logging.getLogger("airflow.task.tradeops.incidents")


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


def describe_error(error: BaseException | None) -> str:
    """What went wrong, for an incident's summary: the exception's class and message."""
    return f"{type(error).__name__}: {error}" if error else "failed"


class OpenIncidentOnFailure:
    """``on_failure_callback`` for a critical task (``incidents.critical_tasks``): one incident per failed run
    (``failure:<dag_id>:<run_id>``), at ``severity``.

    :param severity: the incident's severity.
    """

    def __init__(self, severity: str):
        self.severity = severity

    def __call__(self, context: Any) -> None:
        from tradeops.incidents.service import IncidentService

        ti = context["ti"]
        try:
            IncidentService().task_failed(
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                severity=self.severity,
                error=describe_error(context.get("exception")),
            )
        except Exception:
            log.exception("The incident of the failed critical task %s could not be opened", ti.task_id)


class OpenRunbookIncidentOnFailure:
    """``on_failure_callback`` for every task of a scheduled runbook (wired by :func:`tradeops.dagkit.scheduled_dag`
    from ``incidents.runbook_failure``): opens the DAG's one runbook incident (``runbook:<dag_id>``) at ``severity``
    with the task, the run and the error, or, while that incident is open, adds this failure to it as one more
    occurrence (a second failed task of the run, a later failed run): one page per broken runbook, not per task.

    :param severity: the incident's severity (the DAG's in ``incidents.runbook_failure``).
    :param verdict_on: the check tasks this task gives the verdict on (a health summary's checks). When the task
        fails with ``AirflowFailException`` while one of them failed or did not report, its failure only restates
        what those checks reported themselves (each failed check is an incident of its own), and nothing opens.
        Any other failure of the task (it crashed, could not write its report) opens the runbook incident.
    """

    def __init__(self, severity: str, verdict_on: Sequence[str] = ()):
        self.severity = severity
        self.verdict_on = tuple(verdict_on)

    def __call__(self, context: Any) -> None:
        ti = context["ti"]
        error = context.get("exception")
        try:
            if isinstance(error, PagedFailure):
                log.info("%s failed and paged for itself: its own incident says it already", ti.task_id)
                return
            if isinstance(error, RunbookRefused):
                log.info("%s refused its input and did nothing: nothing to page", ti.task_id)
                return
            if self.is_verdict_on_failed_checks(ti, error):
                log.info("%s failed as the verdict on failed checks: their incidents say it already", ti.task_id)
                return
            self.open(ti, error)
        except Exception:
            log.exception("The runbook incident of %s (task %s failed) could not be opened", ti.dag_id, ti.task_id)

    def is_verdict_on_failed_checks(self, ti: Any, error: BaseException | None) -> bool:
        """Whether the failure is the verdict on checks that failed (or never reported), as the summary decides.
        When the checks' results cannot be read, it is not: better one page too many than none."""
        from airflow.sdk.exceptions import AirflowFailException

        from tradeops.checks.base import RESULT_KEY, CheckResult, Status

        if not self.verdict_on or not isinstance(error, AirflowFailException):
            return False
        try:
            results = [ti.xcom_pull(task_ids=task_id, key=RESULT_KEY) for task_id in self.verdict_on]
            return any(not pushed or CheckResult.from_dict(pushed).status is Status.FAIL for pushed in results)
        except Exception:
            log.exception("The results of %s could not be read", ", ".join(self.verdict_on))
            return False

    def open(self, ti: Any, error: BaseException | None) -> Opened:
        """Open the runbook incident of ``ti``'s DAG, or add this failure to it."""
        from tradeops.incidents.models import IncidentSource, NewIncident
        from tradeops.incidents.service import IncidentService, runbook_key

        reason = describe_error(error)
        return IncidentService().open(
            NewIncident(
                dedup_key=runbook_key(ti.dag_id),
                source=IncidentSource.TASK_FAILURE,
                severity=self.severity,
                title=f"{ti.dag_id} failed",
                summary=f"`{ti.task_id}` failed in run `{ti.run_id}`: {reason}"[:2000],
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                details={
                    "task_id": ti.task_id,
                    "run_id": ti.run_id,
                    "try_number": getattr(ti, "try_number", None),
                    "error": reason[:2000],
                },
            )
        )
