"""The DAG kit builds what every runbook shares from the config: checked on DAGs built here, not on the suite's."""

from __future__ import annotations

from datetime import timedelta
from typing import get_args

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, TaskGroup

from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.checks.operators import CheckOperator, HealthSummaryOperator, RunVerdictOperator
from tradeops.config.model import RunbookDag, RunbookFailure
from tradeops.dagkit import RunDeadline, add_run_verdict, manual_dag, scheduled_dag, window_group
from tradeops.incidents.callbacks import OpenIncidentOnFailure, OpenRunbookIncidentOnFailure
from tradeops.incidents.operators import ReportCheckIncidentsOperator, TaskDeadlineWatchOperator
from tradeops.kubernetes.checks import CertificateExpiry
from tradeops.maintenance.operators import abandon_after_window
from tradeops.platform.checks import SystemStatus


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
    [callback] = dag.get_task("step").on_failure_callback  # a list: Airflow iterates it
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


def test_a_manual_dag_pages_on_a_failed_task_only_when_asked():
    with manual_dag("runbook", owner="o", description="d", doc_md="x", page_on_failure=True) as paging:
        step = EmptyOperator(task_id="step")
        add_run_verdict(paging)
    [callback] = [c for c in step.on_failure_callback if isinstance(c, OpenRunbookIncidentOnFailure)]
    assert callback.severity == "P2"  # incidents.runbook_failure's default
    assert not paging.get_task("verdict").on_failure_callback, "the verdict only restates the failures before it"
    with manual_dag("quiet", owner="o", description="d", doc_md="x") as quiet:
        EmptyOperator(task_id="step")
    assert not quiet.get_task("step").on_failure_callback, "a person's action: they see its failure themselves"


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


# --- the runbook failure policy: which task opens which incident when it fails ----------------------------------


def runbook_callbacks(task) -> list[OpenRunbookIncidentOnFailure]:
    return [c for c in task.on_failure_callback if isinstance(c, OpenRunbookIncidentOnFailure)]


def with_incidents(config, **changes):
    """The config with some of ``incidents`` replaced (not validated: the DAG kit reads what it is given)."""
    return config.model_copy(update={"incidents": config.incidents.model_copy(update=changes)})


def notify_someone(context):
    """A failure callback the DAG's author set."""


def maintenance_like_dag(config):
    """A scheduled DAG with one task of each kind the policy tells apart."""
    with scheduled_dag(
        "weekly_maintenance", owner="o", description="d", doc_md="x", verdict=True, config=config
    ) as dag:
        gate = EmptyOperator(task_id="enter_window", on_failure_callback=notify_someone)
        pre_check = CheckOperator(task_id="pre_check", check=SystemStatus())
        certificates = CheckOperator(task_id="certificate_check", check=CertificateExpiry(min_days=21))
        backup = EmptyOperator(task_id="backup")
        critical = EmptyOperator(task_id="restart")
        report = ReportCheckIncidentsOperator(
            task_id="report_incidents", check_task_ids=["certificate_check", "backup"]
        )
        summary = HealthSummaryOperator(task_id="summary", check_task_ids=["pre_check", "certificate_check"])
        gate >> pre_check >> [certificates, backup, critical] >> report >> summary
    return dag


def test_every_task_of_a_scheduled_runbook_opens_its_runbook_incident_unless_reported_otherwise(config):
    custom = with_incidents(config, critical_tasks={"weekly_maintenance": {"restart": "P1"}})
    dag = maintenance_like_dag(custom)
    severity = config.incidents.runbook_failure.severity_for("weekly_maintenance")
    opening = {task.task_id: [(c.severity, c.verdict_on) for c in runbook_callbacks(task)] for task in dag.tasks}
    assert opening == {
        "enter_window": [(severity, ())],
        "pre_check": [(severity, ())],  # a check no report covers: its failure would page nobody else
        "certificate_check": [],  # report_incidents opens its check incident
        "backup": [],  # likewise
        "restart": [],  # a critical task: an incident of its own, at its own severity
        "report_incidents": [(severity, ())],
        "summary": [(severity, ("pre_check", "certificate_check"))],  # the verdict on these opens nothing
        "verdict": [],  # restates the failures before it
    }
    assert dag.get_task("enter_window").on_failure_callback[0] is notify_someone, "the author's callback is kept"
    [critical] = dag.get_task("restart").on_failure_callback
    assert isinstance(critical, OpenIncidentOnFailure) and critical.severity == "P1"


