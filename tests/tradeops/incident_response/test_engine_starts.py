"""The escalation engine's starts of ``incident_response`` for P1 incidents.

Which incidents are owed a start is a pure function of the incident and its trail (the first tests). Then the
engine's pass against the real state database (the sandbox's PostgreSQL) and Airflow's real REST API: the
api-server's own FastAPI app (``airflow.api_fastapi.app.create_app``, simple auth manager with all-admins, a token
from ``/auth/token``) served over HTTP, on the test metadata database holding the parsed DAGs. Each test's table
holds only its own entries (a unique key or alert name), so the incidents other tests leave open are never
started; the runs it made are deleted and its incidents resolved afterwards.
"""

from __future__ import annotations

import types
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.serving import served
from tradeops.config.alerts import RunbookEntry
from tradeops.incident_response.approval import approving_entry
from tradeops.incident_response.engine_starts import ACTOR, due_start, engine_run_id, start_due
from tradeops.incident_response.starts import DAG_ID
from tradeops.incidents import store
from tradeops.incidents.models import (
    EventKind,
    Incident,
    IncidentEvent,
    IncidentSource,
    IncidentStatus,
    NewIncident,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
KEY = "check:daily_health_check:system_status"
DOWN = {"alertname": "TradingSystemDown", "severity": "critical"}


def incident(source: IncidentSource = IncidentSource.CHECK, **fields) -> Incident:
    base = Incident(
        id=7,
        dedup_key=KEY,
        source=source,
        severity="P1",
        title="system_status failed",
        summary="",
        dag_id="daily_health_check",
        run_id=None,
        task_id=None,
        status=IncidentStatus.OPEN,
        level=1,
        loop=0,
        escalation_anchor=NOW,
        opened_at=NOW - timedelta(minutes=2),
        last_seen_at=NOW,
        occurrences=1,
        acknowledged_at=None,
        acknowledged_by=None,
        resolved_at=None,
        resolved_by=None,
        last_update_at=NOW,
        silenced_until=None,
        next_action_at=None,
        slack_channel=None,
        slack_ts=None,
        war_room=None,
        details={"labels": DOWN} if source is IncidentSource.ALERT else {},
    )
    return replace(base, **fields)


def event(kind: EventKind, at: datetime, actor: str = ACTOR, **detail) -> IncidentEvent:
    return IncidentEvent(1, 7, at, kind, actor, None, detail, None, None)


def test_a_keyed_p1_is_owed_one_start_with_the_engines_run_id(config):
    due = due_start(incident(), [], config, NOW)
    assert due is not None and (due.run_id, due.entry.type, due.attempt) == ("incident_7__engine", "system_failure", 1)
    assert due.entry.key == KEY and not due.entry.act_without_approval


@pytest.mark.parametrize(
    "changed",
    [
        {"severity": "P2"},
        {"status": IncidentStatus.RESOLVED},
        {"opened_at": NOW - timedelta(hours=1, seconds=1)},  # older than an hour: in people's hands
        {"dedup_key": KEY + ":x"},  # no entry: literal
        {"dedup_key": "check:daily_health_check:"},
    ],
    ids=["P2", "resolved", "an hour old", "longer key", "prefix"],
)
def test_no_start_is_owed_outside_an_open_recent_matched_p1(config, changed):
    assert due_start(incident(**changed), [], config, NOW) is None


def test_an_acknowledged_p1_is_still_owed_its_start(config):
    assert due_start(incident(status=IncidentStatus.ACKNOWLEDGED), [], config, NOW) is not None


@pytest.mark.parametrize(
    ("events", "owed"),
    [
        ([event(EventKind.RUNBOOK_START, NOW, "Alertmanager", result="started")], False),
        ([event(EventKind.RUNBOOK_START, NOW, result="already started")], False),
        ([event(EventKind.RUNBOOK_START, NOW, "Alertmanager", result="not started: paused")], False),  # switched off
        ([event(EventKind.RUNBOOK_STEP, NOW, "jane", step="plan")], False),  # a person's run is on it
        ([event(EventKind.RUNBOOK_START, NOW - timedelta(minutes=1), "Alertmanager", result="failed")], True),
        ([event(EventKind.PAGED, NOW)], True),
    ],
    ids=["webhook started", "engine found it", "paused", "a person's run", "webhook failed", "paged only"],
)
def test_a_start_is_owed_until_one_started_found_a_run_or_found_the_dag_paused(config, events, owed):
    alert = incident(IncidentSource.ALERT, dedup_key="alert:f00d", opened_at=NOW - timedelta(minutes=5))
    assert (due_start(alert, events, config, NOW) is not None) is owed


def test_an_alerts_incident_waits_for_the_webhook_then_takes_the_webhooks_run_id(config):
    alert = incident(IncidentSource.ALERT, dedup_key="alert:f00d", opened_at=NOW - timedelta(seconds=59))
    assert due_start(alert, [], config, NOW) is None, "the webhook's own start has a minute"
    due = due_start(alert, [], config, NOW + timedelta(seconds=1))
    assert due is not None and due.run_id == "incident_7__alert" == engine_run_id(alert)
    assert due_start(replace(alert, details={"labels": {**DOWN, "severity": "Critical"}}), [], config, NOW) is None
    assert due_start(replace(alert, details={}), [], config, NOW + timedelta(minutes=1)) is None, "no labels"


def test_an_alert_incident_never_matches_a_key_entry_nor_a_check_incident_a_labels_entry(config):
    assert due_start(incident(IncidentSource.ALERT, dedup_key=KEY, details={}), [], config, NOW) is None
    assert due_start(incident(details={"labels": DOWN}, dedup_key="check:x:y"), [], config, NOW) is None


def test_failed_starts_are_retried_later_and_later_up_to_every_15_minutes(config):
    failed = [event(EventKind.RUNBOOK_START, NOW, result="failed")]
    assert due_start(incident(), failed, config, NOW + timedelta(seconds=14)) is None
    due = due_start(incident(), failed, config, NOW + timedelta(seconds=15))
    assert due is not None and due.attempt == 2
    three = failed * 3
    assert due_start(incident(), three, config, NOW + timedelta(seconds=44)) is None
    assert due_start(incident(), three, config, NOW + timedelta(seconds=45)) is not None
    many = failed * 100
    assert due_start(incident(), many, config, NOW + timedelta(minutes=14)) is None
    assert due_start(incident(), many, config, NOW + timedelta(minutes=15)) is not None
    webhook_failed = [event(EventKind.RUNBOOK_START, NOW, "Alertmanager", result="failed")]
    assert due_start(incident(), webhook_failed, config, NOW).attempt == 1, "only the engine's own tries back off"


def test_a_key_entry_allowed_to_act_approves_only_a_non_alert_incident_with_exactly_that_key(config):
    allowing = RunbookEntry(key=KEY, type="system_failure", act_without_approval=True)
    table = config.model_copy(update={"alerts": config.alerts.model_copy(update={"runbooks": [allowing]})})
    assert approving_entry(incident(), table, "system_failure") == allowing
    assert approving_entry(incident(), table, "security") is None, "only the entry's runbook"
    assert approving_entry(incident(dedup_key=KEY + " "), table, "system_failure") is None
    alert = incident(IncidentSource.ALERT, details={"labels": {"key": KEY}})
    assert approving_entry(alert, table, "system_failure") is None
    assert approving_entry(incident(), config, "system_failure") is None, "the shipped row holds the approval"


# --- the engine's pass: the real state database and Airflow's real REST API ------------------------------------------


@pytest.fixture(scope="module")
def dags_in_db(airflow_db, dagbag):
    """The DAG folder parsed into Airflow's test database, as the dag-processor writes it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dagbag, "dags-folder", None)


@pytest.fixture(scope="module")
def api_server(dags_in_db):
    """Airflow's api-server app (all admins: a token needs no credentials), served over HTTP: its URL."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app

    with served(create_app("core")) as url:
        yield url
    mp.undo()


def set_paused(paused: bool) -> None:
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == DAG_ID).update({"is_paused": paused})


