"""The health check DAG's operators, run in-process by ``dag.test()`` against the sandbox (real HTTP, Postgres,
Redis, Slack stand-in): a healthy run, an unhealthy platform, and an unreachable dependency."""

from __future__ import annotations

import copy
import json

import pytest

from tradeops.checks.health import HEALTH_CHECKS
from tradeops.operators.health import HealthCheckOperator


@pytest.fixture
def health_dag(dagbag, airflow_db, airflow_connections):
    dag = copy.deepcopy(dagbag.get_dag("daily_health_check"))  # the session's DagBag stays untouched
    for task in dag.tasks:
        task.retries = 0  # a failing check would otherwise wait out its retry delay
    # `dag.test()` cannot run a DAG with deadlines (it ends in a database error, upstream #73428); deadlines are
    # tested with the real scheduler and triggerer in tests/e2e.
    dag.deadline = None
    return dag


@pytest.fixture
def slack(sandbox, sandbox_settings):
    import requests

    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    return sandbox


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def report_of(dag_run, reports) -> dict:
    path = reports / "daily_health_check" / (dag_run.run_id.replace(":", "_").replace("+", "_") + ".json")
    return json.loads(path.read_text())


def test_a_healthy_platform(health_dag, slack, airflow_db):
    run = health_dag.test()
    assert run.state == "success"
    assert set(states(run).values()) == {"success"}
    [message] = slack.slack_messages("#trading-ops")
    assert message["text"] == ":large_yellow_circle: Daily health check: all 9 checks passed, 1 with warnings"
    assert "HighMemoryUsage (data-handler)" in message["blocks"][2]["text"]["text"]
    assert f"/dags/daily_health_check/runs/" in message["blocks"][1]["elements"][0]["text"]
    report = report_of(run, airflow_db / "reports")
    assert report["overall"] == "warn"
    assert [r["name"] for r in report["results"]] == list(HEALTH_CHECKS)


def test_an_unhealthy_platform_fails_the_check_and_the_run_after_reporting(health_dag, slack, airflow_db):
    slack.set_faults("platform_api", unhealthy=["tactical-marl", "cme-mdp3"])
    run = health_dag.test()
    task_states = states(run)
    assert run.state == "failed"
    assert task_states["system_status"] == "failed"
    assert task_states["agents"] == "failed"
    assert task_states["data_feeds"] == "failed"
    assert task_states["redis"] == "success"
    assert task_states["summary"] == "failed"
    [message] = slack.slack_messages("#trading-ops")
    assert message["text"] == ":red_circle: Daily health check: 3 of 9 checks failed"
    body = message["blocks"][2]["text"]["text"]
    assert ":red_circle: *System status*: 1 of 10 components unhealthy: tactical-marl" in body
    assert ":red_circle: *Data feeds*: disconnected: cme-mdp3" in body
    report = report_of(run, airflow_db / "reports")
    assert {r["name"]: r["status"] for r in report["results"]}["agents"] == "fail"


def test_an_unreachable_dependency_is_a_failed_check_with_the_reason(health_dag, slack, monkeypatch, config):
    name = "AIRFLOW_CONN_" + config.connections.redis.upper()
    monkeypatch.setenv(name, '{"conn_type": "redis", "host": "127.0.0.1", "port": 9, "password": "x"}')
    run = health_dag.test()
    assert states(run)["redis"] == "failed"
    [message] = slack.slack_messages("#trading-ops")
    assert ":red_circle: *Redis*: could not check: ConnectionError" in message["blocks"][2]["text"]["text"]


def test_unknown_checks_are_refused_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="unknown health check 'disk'"):
        HealthCheckOperator(task_id="disk", check="disk")
