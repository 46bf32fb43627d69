"""The quick re-check (pure: scripted looks, an injected sleeper, no sandbox): a check that fails looks again after
``incidents.recheck_after`` and only a failure seen twice counts; and the check task that reports its own confirmed
failure at once, when its DAG's ``report_incidents`` lists it, without a failure to report ever changing its
outcome."""

from __future__ import annotations

import types
from datetime import timedelta

import pytest
from airflow.sdk import DAG

from tradeops.checks.base import Check, CheckResult, Status
from tradeops.checks.operators import CheckOperator
from tradeops.exceptions import CheckFailed, PlatformApiError
from tradeops.incidents.models import Opened
from tradeops.incidents.operators import ReportCheckIncidentsOperator


def unavailable(note: str = "") -> PlatformApiError:
    return PlatformApiError(f"GET /v1/agents/status answered HTTP 503{note}", status=503)


class Scripted(Check[Status]):
    """A check whose looks are scripted: each one a status it evaluates to, or an error its collect raises."""

    name, title, action = "scripted", "Scripted", "do something"
    dependency = "platform_api"

    def __init__(self, *looks: Status | Exception) -> None:
        self.looks = list(looks)
        self.collected = 0

    def collect(self, config) -> Status:
        self.collected += 1
        look = self.looks.pop(0)
        if isinstance(look, Exception):
            raise look
        return look

    def evaluate(self, data: Status, config) -> CheckResult:
        return self.result(data, f"looked: {data.value}")


class Sleeper:
    """Records the pauses instead of taking them (the clock stands still)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def sleep() -> Sleeper:
    return Sleeper()


def with_pause(config, seconds: float):
    return config.model_copy(
        update={"incidents": config.incidents.model_copy(update={"recheck_after": timedelta(seconds=seconds)})}
    )


def test_the_config_pauses_five_seconds_by_default(config):
    assert config.incidents.recheck_after == timedelta(seconds=5)


def test_one_transient_error_then_ok_is_ok_and_says_what_the_first_look_saw(config, sleep):
    check = Scripted(unavailable(), Status.OK)
    look = check.confirmed_look(config, sleep=sleep)
    assert (look.result.status, look.error) == (Status.OK, None)
    assert sleep.pauses == [5.0], "one pause, the config's"
    first = "could not check: PlatformApiError: GET /v1/agents/status answered HTTP 503"
    assert look.result.details["first_look"] == first
    assert check.collected == 2


def test_one_failing_look_then_ok_is_ok(config, sleep):
    look = Scripted(Status.FAIL, Status.OK).confirmed_look(config, sleep=sleep)
    assert look.result.status is Status.OK and look.result.details == {"first_look": "looked: fail"}
    assert sleep.pauses == [5.0]


def test_two_transient_errors_are_a_failure_that_could_not_reach_its_dependency(config, sleep):
    second = unavailable(" (again)")
    look = Scripted(unavailable(), second).confirmed_look(config, sleep=sleep)
    assert look.result.status is Status.FAIL and look.error is second
    assert look.result.summary.endswith("(again)") and not look.result.reachable
    assert look.result.dependency == "platform_api"
    assert sleep.pauses == [5.0]


def test_a_failure_seen_twice_counts_with_the_second_looks_result(config, sleep):
    look = Scripted(unavailable(), Status.FAIL).confirmed_look(config, sleep=sleep)
    assert (look.result.status, look.result.summary, look.result.reachable) == (Status.FAIL, "looked: fail", True)
    assert "first_look" not in look.result.details


@pytest.mark.parametrize("status", [Status.OK, Status.WARN])
def test_a_look_that_does_not_fail_is_not_looked_at_again(config, sleep, status):
    check = Scripted(status)
    assert check.confirmed_look(config, sleep=sleep).result.status is status
    assert sleep.pauses == [] and check.collected == 1


def test_the_pause_is_the_configs(config, sleep):
    Scripted(Status.FAIL, Status.FAIL).confirmed_look(with_pause(config, 2), sleep=sleep)
    assert sleep.pauses == [2.0]


def test_a_check_that_must_not_collect_twice_looks_once(config, sleep):
    class OneShot(Scripted):
        recheck = False  # collecting again would be a second action (the backup)

    first = unavailable()
    check = OneShot(first, Status.OK)
    look = check.confirmed_look(config, sleep=sleep)
    assert look.result.status is Status.FAIL and look.error is first
    assert sleep.pauses == [] and check.collected == 1


def test_the_backup_is_never_taken_twice_by_a_recheck():
    from tradeops.database.checks import BackupCheck

    assert BackupCheck.recheck is False


def test_the_recheck_pause_is_between_zero_and_a_minute(config):
    from pydantic import ValidationError

    from tradeops.config.model import Incidents

    assert Incidents.model_validate({"recheck_after": "0s"}).recheck_after == timedelta(0)
    for wrong in ("2m", "-5s"):
        with pytest.raises(ValidationError):
            Incidents.model_validate({"recheck_after": wrong})


# --- the check task reports its own confirmed failure ----------------------------------------------------------


class FakeIncidents:
    """Stands in for the IncidentService: records what the check task reports, or fails like a lost database."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.reported: list[tuple] = []

    def report_failed_check(self, dag_id, run_id, task_id, result, *, behind=()):
        if self.error:
            raise self.error
        self.reported.append((dag_id, run_id, task_id, result.status, sorted(behind)))
        incident = types.SimpleNamespace(id=7, dedup_key=f"check:{dag_id}:{task_id}")
        return Opened(incident=incident, created=True)  # type: ignore[arg-type]


