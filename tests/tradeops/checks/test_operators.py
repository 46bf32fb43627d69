"""The check operators, in the health check DAG run in-process by ``dag.test()`` against the sandbox (real HTTP,
Postgres, Redis, Slack stand-in): a healthy run, an unhealthy platform, an unreachable dependency, and a check that
ended without reporting."""

from __future__ import annotations

import copy
import json
import types

import pytest
from airflow.sdk.exceptions import AirflowFailException

from devstack.drill import posted_at
from tests.dagtest import states
from tradeops.checks.base import RESULT_KEY
from tradeops.checks.operators import CheckOperator

HEALTH_CHECKS = [
    "system_status",
    "agents",
    "data_feeds",
    "database_connections",
    "redis",
    "memory",
    "performance",
    "active_alerts",
    "account_balance",
    "escalation_engine",
]


@pytest.fixture
def health_dag(dagbag, airflow_db, airflow_connections, no_active_incidents, engine_running, recheck_after):
    recheck_after("1s")  # a failed check looks again after 1 s instead of 5 (tested at 5 s end to end)
    full = dagbag.get_dag("daily_health_check")
    # `dag.test()` runs one task at a time and a deferred task's trigger inline, so the task-level deadline (which
    # watches the other tasks from the triggerer) would wait for its deadline: it is tested with the real scheduler
    # and triggerer in tests/e2e, like the run-level deadlines (`dag.test()` cannot run a DAG with deadlines, it
    # ends in a database error, upstream #73428).
    watched = [t for t in full.task_ids if not t.endswith("_by_deadline")]
    dag = copy.deepcopy(full).partial_subset(watched, include_upstream=False)  # the session's DagBag stays intact
    for task in dag.tasks:
        task.retries = 0  # a failing check would otherwise wait out its retry delay
    dag.deadline = None
    return dag


@pytest.fixture
def no_active_incidents(sandbox_settings):
    from tradeops.incidents import store

    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    with store.connect(dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE status <> 'resolved'"
        )
        before = conn.execute("SELECT coalesce(max(id), 0) AS id FROM tradeops.incidents").fetchone()["id"]

    def opened_since() -> dict[str, dict]:
        """The check incidents this test opened, by check."""
        with store.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT * FROM tradeops.incidents WHERE source = 'check' AND id > %s ORDER BY id", (before,)
            ).fetchall()
        return {row["task_id"]: row for row in rows}

    return opened_since


@pytest.fixture
def engine_running(sandbox_settings, no_active_incidents):
    """A live escalation engine for the ``escalation_engine`` check: a fresh heartbeat, as the engine's trigger
    writes (no engine runs in ``dag.test()``; the trigger's own beats are tested in tests/tradeops/incidents)."""
    from datetime import UTC, datetime, timedelta

    from tradeops.incidents import heartbeats, store

    with store.connect(sandbox_settings["postgres"]["state_dsn"]) as conn:
        heartbeats.beat(conn, datetime.now(UTC) + timedelta(minutes=31), "tests:0")


@pytest.fixture
def slack(sandbox, sandbox_settings):
    import requests

    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    return sandbox


def report_of(dag_run, reports) -> dict:
    path = reports / "daily_health_check" / (dag_run.run_id.replace(":", "_").replace("+", "_") + ".json")
    return json.loads(path.read_text())


def test_a_healthy_platform(health_dag, slack, airflow_db):
    run = health_dag.test()
    assert run.state == "success"
    assert set(states(run).values()) == {"success"}
    [message] = slack.slack_messages("#trading-ops")
    assert message["text"] == ":large_yellow_circle: Daily health check: all 10 checks passed, 1 with warnings"
    assert "HighMemoryUsage (data-handler)" in message["blocks"][2]["text"]["text"]
    assert "/dags/daily_health_check/runs/" in message["blocks"][1]["elements"][0]["text"]
    report = report_of(run, airflow_db / "reports")
    assert report["overall"] == "warn"
    assert [r["name"] for r in report["results"]] == HEALTH_CHECKS


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
    assert message["text"] == ":red_circle: Daily health check: 3 of 10 checks failed"
    body = message["blocks"][2]["text"]["text"]
    assert ":red_circle: *System status*: 1 of 10 components unhealthy: tactical-marl" in body
    assert ":red_circle: *Data feeds*: disconnected: cme-mdp3" in body
    report = report_of(run, airflow_db / "reports")
    assert {r["name"]: r["status"] for r in report["results"]}["agents"] == "fail"
    assert task_states["report_incidents"] == "success"


