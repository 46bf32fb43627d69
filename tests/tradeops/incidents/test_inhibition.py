"""Inhibition against the sandbox's real PostgreSQL: when a shared dependency is down, one incident for it, the
incidents of the checks behind it held back and listed on its timeline; once it answers again, its incident is
resolved and a check that still fails opens its own."""

from __future__ import annotations

import uuid

import pytest

from tradeops.checks.base import CheckResult, Status


def result(name: str, status: Status = Status.OK, *, dependency: str | None = "platform_api", reachable: bool = True):
    summary = "could not check: ConnectionError: 503" if not reachable else f"{name}: {status.value}"
    return CheckResult(name, name.title(), status, summary, dependency=dependency, reachable=reachable)


@pytest.fixture
def dag_id() -> str:
    return f"test_dag_{uuid.uuid4().hex[:8]}"  # check keys of this test's own


def active(incidents, prefix: str):
    return [i for i in incidents.recent(200) if i.dedup_key.startswith(prefix) and i.status != "resolved"]


def test_a_dependency_outage_opens_one_incident_and_holds_back_the_checks_behind_it(incidents, dag_id, state_dsn):
    down = {
        "agents": result("agents", Status.FAIL, reachable=False),  # P1 in check_severity
        "data_feeds": result("data_feeds", Status.FAIL, reachable=False),  # P2
        "memory": result("memory", Status.FAIL, reachable=False),
        "redis": result("redis", dependency="redis"),
    }
    reported = incidents.report_checks(dag_id, "run_1", down)
    [outage] = active(incidents, "dependency:platform_api")
    assert reported["opened"] == [outage.id]
    assert outage.severity == "P1", "as severe as the most severe check it holds back"
    assert outage.details["held_back"] == ["agents", "data_feeds", "memory"]
    held = [e.detail["check"] for e in incidents.timeline(outage.id) if e.kind == "held_back"]
    assert held == ["agents", "data_feeds", "memory"]
    assert active(incidents, f"check:{dag_id}:") == [], "no incident per check while the dependency is down"

    again = incidents.report_checks(dag_id, "run_2", down)  # the next run: the same incident, one more occurrence
    assert again["opened"] == [outage.id] and incidents.get(outage.id).occurrences == 2

    back = {
        "agents": result("agents", Status.FAIL),  # still failing once the platform API answers: its own incident
        "data_feeds": result("data_feeds"),
        "memory": result("memory"),
        "redis": result("redis", dependency="redis"),
    }
    reported = incidents.report_checks(dag_id, "run_3", back)
    [agents] = active(incidents, f"check:{dag_id}:agents")
    assert reported["opened"] == [agents.id] and agents.severity == "P1"
    assert outage.id in reported["resolved"] and incidents.get(outage.id).status == "resolved"


def test_a_check_that_reached_its_dependency_and_failed_is_never_held_back(incidents, dag_id):
    reported = incidents.report_checks(
        dag_id,
        "run_1",
        {
            "agents": result("agents", Status.FAIL),  # read the platform API and found an agent down
            "data_feeds": result("data_feeds", Status.FAIL, reachable=False),  # timed out
            "escalation_engine": result("escalation_engine", Status.FAIL, dependency=None, reachable=False),
        },
    )
    keys = {incidents.get(i).dedup_key for i in reported["opened"]}
    assert keys == {f"check:{dag_id}:agents", "dependency:platform_api", f"check:{dag_id}:escalation_engine"}


# --- a check's own task reports its confirmed failure at once (issue 13, finding 6) ----------------------------


@pytest.fixture
def dependency() -> str:
    return f"dep_{uuid.uuid4().hex[:8]}"  # a dependency of this test's own (its key is shared by every DAG)


def test_checks_reporting_their_own_failures_one_by_one_join_one_dependency_incident(incidents, dag_id, dependency):
    behind = ["agents", "data_feeds", "memory"]  # the run's checks of that dependency (agents: P1)

    def down(task: str):
        return result(task, Status.FAIL, dependency=dependency, reachable=False)

    first = incidents.report_failed_check(dag_id, "run_1", "memory", down("memory"), behind=behind)
    assert first.created and first.incident.severity == "P1", "as severe as the checks that will join it"
    for task in ("data_feeds", "agents"):
        joined = incidents.report_failed_check(dag_id, "run_1", task, down(task), behind=behind)
        assert (joined.created, joined.incident.id) == (False, first.incident.id)
    outage = incidents.get(first.incident.id)
    assert outage.details["held_back"] == ["agents", "data_feeds", "memory"]
    timeline = incidents.timeline(outage.id)
    assert [e.detail["check"] for e in timeline if e.kind == "held_back"] == ["memory", "data_feeds", "agents"]
    assert [e.kind for e in timeline].count("paged") == 1

    # report_incidents, once the checks are done, deduplicates into it: no check incident, no second page.
    reported = incidents.report_checks(dag_id, "run_1", {task: down(task) for task in behind})
    assert reported == {"opened": [outage.id], "resolved": []}
    assert incidents.get(outage.id).occurrences == 4
    assert active(incidents, f"check:{dag_id}:") == []
    assert [e.kind for e in incidents.timeline(outage.id)].count("paged") == 1


def test_a_check_reporting_its_own_failure_pages_once_and_never_resolves_anything(incidents, dag_id, dependency):
    held = incidents.report_failed_check(
        dag_id, "run_1", "data_feeds", result("data_feeds", Status.FAIL, dependency=dependency, reachable=False)
    )
    failed = result("agents", Status.FAIL, dependency=dependency)  # reached the dependency, found an agent down
    opened = incidents.report_failed_check(dag_id, "run_1", "agents", failed)
    assert opened.created and (opened.incident.dedup_key, opened.incident.severity) == (f"check:{dag_id}:agents", "P1")
    retried = incidents.report_failed_check(dag_id, "run_1", "agents", failed)  # the task's retry, a later look
    assert (retried.created, retried.incident.occurrences) == (False, 2)
    # Only report_incidents, seeing the whole run, decides that a dependency is back.
    assert incidents.get(held.incident.id).status == "open"
    assert [e.kind for e in incidents.timeline(opened.incident.id)].count("paged") == 1