@pytest.fixture
def no_pause(recheck_after):
    recheck_after("0s")


def build(reported: list[str], *checks: tuple[str, Check]) -> dict[str, CheckOperator]:
    with DAG("paging_probe", schedule=None):
        tasks = {task_id: CheckOperator(task_id=task_id, check=check) for task_id, check in checks}
        if reported:
            ReportCheckIncidentsOperator(task_id="report_incidents", check_task_ids=reported)
    return tasks


def execute(task: CheckOperator, incidents: FakeIncidents) -> dict:
    pushed: dict = {}
    task.__dict__["incidents"] = incidents  # the cached IncidentService
    ti = types.SimpleNamespace(
        dag_id="paging_probe", run_id="manual__1", xcom_push=lambda key, value: pushed.__setitem__(key, value)
    )
    task.execute({"ti": ti})  # type: ignore[arg-type]
    return pushed


def test_a_confirmed_failure_is_reported_by_its_own_task_then_the_task_fails(no_pause):
    class Other(Scripted):
        dependency = "platform_api"

    class Elsewhere(Scripted):
        dependency = "redis"

    tasks = build(
        ["agents", "system_status", "redis"],
        ("agents", Scripted(Status.FAIL, Status.FAIL)),
        ("system_status", Other(Status.OK)),
        ("redis", Elsewhere(Status.OK)),
    )
    incidents = FakeIncidents()
    with pytest.raises(CheckFailed, match="^Scripted: looked: fail$"):
        execute(tasks["agents"], incidents)
    # The run's other checks behind the same dependency: the dependency's incident is as severe as they are.
    assert incidents.reported == [("paging_probe", "manual__1", "agents", Status.FAIL, ["agents", "system_status"])]


def test_a_transient_failure_reports_nothing_and_the_task_succeeds(no_pause):
    tasks = build(["agents"], ("agents", Scripted(unavailable(), Status.OK)))
    incidents = FakeIncidents()
    pushed = execute(tasks["agents"], incidents)
    assert pushed["check_result"]["status"] == "ok" and incidents.reported == []


def test_a_check_that_report_incidents_does_not_list_reports_nothing_itself(no_pause):
    # e.g. weekly_maintenance's pre-checks: their failure is the runbook's incident (the failure callback).
    tasks = build(["agents"], ("agents", Scripted(Status.OK)), ("pre_check", Scripted(Status.FAIL, Status.FAIL)))
    incidents = FakeIncidents()
    with pytest.raises(CheckFailed):
        execute(tasks["pre_check"], incidents)
    assert incidents.reported == []


def test_a_state_database_that_cannot_be_reached_never_changes_the_checks_outcome(no_pause, capsys):
    error = unavailable()
    tasks = build(["agents"], ("agents", Scripted(Status.FAIL, error)))
    with pytest.raises(CheckFailed, match="could not check: PlatformApiError") as failure:
        execute(tasks["agents"], FakeIncidents(OSError("connection refused")))
    assert failure.value.__cause__ is error, "the check's own error, not the reporting's"
    logged = "".join(capsys.readouterr())  # the task's log
    assert "Reporting the incident failed; report_incidents will report it after the checks" in logged
    assert "OSError: connection refused" in logged
