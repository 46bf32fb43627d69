"""incident_response's form refuses bad input as the trigger would (before a run exists), and its pure parts: the
plan, the outcome in words, and the runbook step's line on the incident's timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.forms import validate_form
from tradeops.incident_response.plans import render, response_plan
from tradeops.incident_response.report import outcome
from tradeops.incidents.models import EventKind, IncidentEvent
from tradeops.incidents.timeline import describe

VALID = {"incident_id": 7, "type": "critical", "reason": "fills rejected everywhere"}

INVALID = [
    ({"type": "critical", "reason": "r3l"}, "incident_id"),
    ({**VALID, "incident_id": 0}, "less than the minimum|is less than"),
    ({**VALID, "incident_id": -3}, "less than the minimum|is less than"),
    ({**VALID, "incident_id": "7; rm -rf /"}, "is not of type 'integer'"),
    ({**VALID, "incident_id": 1.5}, "is not of type 'integer'"),
    ({"incident_id": 7, "reason": "r3l"}, "type"),
    ({**VALID, "type": "performance"}, "is not one of"),
    ({**VALID, "type": "security"}, "is not one of"),
    ({**VALID, "type": "Critical"}, "is not one of"),
    ({"incident_id": 7, "type": "critical"}, "reason"),
    ({**VALID, "reason": "    "}, "does not match"),
    ({**VALID, "reason": "x" * 501}, "param reason"),
    ({**VALID, "dry_run": "no"}, "is not of type 'boolean'"),
    ({**VALID, "dry_run": None}, "is not of type 'boolean'"),
]


@pytest.fixture(scope="module")
def dag(dagbag, airflow_db):
    return dagbag.get_dag("incident_response")


@pytest.mark.parametrize(("conf", "complaint"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_the_form_refuses_bad_input_before_a_run_exists(dag, conf, complaint):
    with pytest.raises(ParamValidationError, match=complaint):
        validate_form(dag, conf)


def test_the_form_takes_both_types_and_defaults_to_a_dry_run(dag):
    assert validate_form(dag, VALID)["dry_run"] is True
    assert validate_form(dag, {**VALID, "type": "system_failure", "dry_run": False})["dry_run"] is False


def test_a_failed_step_pages_the_runbook_incident_and_the_verdict_fails_the_run(dag):
    from tradeops.checks.operators import RunVerdictOperator
    from tradeops.incidents.callbacks import OpenRunbookIncidentOnFailure

    verdict = dag.get_task("verdict")
    assert isinstance(verdict, RunVerdictOperator) and set(verdict.upstream_task_ids) == set(dag.task_ids) - {"verdict"}
    for task in dag.tasks:
        paging = [c for c in task.on_failure_callback or [] if isinstance(c, OpenRunbookIncidentOnFailure)]
        assert len(paging) == (task.task_id != "verdict"), task.task_id
    approve = dag.get_task("approve")
    assert approve.defaults == ["Reject"] and approve.response_timeout.total_seconds() == 900
    assert dag.get_task("report").trigger_rule == "all_done" and dag.get_task("release_lock").trigger_rule == "all_done"


def test_the_plan_lists_what_changes_and_leaves_out_what_is_already_done():
    plan = response_plan(
        {"tactical-marl": 2, "strategic-marl": 0}, [{"symbol": "ES", "qty": 3}, {"symbol": "NQ", "qty": 0}],
        "api-gateway", "LoadBalancer",
    )  # fmt: skip
    assert plan == [
        {"action": "scale", "target": "tactical-marl", "before": 2, "after": 0},
        {"action": "close", "target": "ES", "before": 3, "after": 0},
        {"action": "isolate", "target": "api-gateway", "before": "LoadBalancer", "after": "ClusterIP"},
    ]
    assert render(plan).splitlines() == [
        "• scale tactical-marl 2 → 0",
        "• close ES (3)",
        "• isolate Service api-gateway: LoadBalancer → ClusterIP",
    ]
    assert response_plan({"tactical-marl": 0}, [], "api-gateway", "ClusterIP") == []
    assert render([]) == "nothing to change"


@pytest.mark.parametrize(
    ("states", "dry_run", "expected"),
    [
        ({"check_incident": "failed"}, None, "REFUSED, nothing done"),
        ({"check_incident": "success", "approve": "skipped", "lock": "skipped"}, True, "dry run"),
        ({"check_incident": "success", "approve": "success", "lock": "skipped"}, False, "not approved"),
        ({"check_incident": "success", "collect_diagnostics": "failed"}, True, "FAILED at collect_diagnostics"),
        (
            {"check_incident": "success", "stop_trading": "success", "close_positions": "failed"},
            False,
            "FAILED at close_positions (done before: stop_trading)",
        ),
        (
            {"check_incident": "success", **dict.fromkeys(("lock", "stop_trading", "close_positions"), "success"),
             "isolate_gateway": "success"},
            False,
            "done: trading stopped",
        ),
    ],
)  # fmt: skip
def test_the_outcome_in_words(states, dry_run, expected):
    assert outcome(states, dry_run).startswith(expected)


def test_a_runbook_step_reads_as_a_line_of_the_timeline():
    event = IncidentEvent.from_row(
        {
            "id": 1,
            "incident_id": 7,
            "at": datetime(2026, 12, 1, tzinfo=UTC),
            "kind": "runbook_step",
            "actor": "alice",
            "level": None,
            "detail": {"step": "isolate_gateway", "summary": "Service api-gateway: LoadBalancer → ClusterIP"},
            "slack_channel": None,
            "slack_ts": None,
        }
    )
    assert event.kind is EventKind.RUNBOOK_STEP
    assert describe(event) == ("Runbook: isolate gateway", "Service api-gateway: LoadBalancer → ClusterIP", "person")
