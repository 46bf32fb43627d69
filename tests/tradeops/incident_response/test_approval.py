"""The ``approve`` step of ``incident_response``: an incident from an alert whose ``alerts.runbooks`` entry says
``act_without_approval`` is approved at once (the operator returns the ApprovalOperator's approved outcome, the trail
says so); anything else (a person's incident, an alert whose entry holds the approval, labels matching no entry)
waits for a person. Decided from the incident in TradeOps' database (the demo config lets RiskLimitBreach act), and
shown with ``dag.test()``: a non-dry run on such an incident stops trading, closes and isolates with nobody
answering (checked with the real kubectl and the platform's database; put back after)."""

from __future__ import annotations

import types
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import requests

from devstack.stack import DEMO_CONFIG
from tests.dagtest import runnable, states
from tradeops.config import load_config
from tradeops.incident_response.approval import AlertApprovalOperator, approving_entry
from tradeops.incidents.models import IncidentSource, NewIncident

BREACH = {"alertname": "RiskLimitBreach", "severity": "critical"}  # the demo's entry that acts without approval


@pytest.fixture
def demo(monkeypatch):
    """The demo config for the operators, as the dev stack runs them."""
    monkeypatch.setenv("TRADEOPS_CONFIG", str(DEMO_CONFIG))
    return load_config(DEMO_CONFIG)


@pytest.fixture
def alert_incident(demo, state_dsn, airflow_connections):
    """``alert_incident(labels, source=alert)``: an incident as the webhook opens it (resolved after the test)."""
    from tradeops.incidents.service import IncidentService

    service, prefix = IncidentService(demo, state_dsn), f"tests:approval:{uuid.uuid4().hex}:"

    def make(labels: dict, source: IncidentSource = IncidentSource.ALERT):
        new = NewIncident(
            dedup_key=prefix + uuid.uuid4().hex,
            source=source,
            severity="P1",
            title=f"{labels['alertname']}: tests",
            details={"labels": labels},
            actor="Alertmanager",
        )
        return service.open(new).incident

    yield make
    with psycopg.connect(state_dsn) as conn:
        conn.execute(
            "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), resolved_by = 'tests (cleanup)' "
            "WHERE status <> 'resolved' AND (starts_with(dedup_key, %s) OR dedup_key = 'runbook:incident_response')",
            (prefix,),
        )


def test_only_an_alert_incident_whose_entry_allows_it_acts_without_approval(alert_incident, demo, config):
    allowed = alert_incident(BREACH)
    assert approving_entry(allowed, demo, "critical").match == BREACH
    assert approving_entry(allowed, demo, "system_failure").match == BREACH, "the same runbook"
    for other in ("security", "performance"):
        assert approving_entry(allowed, demo, other) is None, f"a {other} run typed in the form asks a person"
    assert approving_entry(allowed, config, "critical") is None, "production holds every runbook for an approval"
    held = alert_incident({"alertname": "TradingSystemDown", "severity": "critical"})
    assert approving_entry(held, demo, "system_failure") is None, "its entry holds the approval"
    literal = alert_incident({**BREACH, "severity": "Critical"})
    assert approving_entry(literal, demo, "critical") is None, "no entry: literal"
    typed = alert_incident(BREACH, source=IncidentSource.MANUAL)
    assert approving_entry(typed, demo, "critical") is None, "labels a person wrote on their own incident allow nothing"


def test_the_operator_approves_at_once_and_writes_it_on_the_trail(alert_incident, demo, airflow_connections):
    from tradeops.incidents.service import IncidentService

    opened = alert_incident(BREACH)
    ti = types.SimpleNamespace(dag_id="incident_response", run_id="incident_1__alert", task_id="approve")
    run = types.SimpleNamespace(triggering_user_name="Alertmanager", run_after=datetime.now(UTC), run_type="manual")
    operator = AlertApprovalOperator(task_id="approve", incident_id=opened.id, subject="stop?", defaults=["Reject"])

    outcome = operator.execute({"ti": ti, "dag_run": run, "params": {"type": "critical"}})  # type: ignore[arg-type]
    assert outcome["chosen_options"] == ["Approve"] and outcome["params_input"] == {}
    assert outcome["responded_by_user"] is None and outcome["responded_at"] <= datetime.now(UTC)
    [step] = [e for e in IncidentService(demo).timeline(opened.id) if e.kind == "runbook_step"]
    assert (step.actor, step.detail["step"], step.detail["approved"]) == ("Alertmanager", "approval", True)
    assert step.detail["match"] == BREACH and step.detail["run_id"] == "incident_1__alert"
    assert step.detail["summary"].startswith("approved without a person")


def test_a_run_on_an_incident_allowed_to_act_goes_ahead_with_nobody_answering(
    dagbag, airflow_db, airflow_connections, alert_incident, demo, sandbox, sandbox_settings, cluster, book, tmp_path,
    monkeypatch,
):  # fmt: skip
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    opened = alert_incident(BREACH)
    form = {"incident_id": opened.id, "type": "critical", "dry_run": False, "reason": "alert RiskLimitBreach (test)"}

    run = runnable(dagbag, "incident_response").test(run_conf=form)

    ended = states(run)
    assert run.state == "success", ended
    assert {ended[t] for t in ("approve", "lock", "stop_trading", "close_positions", "isolate_gateway")} == {"success"}
    after = cluster.snapshot()
    assert set(after["replicas"].values()) == {0} and after["gateway"] == "ClusterIP", "kubectl: stopped, isolated"
    assert book.read() == {}, "the platform's book is flat"
    from tradeops.incidents.service import IncidentService

    trail = [e.detail for e in IncidentService(demo).timeline(opened.id) if e.kind == "runbook_step"]
    names = [step["step"] for step in trail]
    assert names.index("plan") < names.index("approval") < names.index("stop_trading")
    assert trail[names.index("approval")]["approved"] is True
