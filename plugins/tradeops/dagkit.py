"""How a TradeOps DAG file is written: the one thing DAG files import for their structure.

A runbook DAG is built from a description, not copied (the model is astronomer-cosmos's ``DbtDag``): the file names
its DAG id, owner and steps; everything every runbook shares comes from here and from the validated config.

- :func:`scheduled_dag`: the schedule from ``schedules.<dag_id>`` (the exchange calendar), the deadline tiers from
  ``deadlines.<dag_id>``, ``catchup=False``, one run at a time, owner, tags, retries, the file's docs; when the
  ``with`` block ends it wires the config's incident policy (critical tasks, task-level deadlines), when asked the
  run verdict, and last the runbook failure policy (a failed task opens the DAG's incident).
- :func:`manual_dag`: a runbook people trigger: the form (``params``), one run at a time, deadlines counted from
  when the run was queued.
- :func:`window_group`: a task group whose every task is skipped once the maintenance window has closed.

Both builders put each task on the Celery queue of its operator's domain (:func:`assign_queues`): ``kubernetes``
for cluster changes and rollout waits, ``database`` for maintenance, backups and restores, ``default`` for the rest,
so a deployment can give the database work to one host and the cluster work to another. The LocalExecutor ignores
queues.

Everything here runs at parse time: it must stay cheap (no database, no network, no heavy imports). A DAG file
must still contain the words "airflow" and "dag" somewhere (Airflow's discovery safe mode skips files without
them); the DAG integrity test catches a file that is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator, Param, TaskGroup
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from tradeops.incidents.callbacks import deadline_missed

if TYPE_CHECKING:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from tradeops.checks.operators import RunVerdictOperator
    from tradeops.config import TradeOpsConfig
    from tradeops.config.model import DeadlineTier

# Each builder imports what it alone needs (the config, the calendar, operators) when it is called: a manual DAG's
# file then never pays for parsing the config or loading the exchange calendar.

START_DATE = datetime(2026, 1, 1)


@dataclass(frozen=True)
class RunDeadline:
    """A deadline of a manually triggered run: ``after`` its queueing, an incident at ``severity`` opens."""

    name: str
    after: timedelta
    severity: str = "P2"


def deadline_alerts(dag_id: str, tiers: Sequence[DeadlineTier], exchange: str) -> list[DeadlineAlert]:
    """One Airflow ``DeadlineAlert`` per configured tier, opening an incident (in the triggerer) when missed.

    The alert's interval stays zero: the offset belongs to the market anchor, where it picks the right session.
    """
    from tradeops.calendar.deadlines import ExchangeSessionDeadline

    return [
        DeadlineAlert(
            reference=ExchangeSessionDeadline(tier.by, exchange),
            interval=timedelta(0),
            callback=AsyncCallback(
                deadline_missed, kwargs={"dag_id": dag_id, "tier": tier.name, "severity": tier.severity}
            ),
            name=f"{dag_id}:{tier.name}",
        )
        for tier in tiers
    ]


def queued_deadline_alerts(dag_id: str, deadlines: Sequence[RunDeadline]) -> list[DeadlineAlert]:
    """Deadlines of a manual DAG, counted from when the run was queued (a manual run has no logical date)."""
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=deadline.after,
            callback=AsyncCallback(
                deadline_missed, kwargs={"dag_id": dag_id, "tier": deadline.name, "severity": deadline.severity}
            ),
            name=f"{dag_id}:{deadline.name}",
        )
        for deadline in deadlines
    ]


def apply_incident_policy(dag: DAG, config: TradeOpsConfig) -> None:
    """Wire the config's ``incidents`` section into ``dag``: the failure of a task in ``critical_tasks`` opens an
    incident, and each of ``task_deadlines`` gets a :class:`TaskDeadlineWatchOperator` (``<name>_by_deadline``)."""
    from tradeops.incidents.callbacks import OpenIncidentOnFailure
    from tradeops.incidents.operators import TaskDeadlineWatchOperator

    for task_id, severity in config.incidents.critical_tasks.get(dag.dag_id, {}).items():
        add_failure_callback(dag.get_task(task_id), OpenIncidentOnFailure(severity))
    for deadline in config.incidents.task_deadlines.get(dag.dag_id, []):  # type: ignore[call-overload]
        TaskDeadlineWatchOperator(
            task_id=f"{deadline.name.replace('-', '_')}_by_deadline",
            tasks=deadline.tasks,
            by=deadline.by,
            deadline_name=deadline.name,
            severity=deadline.severity,
            exchange=config.platform.exchange,
            dag=dag,
        )


def apply_runbook_failure_policy(dag: DAG, config: TradeOpsConfig) -> None:
    """A failed runbook pages: every task of ``dag`` gets an ``on_failure_callback`` that opens the DAG's one runbook
    incident (:class:`~tradeops.incidents.callbacks.OpenRunbookIncidentOnFailure`) at the severity
    ``incidents.runbook_failure`` gives the DAG; nothing when the DAG opted out. A task-level callback runs in the
    task's worker, which holds the state database's connection (a DAG-level one would run in the dag-processor).

    Left out, because their failure is already an incident of its own: the tasks of ``critical_tasks`` (one
    incident per run, at their severity), the tasks a :class:`~tradeops.checks.operators.CheckReporter` reports on
    (each failed check, or backup, is its check incident; each failed security finding its own), and the run
    verdict (:class:`RunVerdictOperator` only restates the failures of the tasks before it). A
    :class:`HealthSummaryOperator` gets the callback with its checks as ``verdict_on``: failing because checks
    failed opens nothing, failing in any other way does.

    Call it once every task exists, the verdict included.
    """
    from tradeops.checks.operators import CheckReporter, HealthSummaryOperator, RunVerdictOperator
    from tradeops.incidents.callbacks import OpenRunbookIncidentOnFailure

    severity = config.incidents.runbook_failure.severity_for(dag.dag_id)
    if severity is None:
        return
    reported_elsewhere = set(config.incidents.critical_tasks.get(dag.dag_id, {}))
    for task in dag.tasks:
        if isinstance(task, CheckReporter):
            reported_elsewhere.update(task.check_task_ids)
    for task in dag.tasks:
        if task.task_id in reported_elsewhere or isinstance(task, RunVerdictOperator):
            continue
        verdict_on = task.check_task_ids if isinstance(task, HealthSummaryOperator) else ()
        add_failure_callback(task, OpenRunbookIncidentOnFailure(severity, verdict_on=verdict_on))


def add_failure_callback(task: BaseOperator | MappedOperator, callback: Any) -> None:
    """Add ``callback`` to the task's failure callbacks, keeping those it has. Always a list: Airflow's task runner
    iterates the attribute, and a lone callable assigned to it would fail there."""
    existing = task.on_failure_callback
    kept = [] if not existing else [existing] if callable(existing) else list(existing)
    task.on_failure_callback = [*kept, callback]


def add_run_verdict(dag: DAG) -> RunVerdictOperator:
    """Make every task of ``dag`` an upstream of one :class:`RunVerdictOperator` named ``verdict``: a DAG whose
    reporting tasks run ``all_done`` would otherwise end green after a failed step."""
    from tradeops.checks.operators import RunVerdictOperator

    tasks = list(dag.tasks)
    verdict = RunVerdictOperator(task_id="verdict", dag=dag)
    for task in tasks:
        task >> verdict
    return verdict


QUEUE_BY_DOMAIN = {"tradeops.kubernetes": "kubernetes", "tradeops.database": "database"}
DEFAULT_QUEUE = "default"


def assign_queues(dag: DAG) -> None:
    """Put every task of ``dag`` whose queue was left at the default on the queue of its operator's domain
    (:data:`QUEUE_BY_DOMAIN`, by the module the operator class lives in); a queue set on the task is kept."""
    for task in dag.tasks:
        if task.queue != DEFAULT_QUEUE:
            continue
        domain = ".".join(type(task).__module__.split(".")[:2])
        task.queue = QUEUE_BY_DOMAIN.get(domain, DEFAULT_QUEUE)


def _default_args(owner: str, retries: int, retry_delay: timedelta, extra: Mapping[str, Any] | None) -> dict:
    return {"owner": owner, "retries": retries, "retry_delay": retry_delay, **(extra or {})}


@contextmanager
def scheduled_dag(
    dag_id: str,
    *,
    description: str,
    owner: str,
    doc_md: str | None,
    tags: Sequence[str] = (),
    retries: int = 1,
    retry_delay: timedelta = timedelta(minutes=1),
    verdict: bool = False,
    schedule: Any = None,
    max_active_runs: int = 1,
    default_args: Mapping[str, Any] | None = None,
    config: TradeOpsConfig | None = None,
    **overrides: Any,
) -> Iterator[DAG]:
    """A runbook on the exchange calendar: ``with scheduled_dag("daily_health_check", ...) as dag:``.

    :param dag_id: the DAG id; also the key of its schedule and deadline tiers in the config.
    :param description: one line for the DAG list.
    :param owner: who owns the runbook (Airflow's ``owner``).
    :param doc_md: the DAG's docs (pass the file's ``__doc__``).
    :param tags: tags besides ``tradeops`` and ``scheduled``.
    :param retries: retries of every task unless the task says otherwise.
    :param retry_delay: the delay between retries.
    :param verdict: add a ``verdict`` task that fails the run when any task failed (for DAGs whose last tasks
        report whatever happened, ``all_done``).
    :param schedule: a schedule that is not a market anchor (default: ``schedules.<dag_id>`` on the exchange
        calendar).
    :param max_active_runs: runs at once (one by default: a runbook never overlaps itself).
    :param default_args: more default arguments for every task.
    :param config: the config (default: the validated config file).
    :param overrides: any other ``DAG`` argument (``dagrun_timeout``, ``params``...).
    """
    from tradeops.calendar.timetable import ExchangeSessionTimetable
    from tradeops.config import load_config

    config = config or load_config()
    exchange = config.platform.exchange
    with DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule or ExchangeSessionTimetable(config.schedules[dag_id], exchange),  # type: ignore[index]
        deadline=deadline_alerts(dag_id, config.deadlines.get(dag_id, []), exchange),  # type: ignore[call-overload]
        start_date=START_DATE,
        catchup=False,
        max_active_runs=max_active_runs,
        default_args=_default_args(owner, retries, retry_delay, default_args),
        tags=["tradeops", *tags, "scheduled"],
        doc_md=doc_md,
        **overrides,
    ) as dag:
        yield dag
        apply_incident_policy(dag, config)
        if verdict:
            add_run_verdict(dag)
        apply_runbook_failure_policy(dag, config)
        assign_queues(dag)


@contextmanager
def manual_dag(
    dag_id: str,
    *,
    description: str,
    owner: str,
    doc_md: str | None,
    params: Mapping[str, Param] | None = None,
    tags: Sequence[str] = (),
    retries: int = 1,
    retry_delay: timedelta = timedelta(seconds=30),
    deadlines: Sequence[RunDeadline] = (),
    default_args: Mapping[str, Any] | None = None,
    page_on_failure: bool = False,
    max_active_runs: int = 1,
    **overrides: Any,
) -> Iterator[DAG]:
    """A runbook people trigger, with a form: ``with manual_dag("db_restore", params={...}) as dag:``.

    Every value of the form is validated by its ``Param`` when the run is triggered, before the run exists.

    :param dag_id: the DAG id.
    :param description: one line for the DAG list.
    :param owner: who owns the runbook.
    :param doc_md: the DAG's docs (pass the file's ``__doc__``).
    :param params: the trigger form.
    :param tags: tags besides ``tradeops`` and ``manual``.
    :param retries: retries of every task unless the task says otherwise.
    :param retry_delay: the delay between retries.
    :param deadlines: deadlines counted from when the run was queued, each opening an incident when missed.
    :param default_args: more default arguments for every task.
    :param page_on_failure: a failed task opens the runbook's incident (:func:`apply_runbook_failure_policy`, as
        every scheduled DAG does); off by default: most manual DAGs are a person's action, whose failure they see.
    :param max_active_runs: runs at once (one by default: a runbook never overlaps itself).
    :param overrides: any other ``DAG`` argument.
    """
    with DAG(
        dag_id=dag_id,
        description=description,
        schedule=None,
        deadline=queued_deadline_alerts(dag_id, deadlines) or None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=max_active_runs,
        params=dict(params or {}),
        default_args=_default_args(owner, retries, retry_delay, default_args),
        tags=["tradeops", *tags, "manual"],
        doc_md=doc_md,
        **overrides,
    ) as dag:
        yield dag
        if page_on_failure:
            from tradeops.config import load_config

            apply_runbook_failure_policy(dag, load_config())
        assign_queues(dag)


def window_group(group_id: str, **kwargs: Any) -> TaskGroup:
    """A task group inside the maintenance window: each of its tasks checks, before it starts, that the window
    entered by the ``enter_window`` task is still open, and is skipped (with the rest) once it has closed.
    Task ids keep no group prefix, so moving steps into the window changes no id.

    :param group_id: the group's name in the grid.
    :param kwargs: any other ``TaskGroup`` argument.
    """
    from tradeops.maintenance.operators import abandon_after_window

    default_args = {**kwargs.pop("default_args", {}), "pre_execute": abandon_after_window}
    # TaskGroup types default_args through an attrs converter that mypy cannot follow.
    return TaskGroup(group_id, prefix_group_id=False, default_args=default_args, **kwargs)  # type: ignore[arg-type]
