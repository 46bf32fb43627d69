"""incident_response's form refuses bad input as the trigger would (before a run exists), and its pure parts: the
plan, the outcome in words, and the runbook step's line on the incident's timeline."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.forms import validate_form
from tradeops.incident_response.performance import cache_match
from tradeops.incident_response.performance_plans import (
    degraded,
    performance_plan,
    scale_plan,
    top_consumers,
    wanted_replicas,
)
from tradeops.incident_response.performance_plans import render as render_performance
from tradeops.incident_response.plans import render, response_plan
from tradeops.incident_response.report import action_results, outcome
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
    ({**VALID, "flush_cache": "yes"}, "is not of type 'boolean'"),
    ({**VALID, "type": "Security"}, "is not one of"),
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


def test_the_form_takes_every_type_and_defaults_to_a_dry_run_without_a_cache_flush(dag):
    assert validate_form(dag, VALID)["dry_run"] is True
    assert validate_form(dag, {**VALID, "type": "system_failure", "dry_run": False})["dry_run"] is False
    assert validate_form(dag, {**VALID, "type": "security"})["type"] == "security"
    performance = validate_form(dag, {**VALID, "type": "performance"})
    assert performance["dry_run"] is True and performance["flush_cache"] is False
    assert validate_form(dag, {**VALID, "type": "performance", "flush_cache": True})["flush_cache"] is True


def test_the_branch_picks_each_types_runbook_and_the_report_and_verdict_follow_every_runbook(dag):
    from tradeops.incident_response.runbooks import RUNBOOKS, entry_task

    assert entry_task("critical") == entry_task("system_failure") == "collect_diagnostics"
    assert entry_task("performance") == "performance.diagnostics"
    assert dag.get_task("choose_runbook").downstream_task_ids - {"verdict"} == {r.entry for r in RUNBOOKS.values()}
    report = dag.get_task("report")
    assert report.upstream_task_ids == {"isolate_gateway", "performance.analyze", "performance.scale",
                                        "performance.flush_cache", "security.revoke_tokens"}  # fmt: skip
    for runbook in RUNBOOKS.values():
        assert set(runbook.steps) | set(runbook.actions) <= set(dag.task_ids), runbook.group
    after_performance = dag.get_task("performance.diagnostics").get_flat_relative_ids(upstream=False)
    assert not {"stop_trading", "close_positions", "isolate_gateway"} & after_performance, "stops, isolates nothing"
    flush = dag.get_task("performance.flush_cache")
    assert flush.upstream_task_ids == {"performance.approve"} and flush.approval_task == "performance.approve"
    assert dag.get_task("performance.scale").upstream_task_ids == {"performance.lock"}
    assert dag.get_task("performance.lock").upstream_task_ids == {"performance.approve"}
    assert dag.get_task("performance.approve").defaults == ["Reject"]


def test_the_security_runbook_keeps_the_evidence_and_pages_security_before_any_containment(dag):
    from tradeops.incident_response.security import EVIDENCE_TASK

    assert entry_task_of(dag, "security") == EVIDENCE_TASK == "security.preserve_evidence"
    evidence = dag.get_task(EVIDENCE_TASK)
    containment = {"security.isolate_gateway", "security.stop_trading", "security.revoke_tokens"}
    assert containment <= evidence.get_flat_relative_ids(upstream=False)
    assert containment <= dag.get_task("security.page_security").get_flat_relative_ids(upstream=False)
    plan = dag.get_task("security.plan")
    assert plan.upstream_task_ids == {EVIDENCE_TASK, "security.page_security"}, "no containment without evidence"
    assert plan.trigger_rule == "all_success"
    assert dag.get_task("security.page_security").trigger_rule == "all_done", "security is paged even so"
    approve = dag.get_task("security.approve")
    assert approve.defaults == ["Reject"] and approve.response_timeout.total_seconds() == 900
    assert dag.get_task("security.lock").upstream_task_ids == {"security.approve"}
    order = ["security.lock", "security.isolate_gateway", "security.stop_trading", "security.revoke_tokens"]
    for before, after in zip(order, order[1:], strict=False):
        assert dag.get_task(after).upstream_task_ids == {before}
    after_security = evidence.get_flat_relative_ids(upstream=False)
    assert not {"close_positions", "performance.scale"} & after_security


def entry_task_of(dag, response_type: str) -> str:
    from tradeops.incident_response.runbooks import entry_task

    assert entry_task(response_type) in dag.get_task("choose_runbook").downstream_task_ids
    return entry_task(response_type)


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


PERF_DONE = {"check_incident": "success", "performance.analyze": "success", "performance.lock": "success",
             "performance.scale": "success"}  # fmt: skip


@pytest.mark.parametrize(
    ("states", "dry_run", "expected"),
    [
        ({"check_incident": "success", "performance.apply": "success", "performance.approve": "skipped"}, True,
         "dry run: plan listed, nothing changed"),
        ({**PERF_DONE, "performance.lock": "skipped", "performance.scale": "skipped"}, False,
         "not approved (rejected or timed out): statistics refreshed, nothing scaled or flushed"),
        ({**PERF_DONE, "performance.flush_cache": "success"}, False,
         "done: statistics refreshed, degraded services scaled within their limits"),
        ({**PERF_DONE, "performance.flush_cache": "skipped"}, False,
         "done: statistics refreshed, degraded services scaled within their limits (skipped: "
         "performance.flush_cache)"),
        ({**PERF_DONE, "performance.scale": "failed"}, False,
         "FAILED at performance.scale (done before: performance.analyze)"),
    ],
)  # fmt: skip
def test_the_performance_outcome_in_words(states, dry_run, expected):
    assert outcome(states, dry_run, "performance") == expected


def step_event(event_id: int, step: str, summary: str, run_id: str = "manual__1") -> IncidentEvent:
    detail = {"step": step, "summary": summary, "dag_id": "incident_response", "run_id": run_id}
    at = datetime(2026, 12, 1, 18, 0, event_id, tzinfo=UTC)
    return IncidentEvent(event_id, 7, at, EventKind.RUNBOOK_STEP, "oncall-alice", None, detail, None, None)


def test_the_outcome_says_what_the_changes_did_not_what_the_runbook_could_do():
    trail = [
        step_event(1, "started", "performance runbook started"),
        step_event(2, "analyze", "planner statistics refreshed (ANALYZE): orders"),
        step_event(3, "scale", "nothing to scale"),
        step_event(4, "scale", "scaled within the limits: tactical-marl 3 → 4", run_id="manual__0"),  # another run
        step_event(5, "outcome", "an earlier outcome"),
    ]
    results = action_results(trail, "manual__1", "performance")
    assert results == ["planner statistics refreshed (ANALYZE): orders", "nothing to scale"]
    assert outcome({**PERF_DONE, "performance.flush_cache": "skipped"}, False, "performance", results) == (
        "done: planner statistics refreshed (ANALYZE): orders; nothing to scale (skipped: performance.flush_cache)"
    )
    assert action_results(trail, "manual__1", "security") == [], "another runbook's steps are not its changes"


def test_scaling_stops_at_the_limit_never_goes_down_and_leaves_a_deployment_without_a_max_alone():
    replicas = {"tactical-marl": 3, "strategic-marl": 4, "execution-engine": 2, "auth-service": 2}
    limits = {"tactical-marl": 6, "strategic-marl": 4, "execution-engine": 4, "auth-service": None}
    assert scale_plan(replicas, {"tactical-marl": 10}, limits) == [
        {"action": "scale", "target": "tactical-marl", "before": 3, "after": 6, "max": 6}
    ]
    assert scale_plan(replicas, {"strategic-marl": 5}, limits) == [], "already at max: nothing"
    assert scale_plan(replicas, {"execution-engine": 1}, limits) == [], "never down"
    assert scale_plan(replicas, {"auth-service": 3}, limits) == [], "no max: never scaled"
    stopped = {**replicas, "execution-engine": 0}
    assert scale_plan(stopped, {"execution-engine": 1}, limits) == [], "stopped on purpose: never restarted here"
    wanted = wanted_replicas(replicas, ["tactical-marl", "strategic-marl"], step=1)
    assert wanted == {"tactical-marl": 4, "strategic-marl": 5}
    assert [(c["target"], c["after"]) for c in scale_plan(replicas, wanted, limits)] == [("tactical-marl", 4)]


def test_degraded_components_and_the_top_consumers():
    def component(name, status, cpu, used, limit):
        return {"name": name, "status": status, "cpu_pct": cpu, "memory_used_bytes": used, "memory_limit_bytes": limit}

    components = [
        component("tactical-marl", "healthy", 91.0, 1, 4),
        component("data-handler", "healthy", 30.0, 9, 10),
        component("api-gateway", "unhealthy", 20.0, 1, 2),
        {"name": "redis", "status": "healthy"},
    ]
    assert degraded(components, 80, 85) == {
        "tactical-marl": "CPU 91% > 80%",
        "data-handler": "memory 90% > 85%",
        "api-gateway": "unhealthy",
    }
    top = top_consumers(components, 2)
    assert [c["name"] for c in top["cpu"]] == ["tactical-marl", "data-handler"]
    assert [c["name"] for c in top["memory"]] == ["data-handler", "api-gateway"]
    assert top["memory"][0]["memory_pct"] == 90.0


def test_the_performance_plan_lists_the_flush_only_when_chosen():
    scale = [{"action": "scale", "target": "tactical-marl", "before": 3, "after": 4, "max": 6}]
    plan = performance_plan(scale, ["trades", "positions"], None, 0)
    assert [c["action"] for c in plan] == ["analyze", "scale"]
    text = render_performance(plan, {"tactical-marl": "CPU 91% > 80%"})
    assert text.splitlines() == [
        "• degraded: tactical-marl (CPU 91% > 80%)",
        "• refresh planner statistics (ANALYZE): trades, positions",
        "• scale tactical-marl 3 → 4 (max 6)",
    ]
    flushed = performance_plan([], ["trades"], "grandmodel:md:", 12)
    assert flushed[-1] == {"action": "flush", "target": "grandmodel:md:", "keys": 12}
    assert render_performance(flushed, {}).splitlines() == [
        "• nothing degraded",
        "• nothing to scale (none degraded below its max)",
        "• refresh planner statistics (ANALYZE): trades",
        "• flush the cache keys starting with 'grandmodel:md:' (12 now; SCAN + UNLINK)",
    ]


def test_the_cache_match_is_the_literal_prefix():
    assert cache_match("grandmodel:md:") == "grandmodel:md:*"
    assert cache_match("a*b?:") == "a\\*b\\?:*"


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
