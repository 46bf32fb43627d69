"""The whole chain of issue 17 under the real scheduler, triggerer and api-server, against the stack's sandbox: a
critical alert posted to the sandbox's Alertmanager (each notification delivered twice, as its retries do) → its
webhook on the api-server → one P1 incident → ``incident_response`` started once with that incident id →
diagnostics collected and checksummed, the war room opened, the destructive steps waiting for a person → approved
through the REST API → trading stopped and the positions closed (the real kubectl and the platform's database
agree) → the alert resolves → the incident resolves → its report is in the reports folder and its timeline is the
audit trail. A security alert posted meanwhile gets its own run at once (evidence kept, security paged) while the
first waits for its approval; it is rejected and contains nothing. (How soon the page and the first task come is
printed for the benchmark; no test asserts a time.)"""

from __future__ import annotations

import re
import time
import types
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from devstack.hitl import answer, parked
from tests.waiting import wait_for
from tradeops.config import load_config
from tradeops.reporting.files import sha256_of
from tradeops.rollback.forms import platform_namespace, trading_services

pytestmark = pytest.mark.e2e
DAG = "incident_response"
CONFIG = load_config()
TRADING = trading_services(CONFIG, namespace=platform_namespace(CONFIG))
GATEWAY = "api-gateway"
ACTIONS = ("stop_trading", "close_positions", "isolate_gateway")  # the critical runbook's changes, in order
ALERT = "TradingSystemDown"  # the demo config's table: system_failure, approval held


@pytest.fixture
def platform(stack, kubectl_for, alertmanager):
    """The real kubectl on the stack's sandbox, the platform's positions, the alert receiver repeating each
    notification (``alertmanager``: the alerts ended and no incident left paging afterwards); afterwards the trading
    services, the gateway and the book put back."""
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    platform_dsn = stack.settings["postgres"]["platform_dsn"]
    replicas = {name: kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in TRADING}
    gateway_type = kubectl.json("get", "service", GATEWAY)["spec"]["type"]
    with psycopg.connect(platform_dsn) as conn:
        book = conn.execute("SELECT symbol, qty FROM positions").fetchall()
    stack.client.wait_for_dags({DAG})

    def positions() -> dict[str, float]:
        with psycopg.connect(platform_dsn) as conn:
            return {s: float(q) for s, q in conn.execute("SELECT symbol, qty FROM positions WHERE qty <> 0")}

    yield types.SimpleNamespace(kubectl=kubectl, posted=alertmanager.posted, positions=positions)
    for name, count in replicas.items():
        kubectl.ok("scale", f"deployment/{name}", f"--replicas={count}")
        kubectl("annotate", f"deployment/{name}", "tradeops.io/replicas-before-scale-")
    kubectl.ok("patch", "service", GATEWAY, "--type=merge", "-p", f'{{"spec":{{"type":"{gateway_type}"}}}}')
    with psycopg.connect(platform_dsn) as conn:
        for symbol, qty in book:
            conn.execute("UPDATE positions SET qty = %s WHERE symbol = %s", (qty, symbol))


def incident_with(stack, label: str) -> dict | None:
    with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE details->'labels'->>'e2e' = %s", (label,)
        ).fetchone()


def started_task(stack, run_id: str, task_id: str) -> dict | None:
    """The task instance once it has started; None while its run or it does not exist yet."""
    try:
        ti = stack.client.task_instance(DAG, run_id, task_id)
    except RuntimeError:  # the run does not exist yet
        return None
    return ti if ti.get("start_date") else None


def runs_for(stack, incident_id: int) -> list[dict]:
    return [r for r in stack.client.dag_runs(DAG) if (r.get("conf") or {}).get("incident_id") == incident_id]