def test_each_dag_has_its_severity_or_the_default(config):
    custom = with_incidents(
        config,
        runbook_failure=RunbookFailure(default_severity="P4", dags={"daily_db_maintenance": "P3"}),
    )
    severities = {}
    for dag_id in ("daily_db_maintenance", "daily_health_check"):
        with scheduled_dag(dag_id, owner="o", description="d", doc_md="x", config=custom) as dag:
            EmptyOperator(task_id="step")
        [callback] = dag.get_task("step").on_failure_callback
        severities[dag_id] = callback.severity
    assert severities == {"daily_db_maintenance": "P3", "daily_health_check": "P4"}


def test_a_dag_that_opted_out_opens_no_runbook_incident_but_keeps_its_critical_tasks(config):
    custom = with_incidents(
        config,
        critical_tasks={"weekly_maintenance": {"restart": "P1"}},
        runbook_failure=RunbookFailure(dags={"weekly_maintenance": "opt_out"}),
    )
    dag = maintenance_like_dag(custom)
    assert [task.task_id for task in dag.tasks if runbook_callbacks(task)] == []
    assert [type(c) for c in dag.get_task("restart").on_failure_callback] == [OpenIncidentOnFailure]
    assert dag.get_task("enter_window").on_failure_callback == [notify_someone]


def test_the_suites_runbooks_page_when_they_fail(dagbag, config):
    dags = dagbag.dags
    weekly = dags["weekly_maintenance"]
    [gate] = runbook_callbacks(weekly.get_task("enter_window"))
    assert gate.severity == config.incidents.runbook_failure.severity_for("weekly_maintenance") == "P2"
    for reported in ("backup", "certificate_check", "post_check.system_status", "verdict"):
        assert runbook_callbacks(weekly.get_task(reported)) == [], reported
    [engine] = runbook_callbacks(dags["incident_escalation_engine"].get_task("escalate"))
    assert engine.severity == "P1"
    health = dags["daily_health_check"]
    [summary] = runbook_callbacks(health.get_task("summary"))
    assert summary.verdict_on == tuple(health.get_task("report_incidents").check_task_ids)
    [response] = runbook_callbacks(dags["incident_response"].get_task("check_incident"))
    assert response.severity == "P1"  # a manual runbook built with page_on_failure=True
    for dag in dags.values():
        if "manual" in dag.tags and dag.dag_id != "incident_response":
            assert not any(runbook_callbacks(task) for task in dag.tasks), dag.dag_id
        else:  # the config can name every scheduled DAG (and refuses any other id)
            assert dag.dag_id in get_args(RunbookDag), f"add {dag.dag_id} to RunbookDag in config/model.py"


def test_each_task_goes_to_the_celery_queue_of_its_operators_domain(config):
    from tradeops.database.operators import BackupOperator
    from tradeops.kubernetes.operators import ScaleDeploymentsOperator
    from tradeops.kubernetes.sensors import RolloutStatusSensor

    with manual_dag("db_restore", description="d", owner="o", doc_md="docs") as dag:
        BackupOperator(task_id="backup")
        ScaleDeploymentsOperator(task_id="scale", deployments=["tactical-marl"], profile="off_hours")
        RolloutStatusSensor(task_id="wait", names=["tactical-marl"])
        CheckOperator(task_id="system_status", check=SystemStatus())
        EmptyOperator(task_id="chosen", queue="special")
    queues = {task.task_id: task.queue for task in dag.tasks}
    assert queues == {
        "backup": "database",
        "scale": "kubernetes",
        "wait": "kubernetes",
        "system_status": "default",
        "chosen": "special",
    }