def test_failed_checks_open_one_incident_each_and_passing_again_resolves_them(health_dag, slack, no_active_incidents):
    slack.set_faults("platform_api", unhealthy=["tactical-marl"])
    first = health_dag.test()
    second = health_dag.test()
    opened = no_active_incidents()
    # Severities from incidents.check_severity; the second failing run adds occurrences instead of paging again
    # (in each run, the check's own task reports it, then report_incidents).
    assert {task: (row["severity"], row["status"], row["occurrences"]) for task, row in opened.items()} == {
        "system_status": ("P1", "open", 4),
        "agents": ("P1", "open", 4),
    }
    assert opened["agents"]["dedup_key"] == "check:daily_health_check:agents"
    assert opened["agents"]["run_id"] == first.run_id
    pages = [m for m in slack.slack_messages("#trading-alerts") if not m["thread_ts"]]
    assert sorted(m["text"].split("] ")[1].split(" ", 1)[1] for m in pages) == [
        "System status check failing",
        "Trading agents check failing",
    ]
    assert states(second)["report_incidents"] == "success"

    slack.clear_faults("platform_api")
    healthy = health_dag.test()
    assert healthy.state == "success"
    after = no_active_incidents()
    assert {task: row["status"] for task, row in after.items()} == {"system_status": "resolved", "agents": "resolved"}
    assert after["agents"]["resolved_by"] == "tradeops (the check passed again)"


def test_an_unreachable_dependency_is_a_failed_check_with_the_reason(health_dag, slack, monkeypatch, config):
    name = "AIRFLOW_CONN_" + config.connections.redis.upper()
    monkeypatch.setenv(name, '{"conn_type": "redis", "host": "127.0.0.1", "port": 9, "password": "x"}')
    run = health_dag.test()
    assert states(run)["redis"] == "failed"
    [message] = slack.slack_messages("#trading-ops")
    assert ":red_circle: *Redis*: could not check: ConnectionError" in message["blocks"][2]["text"]["text"]


def test_a_check_task_that_ended_without_reporting_is_a_failed_check_under_its_title(
    health_dag, slack, airflow_connections
):
    summary = health_dag.get_task("summary")
    pushed = {
        task_id: {"name": task_id, "title": task_id, "status": "ok", "summary": "fine"}
        for task_id in HEALTH_CHECKS
        if task_id != "agents"
    }
    ti = types.SimpleNamespace(
        dag_id="daily_health_check",
        run_id="manual__missing",
        task_id="summary",
        xcom_pull=lambda task_ids, key: pushed.get(task_ids) if key == RESULT_KEY else None,
    )
    with pytest.raises(AirflowFailException, match="^1 of 10 health checks failed: Trading agents: no result"):
        summary.execute({"ti": ti, "dag_run": types.SimpleNamespace(run_type="manual")})
    [message] = slack.slack_messages("#trading-ops")
    assert (
        ":red_circle: *Trading agents*: no result: the task ended before reporting"
        in message["blocks"][2]["text"]["text"]
    )


def test_only_checks_are_accepted_when_the_dag_is_parsed():
    with pytest.raises(TypeError, match="check must be a Check, got 'disk'"):
        CheckOperator(task_id="disk", check="disk")


def test_a_slack_rate_limit_burst_leaves_the_run_green_and_the_summary_arrives_once_after_it(
    health_dag, slack, sandbox_settings, config
):
    from tradeops.incidents import store
    from tradeops.incidents.service import IncidentService

    slack.set_faults("slack", rate_limit=50, retry_after_s=1)  # longer than the Slack client's own 5 retries
    run = health_dag.test()
    assert run.state == "success" and states(run)["summary"] == "success"
    assert slack.slack_messages("#trading-ops") == []
    key = f"summary:daily_health_check:{run.run_id}"
    with store.connect(sandbox_settings["postgres"]["state_dsn"]) as conn:
        queued = store.outbox_message_state(conn, key)
    assert queued and queued["delivered_at"] is None and queued["last_error"] == "ratelimited"

    slack.clear_faults("slack")
    outbox = IncidentService(config, sandbox_settings["postgres"]["state_dsn"]).outbox
    outbox.deliver()  # what the escalation engine does when the message's next attempt is due
    outbox.deliver()
    [message] = slack.slack_messages("#trading-ops")
    assert message["text"].startswith(":large_yellow_circle: Daily health check: all 10 checks passed")


