"""Automatic starts of ``incident_response`` from Alertmanager's webhook (the TradeOps app through FastAPI's
TestClient, TradeOps' state in the sandbox's PostgreSQL, Airflow's test database holding the parsed DAGs): a firing
alert that opens a new incident and matches ``alerts.runbooks`` creates exactly one run ``incident_<id>__alert``
(however many times it is delivered), with its form validated and Alertmanager as the triggering user, and says so
on the incident's trail; an unmatched alert starts nothing; a paused DAG and a refused form start nothing either,
and the incident is there all the same."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import yaml

from tests.conftest import REPO
from tradeops.incident_response.starts import DAG_ID, run_id_for
from tradeops.incidents import store


@pytest.fixture(scope="module")
def dags_in_db(airflow_db, dagbag):
    """The DAG folder parsed into Airflow's test database, as the dag-processor writes it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dagbag, "dags-folder", None)


@pytest.fixture
def webhook(dags_in_db, airflow_connections, sandbox_settings, state_dsn):
    """``post(labels, starts_at=...)``: one firing alert delivered to the app's webhook; returns its results. The
    runs and incidents the test made are removed and resolved afterwards."""
    from fastapi.testclient import TestClient

    from tradeops.incidents.app import create_app

    client = TestClient(create_app())
    token = sandbox_settings["secrets"]["alertmanager_webhook_token"]
    fingerprint = uuid.uuid4().hex[:16]
    key = f"alert:{fingerprint}"

    def post(labels: dict, starts_at: datetime | None = None) -> list[dict]:
        alert = {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": "it is down"},
            "startsAt": (starts_at or STARTS).isoformat(),
            "fingerprint": fingerprint,
        }
        body = {"version": "4", "groupKey": "{}:test", "status": "firing", "alerts": [alert]}
        answer = client.post("/alertmanager/webhook", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]

    yield post
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with psycopg.connect(state_dsn) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM tradeops.incidents WHERE dedup_key = %s", (key,))]
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE id = ANY(%s)",
            (ids,),
        )
    runs = [run_id_for(incident_id) for incident_id in ids]
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.run_id.in_(runs)).delete()


STARTS = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
DOWN = {"alertname": "TradingSystemDown", "severity": "critical"}  # the shipped table: system_failure, approval held


def runs_of(incident_id: int) -> list:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == DAG_ID).all()
        return [
            (r.run_id, r.run_type, r.state, r.triggering_user_name, dict(r.conf))
            for r in runs
            if (r.conf or {}).get("incident_id") == incident_id
        ]


def starts_of(state_dsn: str, incident_id: int) -> list[tuple[str, dict]]:
    with store.connect(state_dsn) as conn:
        return [(e.actor, e.detail) for e in store.timeline(conn, incident_id) if e.kind == "runbook_start"]


def test_a_matching_alert_delivered_three_times_starts_one_run_triggered_by_alertmanager(webhook, state_dsn):
    labels = {**DOWN, "test": uuid.uuid4().hex}
    [first] = webhook(labels)
    [again] = webhook(labels)  # a redelivery
    [later] = webhook(labels, starts_at=STARTS + timedelta(minutes=5))  # fires again: one more occurrence
    incident_id = first["incident"]

    run_id = f"incident_{incident_id}__alert"
    assert first["result"] == "opened" and first["runbook"]["result"] == "started"
    assert first["runbook"]["run_id"] == run_id == run_id_for(incident_id)
    assert (again["result"], later["result"]) == ("already known", "occurred again")
    assert "runbook" not in again and "runbook" not in later
    form = {
        "incident_id": incident_id,
        "type": "system_failure",
        "dry_run": False,
        "reason": "alert TradingSystemDown (automatic start)",
    }
    assert runs_of(incident_id) == [(run_id, "manual", "queued", "Alertmanager", form)]
    assert starts_of(state_dsn, incident_id) == [
        (
            "Alertmanager",
            {
                "dag_id": DAG_ID,
                "run_id": run_id,
                "type": "system_failure",
                "alertname": "TradingSystemDown",
                "act_without_approval": False,
                "result": "started",
            },
        )
    ]


def test_a_second_start_of_the_same_incident_is_already_started_not_an_error(webhook, state_dsn, config):
    from tradeops.incident_response.starts import start
    from tradeops.incidents.service import IncidentService

    [first] = webhook({**DOWN, "test": uuid.uuid4().hex})
    entry = config.alerts.runbook_for(DOWN)
    again = start(IncidentService(config, state_dsn), first["incident"], entry, "TradingSystemDown")
    assert again["result"] == "already started"
    assert len(runs_of(first["incident"])) == 1
    assert [d["result"] for _, d in starts_of(state_dsn, first["incident"])] == ["started", "already started"]


def test_an_alert_matching_no_entry_starts_nothing(webhook, state_dsn):
    [warning] = webhook({"alertname": "TradingSystemDown", "severity": "warning", "test": uuid.uuid4().hex})
    assert warning["result"] == "opened" and "runbook" not in warning
    assert runs_of(warning["incident"]) == [] and starts_of(state_dsn, warning["incident"]) == []


def test_a_paused_dag_starts_nothing_and_the_trail_says_so(webhook, state_dsn):
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    def pause(paused: bool) -> None:
        with create_session() as session:
            session.query(DagModel).filter(DagModel.dag_id == DAG_ID).update({DagModel.is_paused: paused})

    with create_session() as session:
        assert DagModel.get_current(DAG_ID, session=session).is_paused is False, "unpaused when first seen"
    pause(True)
    try:
        [paused] = webhook({**DOWN, "test": uuid.uuid4().hex})
    finally:
        pause(False)
    assert paused["result"] == "opened" and paused["runbook"]["result"] == "not started: paused"
    assert runs_of(paused["incident"]) == []
    assert [d["result"] for _, d in starts_of(state_dsn, paused["incident"])] == ["not started: paused"]


def test_a_start_refused_by_the_form_keeps_the_incident_and_puts_the_error_on_its_trail(
    webhook, state_dsn, tmp_path, monkeypatch
):
    long_name = "Down" * 130  # the form's reason holds 500 characters at most
    table = {"runbooks": [{"match": {"alertname": long_name}, "type": "critical"}]}
    config = tmp_path / "tradeops.yaml"
    config.write_text(yaml.safe_dump({"extends": str(REPO / "include" / "config" / "tradeops.yaml"), "alerts": table}))
    monkeypatch.setenv("TRADEOPS_CONFIG", str(config))

    [refused] = webhook({"alertname": long_name, "severity": "critical", "test": uuid.uuid4().hex})
    assert refused["result"] == "opened" and refused["runbook"]["result"] == "failed"
    assert "reason" in refused["runbook"]["error"] and "ParamValidationError" in refused["runbook"]["error"]
    with store.connect(state_dsn) as conn:
        assert store.get(conn, refused["incident"]).status == "open", "the incident is recorded all the same"
    assert runs_of(refused["incident"]) == []
    assert [d["result"] for _, d in starts_of(state_dsn, refused["incident"])] == ["failed"]
