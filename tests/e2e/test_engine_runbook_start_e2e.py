"""The escalation engine starts the runbook of a P1 incident under the real stack: a P1 incident with the demo
config's drill key (``drill:engine_runbook_start``; the production table has ``check:daily_health_check:system_status``
there, a check the other end-to-end tests fail on purpose), opened through ``IncidentService.open`` on the stack's
state database, is matched by the table's ``key`` entry, and the engine, in the
triggerer, creates ``incident_response`` run ``incident_<id>__engine`` through the api-server's REST API: not a dry
run, the system_failure runbook, its diagnostics and plan done and its destructive steps waiting at ``approve``;
the engine's ``runbook_start`` entry is on the trail. Rejected through the REST API, as a person would: nothing
destructive runs. (How soon the run starts is printed, for the benchmark; no test asserts a time.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from devstack.client import parse
from devstack.drill import Drill
from devstack.hitl import answer
from sandbox.connections import connections_in_environment
from tests.waiting import wait_for
from tradeops.incidents.models import IncidentSource, NewIncident
from tradeops.incidents.service import IncidentService

pytestmark = pytest.mark.e2e
DAG_ID = "incident_response"
KEY = "drill:engine_runbook_start"
DESTRUCTIVE = ("lock", "stop_trading", "close_positions", "isolate_gateway")


@pytest.fixture
def incidents(stack) -> Iterator[IncidentService]:
    """The stack's incidents; no incident of this key left open, before or after (they would page on)."""
    Drill(stack).wait_for_engine()
    with connections_in_environment(stack.settings, stack.config):
        service = IncidentService(stack.config, stack.settings["postgres"]["state_dsn"])
        for incident in service.active_by_key([KEY]).values():
            service.resolve(incident.id, "tests (a clean start)")
        yield service
        for incident in service.active_by_key([KEY]).values():
            service.resolve(incident.id, "tests (cleanup)")


def test_the_engine_starts_the_system_failure_runbook_of_a_keyed_p1_and_its_approval_waits(stack, incidents):
    assert not stack.client.dag(DAG_ID)["is_paused"], "incident_response is unpaused from its creation"
    opened_at = datetime.now(UTC)
    incident = incidents.open(
        NewIncident(
            dedup_key=KEY,
            source=IncidentSource.MANUAL,
            severity="P1",
            title="drill: the engine starts the system failure runbook",
            summary="tests: the engine's runbook start",
        )
    ).incident
    run_id = f"incident_{incident.id}__engine"
    url = f"{stack.client.url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id)}"
    try:

        def the_run():
            try:
                return stack.client.dag_run(DAG_ID, run_id)
            except RuntimeError:
                return None

        run = wait_for(the_run, timeout=90, every=0.2, what="the engine's run")
        print(f"the engine's run created {(parse(run['queued_at']) - opened_at).total_seconds():.1f} s after opening")
        assert run["conf"] == {
            "incident_id": incident.id,
            "type": "system_failure",
            "dry_run": False,
            "reason": f"P1 incident #{incident.id} (automatic start by the escalation engine)",
        }
        starts = [e for e in incidents.timeline(incident.id) if e.kind == "runbook_start"]
        assert [(e.actor, e.detail["result"], e.detail["key"]) for e in starts] == [
            ("escalation engine", "started", KEY)
        ]

        def waiting_at_approve():
            states = stack.client.task_states(DAG_ID, run_id)
            return states if states.get("approve") == "awaiting_input" else None

        states = wait_for(waiting_at_approve, timeout=240, every=0.2, what="approve waiting")
        assert states["collect_diagnostics"] == "success" and states["plan"] == "success"
        assert not any(states.get(task) == "success" for task in DESTRUCTIVE), states

        answer(stack, DAG_ID, run_id, "approve", ["Reject"])
        ended = stack.client.wait_for_run(DAG_ID, run_id, timeout=180)
        after = stack.client.task_states(DAG_ID, run_id)
        assert all(after[task] == "skipped" for task in DESTRUCTIVE), (ended["state"], after)
        assert len([e for e in incidents.timeline(incident.id) if e.kind == "runbook_start"]) == 1, "once"
    finally:  # a run left waiting at approve would hold through later modules
        run = the_run()
        if run is not None and run["state"] not in ("success", "failed"):
            stack.client.session.patch(url, json={"state": "failed"}, timeout=30).raise_for_status()