def test_a_critical_alert_runs_its_runbook_through_a_rest_approval_to_a_resolved_incident_and_its_report(
    stack, platform
):
    kubectl, label = platform.kubectl, uuid.uuid4().hex[:8]

    def replicas() -> dict[str, int]:
        return {name: kubectl.json("get", "deployment", name)["spec"]["replicas"] for name in TRADING}

    before = replicas()
    assert any(before.values()) and platform.positions(), "trading runs and the book has positions to close"
    alert = {
        "labels": {"alertname": ALERT, "severity": "critical", "service": "execution-engine", "e2e": label},
        "annotations": {"summary": "execution engine not answering"},
    }
    platform.posted.append(alert)
    posted = time.monotonic()
    alertmanager = stack.settings["alertmanager"]["url"]
    requests.post(alertmanager + "/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    incident = wait_for(lambda: incident_with(stack, label))
    assert (incident["severity"], incident["source"]) == ("P1", "alert")
    page = wait_for(
        lambda: [m for m in stack.sandbox.slack_messages("#trading-alerts") if f"#{incident['id']} " in m["text"]]
    )
    paged = time.monotonic() - posted
    run_id = f"incident_{incident['id']}__alert"
    first = wait_for(lambda: started_task(stack, run_id, "check_incident"))
    since_opened = (datetime.fromisoformat(first["start_date"]) - incident["opened_at"]).total_seconds()
    print(f"paged {paged:.2f}s after the alert was posted; first task {since_opened:.2f}s after the incident opened")
    assert "[P1]" in page[0]["text"]

    # Diagnostics, notify and plan ran at once; the destructive steps wait for a person.
    parked(stack, DAG, run_id, "approve")
    states = stack.client.task_states(DAG, run_id)
    assert {t: states[t] for t in ("check_incident", "collect_diagnostics", "notify", "plan")} == dict.fromkeys(
        ("check_incident", "collect_diagnostics", "notify", "plan"), "success"
    )
    assert states["approve"] == "awaiting_input" and states["stop_trading"] in (None, "none")
    assert replicas() == before, "nothing stopped before the approval"
    diagnostics = stack.client.xcom(DAG, run_id, "collect_diagnostics")
    assert sha256_of(Path(diagnostics["archive"])) == diagnostics["sha256"]
    war_room = wait_for(
        lambda: [
            c
            for c in requests.get(stack.settings["slack"]["url"] + "/_sandbox/channels", timeout=5).json()
            if c["name"].endswith(f"-{incident['id']}")
        ]
    )
    assert war_room

    # The notification and its repeat both reached the app: still one incident, one run.
    assert incident_with(stack, label)["occurrences"] == 1
    assert [r["dag_run_id"] for r in runs_for(stack, incident["id"])] == [run_id]

    # A security alert meanwhile: its evidence and page do not wait behind the first incident's approval.
    other_label = uuid.uuid4().hex[:8]
    breach = {
        "labels": {"alertname": "SecurityBreach", "severity": "critical", "service": "api-gateway", "e2e": other_label},
        "annotations": {"summary": "tokens used from an unknown network"},
    }
    platform.posted.append(breach)
    requests.post(alertmanager + "/api/v2/alerts", json=[breach], timeout=5).raise_for_status()
    breach_run = f"incident_{wait_for(lambda: incident_with(stack, other_label))['id']}__alert"
    parked(stack, DAG, breach_run, "security.approve")
    evidence = stack.client.task_states(DAG, breach_run)
    assert (evidence["security.preserve_evidence"], evidence["security.page_security"]) == ("success", "success")
    assert stack.client.task_states(DAG, run_id)["approve"] == "awaiting_input", "both wait for a person at once"
    answer(stack, DAG, breach_run, "security.approve", ["Reject"])

    answer(stack, DAG, run_id, "approve", ["Approve"])
    run = stack.client.wait_for_run(DAG, run_id, timeout=300)
    assert run["state"] == "success", stack.client.task_states(DAG, run_id)
    stack.client.wait_for_run(DAG, breach_run, timeout=120)
    assert stack.client.xcom(DAG, breach_run, "report")["outcome"].startswith("not approved"), "nothing contained"
    assert replicas() == dict.fromkeys(TRADING, 0)
    assert platform.positions() == {}, "every position closed (the platform's database)"
    assert kubectl.json("get", "service", GATEWAY)["spec"]["type"] == "ClusterIP"

    ended = {**alert, "endsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    requests.post(alertmanager + "/api/v2/alerts", json=[ended], timeout=5).raise_for_status()
    resolved = wait_for(lambda: (row := incident_with(stack, label)) and row["status"] == "resolved" and row)
    assert resolved["resolved_by"] == "Alertmanager"

    report = stack.airflow.reports_dir / "incidents" / f"incident-{incident['id']}.md"
    text = wait_for(lambda: report.exists() and report.read_text())
    _, trail = stack.client.incident(incident["id"])
    rows = re.findall(
        r"^\| (\d{4}-\d\d-\d\d [^|]+) \| [^|]* \| [^|]+ \| ([^|]+) \|",
        text.split("## Timeline")[1].split("## ")[0],
        re.M,
    )
    through_resolve = trail[: max(i for i, e in enumerate(trail) if e["kind"] == "resolved") + 1]
    assert [(when.strip(), who.strip()) for when, who in rows] == [
        (datetime.fromisoformat(e["at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), e["actor"])
        for e in through_resolve
    ]
    steps = [e for e in trail if e["kind"] == "runbook_step"]
    assert steps and all(e["actor"] == "Alertmanager" for e in steps if e["detail"].get("step") == "started")
    changes = [e["detail"] for e in steps if e["detail"]["step"] in ACTIONS]
    assert [(c["step"], c["run_id"]) for c in changes] == [(step, run_id) for step in ACTIONS]
    outcome = stack.client.xcom(DAG, run_id, "report")["outcome"]
    assert outcome == "done: " + "; ".join(c["summary"] for c in changes), "the outcome says what each change did"
