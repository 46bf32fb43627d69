"""The DAG kit builds what every runbook shares from the config: checked on DAGs built here, not on the suite's."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, TaskGroup

from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.checks.operators import RunVerdictOperator
from tradeops.dagkit import RunDeadline, manual_dag, scheduled_dag, window_group
from tradeops.incidents.callbacks import OpenIncidentOnFailure
from tradeops.incidents.operators import TaskDeadlineWatchOperator
from tradeops.maintenance.operators import abandon_after_window


def test_a_scheduled_dag_takes_schedule_deadlines_and_defaults_from_the_config(config):
    with scheduled_dag(
        "daily_health_check",
        owner="trading-ops",
        description="d",
        doc_md="docs",
        tags=["health"],
        retries=2,
        dagrun_timeout=timedelta(minutes=30),
    ) as dag:
        EmptyOperator(task_id="step")
    assert isinstance(dag.timetable, ExchangeSessionTimetable)
    assert dag.timetable.summary == ExchangeSessionTimetable(config.schedules["daily_health_check"], "XNYS").summary
    assert [alert.name for alert in dag.deadline] == [
        f"daily_health_check:{tier.name}" for tier in config.deadlines["daily_health_check"]
    ]
    assert (dag.catchup, dag.max_active_runs, dag.doc_md, dag.description) == (False, 1, "docs", "d")
    assert dag.tags == {"tradeops", "health", "scheduled"}
    assert dag.dagrun_timeout == timedelta(minutes=30)
    step = dag.get_task("step")
    assert (step.owner, step.retries, step.retry_delay) == ("trading-ops", 2, timedelta(minutes=1))


def test_on_exit_the_incident_policy_is_applied(config):
    policy = config.incidents.model_copy(update={"critical_tasks": {"daily_health_check": {"step": "P1"}}})
    custom = config.model_copy(update={"incidents": policy})
    with scheduled_dag("daily_health_check", owner="o", description="d", doc_md="x", config=custom) as dag:
        EmptyOperator(task_id="step")
    callbacks = dag.get_task("step").on_failure_callback
    callback = callbacks[0] if isinstance(callbacks, list) else callbacks
    assert isinstance(callback, OpenIncidentOnFailure) and callback.severity == "P1"
    [watch] = [task for task in dag.tasks if isinstance(task, TaskDeadlineWatchOperator)]
    [deadline] = config.incidents.task_deadlines["daily_health_check"]
    assert watch.task_id == "checks_green_by_deadline"
    assert (watch.tasks, watch.severity) == (list(deadline.tasks), deadline.severity)


def test_the_run_verdict_follows_every_task_when_asked(config):
    with scheduled_dag("daily_db_maintenance", owner="o", description="d", doc_md="x", verdict=True) as dag:
        first = EmptyOperator(task_id="first")
        second = EmptyOperator(task_id="second")
        first >> second
    verdict = dag.get_task("verdict")
    assert isinstance(verdict, RunVerdictOperator)
    assert verdict.upstream_task_ids == {"first", "second"}
    with scheduled_dag("daily_db_maintenance", owner="o", description="d", doc_md="x") as plain:
        EmptyOperator(task_id="first")
    assert "verdict" not in plain.task_ids


def test_a_schedule_that_is_not_a_market_anchor_can_be_given(config):
    from airflow.sdk import CronTriggerTimetable

    with scheduled_dag(
        "incident_escalation_engine",
        owner="o",
        description="d",
        doc_md="x",
        max_active_runs=2,
        schedule=CronTriggerTimetable("*/30 * * * *", timezone="UTC"),
    ) as dag:
        EmptyOperator(task_id="step")
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert (dag.max_active_runs, dag.deadline) == (2, [])


def test_a_manual_dag_has_its_form_one_run_at_a_time_and_deadlines_from_queueing():
    from airflow.sdk import DeadlineReference

    with manual_dag(
        "drill",
        owner="o",
        description="d",
        doc_md="x",
        params={"reason": Param(type="string", minLength=3)},
        deadlines=[RunDeadline("late", after=timedelta(seconds=20), severity="P2")],
    ) as dag:
        EmptyOperator(task_id="step")
    assert dag.schedule is None
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    assert dag.tags == {"tradeops", "manual"}
    assert dag.params.get_param("reason").schema["minLength"] == 3
    [alert] = dag.deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert (alert.interval, alert.name) == (timedelta(seconds=20), "drill:late")
    assert alert.callback.kwargs == {"dag_id": "drill", "tier": "late", "severity": "P2"}
    with manual_dag("quiet", owner="o", description="d", doc_md="x") as quiet:
        EmptyOperator(task_id="step")
    assert quiet.deadline is None


def test_a_window_group_guards_its_tasks_nested_groups_included_and_keeps_their_ids():
    with manual_dag("window", owner="o", description="d", doc_md="x") as dag:
        gate = EmptyOperator(task_id="enter_window")
        with window_group("maintenance_window"):
            inside = EmptyOperator(task_id="backup")
            with TaskGroup("db_maintenance"):
                nested = EmptyOperator(task_id="vacuum_orders")
        after = EmptyOperator(task_id="report")
        gate >> inside >> nested >> after
    assert sorted(dag.task_ids) == ["backup", "db_maintenance.vacuum_orders", "enter_window", "report"]
    assert dag.get_task("backup")._pre_execute_hook is abandon_after_window
    assert dag.get_task("db_maintenance.vacuum_orders")._pre_execute_hook is abandon_after_window
    assert dag.get_task("enter_window")._pre_execute_hook is None
    assert dag.get_task("report")._pre_execute_hook is None