def test_a_retried_summary_is_sent_once(health_dag, slack, airflow_connections):
    summary = health_dag.get_task("summary")
    pushed = {t: {"name": t, "title": t, "status": "ok", "summary": "fine"} for t in HEALTH_CHECKS}
    ti = types.SimpleNamespace(
        dag_id="daily_health_check",
        run_id="manual__retried",
        task_id="summary",
        xcom_pull=lambda task_ids, key: pushed.get(task_ids) if key == RESULT_KEY else None,
    )
    for _ in range(2):
        assert summary.execute({"ti": ti, "dag_run": types.SimpleNamespace(run_type="manual")})["overall"] == "ok"
    assert len(slack.slack_messages("#trading-ops")) == 1


def test_the_platform_api_down_opens_one_incident_and_holds_back_the_checks_behind_it(
    health_dag, slack, sandbox_settings, config
):
    from tradeops.incidents.messages import headline
    from tradeops.incidents.service import IncidentService

    slack.set_faults("platform_api", error_rate=1.0)  # every request answers 503
    run = health_dag.test()
    behind = {"system_status", "agents", "data_feeds", "memory", "performance", "account_balance"}
    assert {t for t, state in states(run).items() if state == "failed"} == behind | {"summary"}
    incidents = IncidentService(config, sandbox_settings["postgres"]["state_dsn"])
    active = [i for i in incidents.recent(100) if i.status != "resolved"]
    [outage] = [i for i in active if i.dedup_key == "dependency:platform_api"]
    assert [i.dedup_key for i in active if i.dedup_key.startswith("check:daily_health_check:")] == []
    assert set(outage.details["held_back"]) == behind and outage.severity == "P1"
    held = {e.detail["check"] for e in incidents.timeline(outage.id) if e.kind == "held_back"}
    assert held == behind
    pages = [m for m in slack.slack_messages("#trading-alerts") if not m["thread_ts"]]
    assert [m["text"] for m in pages] == [headline(outage)], "one page, for the dependency"


def test_a_failing_check_pages_from_its_own_task_before_report_incidents_runs(
    health_dag, slack, sandbox_settings, config, no_active_incidents
):
    from tradeops.incidents.service import IncidentService

    slack.set_faults("platform_api", unhealthy=["tactical-marl"])
    run = health_dag.test()
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    opened = no_active_incidents()
    assert set(opened) == {"system_status", "agents"}
    pages = {m["text"]: m for m in slack.slack_messages("#trading-alerts") if not m["thread_ts"]}
    for task, row in opened.items():
        assert row["opened_at"] < tis["report_incidents"].start_date, f"{task} paged before report_incidents ran"
        assert row["opened_at"] <= tis[task].end_date
        [page] = [m for text, m in pages.items() if text.endswith(f"#{row['id']} {row['title']}")]
        assert posted_at(page) < tis["report_incidents"].start_date
        kinds = [e.kind for e in IncidentService(config, sandbox_settings["postgres"]["state_dsn"]).timeline(row["id"])]
        assert kinds[:2] == ["opened", "paged"] and kinds.count("deduplicated") == 1, "report_incidents: no page"
    assert len(pages) == 2, "one page per failing check"
    assert run.state == "failed" and tis["agents"].state == "failed", "the task still fails, red in the grid"


def test_a_burst_of_503s_is_looked_at_again_and_pages_nobody(health_dag, slack, airflow_db, no_active_incidents):
    # Four 503s in a row outlast the platform client's own three retries: the first platform check to meet them
    # cannot reach the API on its first look, and passes on its second.
    slack.set_faults("platform_api", error_burst=4)
    run = health_dag.test()
    assert run.state == "success" and set(states(run).values()) == {"success"}
    report = report_of(run, airflow_db / "reports")
    [rechecked] = [r for r in report["results"] if "first_look" in r["details"]]
    assert rechecked["status"] == "ok" and rechecked["dependency"] == "platform_api"
    assert rechecked["details"]["first_look"].startswith("could not check: PlatformApiError: ")
    assert "HTTP 503" in rechecked["details"]["first_look"]
    assert no_active_incidents() == {}
    assert [m for m in slack.slack_messages("#trading-alerts") if not m["thread_ts"]] == [], "nobody paged"