@pytest.fixture
def engine(api_server, config, state_dsn, airflow_connections, monkeypatch):
    """``engine.open(...)``/``engine.run(now)``: incidents under a table of this test's own entries, and the engine's
    pass over them, with the Airflow API connection pointing at ``api_server``."""
    from urllib.parse import urlsplit

    from tradeops.incidents.service import IncidentService

    tag = uuid.uuid4().hex
    entries = [
        RunbookEntry(key=f"tests:engine:{tag}", type="system_failure"),
        RunbookEntry(match={"alertname": f"EngineTest{tag}"}, type="critical"),
    ]
    table = config.model_copy(update={"alerts": config.alerts.model_copy(update={"runbooks": entries})})
    service = IncidentService(table, state_dsn)
    parts = urlsplit(api_server)
    conn_env = f"AIRFLOW_CONN_{config.connections.airflow_api.upper()}"
    monkeypatch.setenv(
        conn_env, f'{{"conn_type": "http", "host": "{parts.hostname}", "port": {parts.port}, "schema": "http"}}'
    )
    set_paused(False)
    opened: list[Incident] = []

    def open_one(source: IncidentSource = IncidentSource.CHECK, severity: str = "P1") -> Incident:
        alert = source is IncidentSource.ALERT
        new = NewIncident(
            dedup_key=f"alert:{uuid.uuid4().hex}" if alert else f"tests:engine:{tag}",
            source=source,
            severity=severity,
            title="engine start test",
            details={"labels": {"alertname": f"EngineTest{tag}", "severity": "critical"}} if alert else {},
        )
        made = service.open(new, deliver=False).incident
        opened.append(made)
        return made

    def trail(incident_id: int) -> list[IncidentEvent]:
        return [e for e in service.timeline(incident_id) if e.kind is EventKind.RUNBOOK_START]

    yield types.SimpleNamespace(
        open=open_one,
        run=lambda now=None: start_due(service, now),
        trail=trail,
        tag=tag,
        conn_env=conn_env,
    )
    set_paused(False)
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(
            DagRun.dag_id == DAG_ID, DagRun.run_id.in_([engine_run_id(i) for i in opened])
        ).delete()
    with psycopg.connect(state_dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE id = ANY(%s) AND status <> 'resolved'",
            ([i.id for i in opened],),
        )


