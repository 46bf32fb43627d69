"""The incident DAGs people trigger from the Airflow UI, one per action: each form accepts exactly the valid inputs
(checked as the trigger checks them, before a run exists) and asks only for what its action needs; each action
lands in the incident's audit trail as the user who triggered the run (``dag.test()`` triggers as ``dag_test``)."""

from __future__ import annotations

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

from tests.forms import validate_form
from tradeops.incidents import store
from tradeops.incidents.models import NewIncident

TRIGGERED_BY = "dag_test"  # the triggering user Airflow records for a dag.test() run


@pytest.fixture
def dag_of(dagbag, airflow_db, airflow_connections):
    def runnable(dag_id: str):
        dag = copy.deepcopy(dagbag.get_dag(dag_id))
        for task in dag.tasks:
            task.retries = 0
        return dag

    return runnable


ROLLBACK = {"reason": "bad fills since 1.8.2", "confirm": True}  # the rest of a valid emergency_rollback form
INVALID = [
    ("incident_acknowledge", {}, "incident_id"),  # required: no dummy values for fields the action ignores
    ("incident_acknowledge", {"incident_id": 0}, "less than the minimum"),
    ("incident_acknowledge", {"incident_id": "12; DROP"}, "is not of type 'integer'"),
    ("incident_resolve", {"incident_id": None}, "None is not of type 'integer'"),
    ("incident_resolve", {"incident_id": 3, "note": "x" * 501}, "is too long"),
    ("incident_silence", {"reason": "planned work"}, "target"),
    ("incident_silence", {"target": "", "reason": "planned work"}, "does not match"),  # would match everything
    ("incident_silence", {"target": "check:*; DROP", "reason": "planned work"}, "does not match"),
    ("incident_silence", {"target": "#0", "reason": "planned work"}, "does not match"),
    ("incident_silence", {"target": "#12\n", "reason": "planned work"}, "should not be valid"),  # Python's `$`
    ("incident_silence", {"target": "#12"}, "reason"),
    ("incident_silence", {"target": "#12", "reason": "   "}, "does not match"),
    ("incident_silence", {"target": "#12", "reason": "maintenance", "minutes": 24 * 60 + 1}, "maximum"),
    ("incident_silence", {"target": "#12", "reason": "maintenance", "include_p1_and_security": "yes"}, "boolean"),
    ("incident_end_silence", {}, "silence_id"),
    ("incident_open", {}, "title"),
    ("incident_open", {"title": "   "}, "does not match"),
    ("incident_open", {"title": "Fills delayed", "severity": "P0"}, "P0"),
    ("weekly_maintenance", {"break_glass_reason": "   "}, "does not match"),
    ("db_restore", {"target_database": "grandmodel"}, "does not match"),  # the live database
    ("db_restore", {"target_database": "restored_x", "backup_id": "../etc"}, "does not match"),
    ("db_restore", {"target_database": "restored_x\n"}, "should not be valid"),
    ("db_restore", {"target_database": "restored_x", "backup_id": "latest\n"}, "should not be valid"),
    *[
        ("emergency_rollback", {"target": bad, **ROLLBACK}, "does not match|is too long")
        for bad in ("1.2.3; rm -rf /", "$(id)", "../../x", "latest", "1" * 10_000, "")
    ],
    ("emergency_rollback", {"target": "1.8.1\n", **ROLLBACK}, "should not be valid"),  # Python's `$`
    ("emergency_rollback", {"target": "previous\n", **ROLLBACK}, "should not be valid"),
    ("emergency_rollback", {"target": "1.8.1", "deployments": ["risk-engine"], **ROLLBACK}, "is not one of"),
    ("emergency_rollback", {"target": "1.8.1", "confirm": True}, "reason"),
    ("emergency_rollback", {"target": "1.8.1", "reason": "   ", "confirm": True}, "does not match"),
    ("emergency_rollback", {"target": "1.8.1", "reason": "bad fills", "confirm": False}, "is not one of"),
    ("emergency_rollback", {"target": "1.8.1", "reason": "bad fills"}, "confirm"),
    *[
        ("blue_green_deploy", {"version": bad, "services": ["auth-service"], "reason": "ship it"}, "param version")
        for bad in ("latest", "1.2.3; rm -rf /", "$(id)", "../../x", "9" * 10_000, "1.2.3\n", "")
    ],
    ("blue_green_deploy", {"version": "1.2.3", "services": ["auth-service; id"], "reason": "ship"}, "is not one of"),
    ("blue_green_deploy", {"version": "1.2.3", "services": [], "reason": "ship it"}, "param services"),
    ("blue_green_deploy", {"version": "1.2.3", "services": ["auth-service"]}, "reason"),
    ("blue_green_deploy", {"version": "1.2.3", "services": ["auth-service"], "reason": "   "}, "does not match"),
]


