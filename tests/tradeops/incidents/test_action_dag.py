"""The ``incident_action`` DAG, the Airflow UI's way to act on incidents: its form refuses bad input before anything
runs, and each action lands in the incident's audit trail with who did it (run in-process by ``dag.test()``)."""

from __future__ import annotations

import copy

import pytest

from tradeops.incidents import store
from tradeops.incidents.models import NewIncident


@pytest.fixture
def action_dag(dagbag, airflow_db, airflow_connections):
    dag = copy.deepcopy(dagbag.get_dag("incident_action"))
    for task in dag.tasks:
        task.retries = 0
    return dag


def validate(dag, conf: dict) -> dict:
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


@pytest.mark.parametrize(
    "conf, complaint",
    [
        ({"action": "delete", "actor": "alice"}, "delete"),
        ({"action": "resolve"}, "actor"),
        ({"action": "resolve", "actor": "a"}, "too short"),
        ({"action": "resolve", "actor": "alice", "incident_id": 0}, "less than the minimum"),
        ({"action": "silence", "actor": "alice", "matcher": "check:*; DROP"}, "does not match"),
        ({"action": "silence", "actor": "alice", "silence_minutes": 60 * 24 * 8}, "maximum"),
        ({"action": "open", "actor": "alice", "severity": "P0"}, "P0"),
    ],
)
def test_the_form_refuses_bad_input_before_anything_runs(action_dag, conf, complaint):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match=complaint):
        validate(action_dag, conf)


@pytest.fixture
def incident(incidents, key):
    """An open P3 incident of this test's own."""
    return incidents.open(NewIncident(dedup_key=key, source="manual", severity="P3", title="form test")).incident


def test_a_valid_form(action_dag):
    assert validate(action_dag, {"action": "resolve", "actor": "alice", "incident_id": 12})["incident_id"] == 12


def test_resolve_from_the_form(action_dag, incidents, incident):
    conf = {"action": "resolve", "incident_id": incident.id, "actor": "alice", "reason": "restarted the feed handler"}
    run = action_dag.test(run_conf=conf)
    assert run.state == "success"
    row = incidents.get(incident.id)
    resolved = [e for e in incidents.timeline(incident.id) if e.kind == "resolved"]
    assert row.status == "resolved" and row.resolved_by == "alice"
    assert resolved[0].actor == "alice" and resolved[0].detail == {"note": "restarted the feed handler"}


def test_acting_on_a_resolved_incident_fails_with_the_reason(action_dag, incidents, incident):
    incidents.resolve(incident.id, "bob")
    run = action_dag.test(run_conf={"action": "acknowledge", "incident_id": incident.id, "actor": "alice"})
    assert run.state == "failed"
    [ti] = run.get_task_instances()
    assert ti.state == "failed"
    assert incidents.get(incident.id).status == "resolved", "nothing changed"


def test_silence_from_the_form_mutes_the_incident(action_dag, incidents, incident):
    run = action_dag.test(
        run_conf={
            "action": "silence",
            "incident_id": incident.id,
            "actor": "alice",
            "reason": "vendor maintenance",
            "silence_minutes": 30,
        }
    )
    assert run.state == "success"
    row = incidents.get(incident.id)
    with store.connect(incidents.dsn) as conn:
        silence = conn.execute("SELECT * FROM tradeops.silences WHERE matcher = %s", (incident.dedup_key,)).fetchone()
    assert silence["author"] == "alice" and silence["reason"] == "vendor maintenance"
    assert row.silenced_until == silence["ends_at"]


def test_open_from_the_form_pages_level_one(action_dag, incidents, messages_of):
    run = action_dag.test(
        run_conf={
            "action": "open",
            "actor": "alice",
            "severity": "P2",
            "title": "Fills look delayed",
            "reason": "desk reports 2 s fill latency",
        }
    )
    assert run.state == "success"
    with store.connect(incidents.dsn) as conn:
        row = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key = %s", (f"manual:{run.run_id}",)
        ).fetchone()
    assert row["source"] == "manual" and row["summary"] == "Opened by alice: desk reports 2 s fill latency"
    assert len(messages_of(row["id"], "#trading-alerts")) == 1