def run_of(run_id: str):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == DAG_ID, DagRun.run_id == run_id).one_or_none()
        return None if run is None else (run.run_type, run.state, run.triggering_user_name, dict(run.conf))


def test_a_keyed_p1_incident_gets_one_run_through_the_rest_api_and_the_trail_says_so(engine):
    opened = engine.open()
    assert engine.run() == 1
    run_type, state, user, conf = run_of(f"incident_{opened.id}__engine")
    assert (run_type, state) == ("manual", "queued")
    assert conf["incident_id"] == opened.id and conf["type"] == "system_failure" and conf["dry_run"] is False
    assert user, "the api-server's authenticated user triggered it"
    [start] = engine.trail(opened.id)
    assert start.actor == ACTOR
    assert start.detail == {
        "dag_id": DAG_ID,
        "run_id": f"incident_{opened.id}__engine",
        "type": "system_failure",
        "key": f"tests:engine:{engine.tag}",
        "act_without_approval": False,
        "attempt": 1,
        "result": "started",
    }
    assert engine.run() == 0 and len(engine.trail(opened.id)) == 1, "once per incident"


def test_no_start_for_a_p2_with_the_same_key(engine):
    opened = engine.open(severity="P2")
    assert engine.run() == 0 and engine.trail(opened.id) == []
    assert run_of(f"incident_{opened.id}__engine") is None


def test_an_alert_incident_whose_webhook_start_failed_gets_the_webhooks_run_or_finds_it(engine, state_dsn):
    opened = engine.open(IncidentSource.ALERT)
    with store.connect(state_dsn) as conn:  # what the webhook writes when its start raised
        store.event(conn, opened.id, EventKind.RUNBOOK_START, actor="Alertmanager", detail={"result": "failed"})
    assert engine.run(opened.opened_at + timedelta(seconds=30)) == 0, "the webhook's minute"
    assert engine.run(opened.opened_at + timedelta(seconds=61)) == 1
    assert run_of(f"incident_{opened.id}__alert")[3]["type"] == "critical"
    assert [e.detail["result"] for e in engine.trail(opened.id)] == ["failed", "started"]

    other = engine.open(IncidentSource.ALERT)  # the webhook's run exists, but its event never got written
    from tradeops.reporting.hooks import AirflowApiHook

    form = {"incident_id": other.id, "type": "critical", "dry_run": True, "reason": "the webhook's start"}
    assert AirflowApiHook("tradeops_airflow_api").trigger_run(DAG_ID, f"incident_{other.id}__alert", form, "w")
    assert engine.run(other.opened_at + timedelta(seconds=61)) == 0
    [found] = engine.trail(other.id)
    assert (found.actor, found.detail["result"]) == (ACTOR, "already started")
    assert run_of(f"incident_{other.id}__alert")[3]["dry_run"] is True, "the existing run untouched"


def test_a_paused_dag_starts_nothing_and_is_not_retried(engine):
    set_paused(True)
    opened = engine.open()
    assert engine.run() == 0
    assert [e.detail["result"] for e in engine.trail(opened.id)] == ["not started: paused"]
    assert run_of(f"incident_{opened.id}__engine") is None
    set_paused(False)
    assert engine.run() == 0 and len(engine.trail(opened.id)) == 1, "pausing switched it off for this incident"


def test_an_unreachable_api_server_is_recorded_and_retried_with_backoff_never_raised(engine, monkeypatch):
    from sandbox.launcher import free_port

    monkeypatch.setenv(engine.conn_env, f'{{"conn_type": "http", "host": "127.0.0.1", "port": {free_port()}}}')
    opened = engine.open()
    now = datetime.now(UTC)
    assert engine.run(now) == 0
    [failed] = engine.trail(opened.id)
    assert failed.detail["result"] == "failed" and failed.detail["retry_in_s"] == 15
    assert "ConnectionError" in failed.detail["error"]
    assert engine.run(now + timedelta(seconds=5)) == 0 and len(engine.trail(opened.id)) == 1, "backing off"
    monkeypatch.delenv(engine.conn_env)  # no connection at all: recorded the same way
    assert engine.run(failed.at + timedelta(seconds=16)) == 0
    second = engine.trail(opened.id)[-1]
    assert (second.detail["result"], second.detail["attempt"], second.detail["retry_in_s"]) == ("failed", 2, 30)
    assert "tradeops_airflow_api" in second.detail["error"]
    assert run_of(f"incident_{opened.id}__engine") is None