@pytest.mark.parametrize(
    ("dag_id", "conf", "complaint"), INVALID, ids=[f"{d}-{i}" for i, (d, _, _) in enumerate(INVALID)]
)
def test_each_form_refuses_invalid_input_at_trigger_time(dagbag, airflow_db, dag_id, conf, complaint):
    with pytest.raises(ParamValidationError, match=complaint):
        validate_form(dagbag.get_dag(dag_id), conf)


@pytest.mark.parametrize(
    ("dag_id", "conf"),
    [
        ("incident_acknowledge", {"incident_id": 12}),
        ("incident_resolve", {"incident_id": 12, "note": "restarted the feed handler"}),
        ("incident_silence", {"target": "#12", "reason": "vendor maintenance"}),
        ("incident_silence", {"target": "check:daily_health_check:", "reason": "planned work", "minutes": 1440}),
        ("incident_silence", {"target": "_", "reason": "literal", "include_p1_and_security": True}),
        ("incident_end_silence", {"silence_id": 4}),
        ("incident_open", {"title": "Fills look delayed", "severity": "security"}),
        ("weekly_maintenance", {}),
        ("weekly_maintenance", {"break_glass_reason": "CVE hotfix approved by the CTO"}),
        ("db_restore", {"target_database": "restored_monday"}),
        ("emergency_rollback", {"target": "1.8.1", **ROLLBACK}),
        ("emergency_rollback", {"target": "previous", "deployments": ["api-gateway"], "dry_run": True, **ROLLBACK}),
    ],
)
def test_each_form_accepts_the_valid_inputs_and_asks_nothing_more(dagbag, airflow_db, dag_id, conf):
    validate_form(dagbag.get_dag(dag_id), conf)


@pytest.fixture
def incident(incidents, key):
    """An open P3 incident of this test's own."""
    return incidents.open(NewIncident(dedup_key=key, source="manual", severity="P3", title="form test")).incident


def test_resolve_is_recorded_as_the_triggering_user_with_the_note(dag_of, incidents, incident):
    run = dag_of("incident_resolve").test(run_conf={"incident_id": incident.id, "note": "restarted the feed handler"})
    assert run.state == "success"
    row = incidents.get(incident.id)
    resolved = [e for e in incidents.timeline(incident.id) if e.kind == "resolved"]
    assert row.status == "resolved" and row.resolved_by == TRIGGERED_BY
    assert resolved[0].actor == TRIGGERED_BY and resolved[0].detail == {"note": "restarted the feed handler"}


def test_a_conf_key_the_form_does_not_have_cannot_replace_the_identity(dag_of, incidents, incident):
    run = dag_of("incident_acknowledge").test(run_conf={"incident_id": incident.id, "actor": "the-ceo"})
    assert run.state == "success"
    assert incidents.get(incident.id).acknowledged_by == TRIGGERED_BY


def test_acting_on_a_resolved_incident_fails_with_the_reason(dag_of, incidents, incident):
    incidents.resolve(incident.id, "bob")
    run = dag_of("incident_acknowledge").test(run_conf={"incident_id": incident.id})
    assert run.state == "failed"
    assert incidents.get(incident.id).status == "resolved", "nothing changed"


def test_silence_from_the_form_previews_then_mutes_and_can_be_ended(dag_of, incidents, incident):
    preview = dag_of("incident_silence").test(
        run_conf={"target": f"#{incident.id}", "reason": "look first", "preview_only": True}
    )
    assert preview.state == "success"
    assert incidents.get(incident.id).silenced_until is None, "a preview silences nothing"

    # preview_only given again: in one process, dag.test() carries a run's conf into the next run's param defaults
    run = dag_of("incident_silence").test(
        run_conf={"target": f"#{incident.id}", "reason": "vendor maintenance", "minutes": 30, "preview_only": False}
    )
    assert run.state == "success"
    with store.connect(incidents.dsn) as conn:
        silence = conn.execute(
            "SELECT * FROM tradeops.silences WHERE matcher = %s ORDER BY id DESC", (incident.dedup_key,)
        ).fetchone()
    assert silence["author"] == TRIGGERED_BY and silence["reason"] == "vendor maintenance"
    assert not silence["covers_critical"]
    assert incidents.get(incident.id).silenced_until == silence["ends_at"]

    ended = dag_of("incident_end_silence").test(run_conf={"silence_id": silence["id"]})
    assert ended.state == "success"
    assert incidents.get(incident.id).silenced_until is None


def test_open_from_the_form_pages_level_one_as_the_triggering_user(dag_of, incidents, messages_of):
    run = dag_of("incident_open").test(
        run_conf={"severity": "P2", "title": "Fills look delayed", "summary": "desk reports 2 s fill latency"}
    )
    assert run.state == "success"
    with store.connect(incidents.dsn) as conn:
        row = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE dedup_key = %s", (f"manual:{run.run_id}",)
        ).fetchone()
    assert row["source"] == "manual" and row["summary"] == "desk reports 2 s fill latency"
    opened = [e for e in incidents.timeline(row["id"]) if e.kind == "opened"]
    assert opened[0].actor == TRIGGERED_BY
    assert len(messages_of(row["id"], "#trading-alerts")) == 1
