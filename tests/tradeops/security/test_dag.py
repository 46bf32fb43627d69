"""daily_security_check run in-process (``dag.test()``) against the sandbox's seeded platform: the Kubernetes API,
the platform database, TradeOps' state database and Slack are real.

Every problem the sandbox plants is found at its severity and nothing else is; problems made with the real
``kubectl`` while the sandbox runs are "new" on the next run and "fixed" (their incidents resolved) on the run
after their removal; nothing secret reaches a log line, an XCom, the report, an incident or a Slack message."""

from __future__ import annotations

import base64
import json
import logging

import pytest
import requests

from sandbox.kubernetes.tls import self_signed_certificate
from tests.dagtest import runnable
from tradeops.incidents import store
from tradeops.incidents.service import IncidentService
from tradeops.security.findings import incident_key

PLATFORM = "grandmodel"
# The sandbox's planted problems (sandbox/kubernetes/seed.py, sandbox/platform_db.py): id -> (level, critical)
PLANTED = {
    "tls:grandmodel/data-feed-client-tls": ("fail", True),  # 5 days left
    "tls:grandmodel/legacy-admin-tls": ("fail", True),  # expired 3 days ago
    "tls:grandmodel/auth-service-tls": ("warn", False),  # 21 days left
    "netpol:default-deny:grandmodel-monitoring": ("fail", False),
    "rbac:cluster-admin:ClusterRoleBinding/trading-user-admin:ServiceAccount:grandmodel/trading-user": ("fail", True),
    "rbac:sa:grandmodel/trading-user": ("fail", True),  # the same binding, seen from the account
    "rbac:sa:grandmodel/deployer": ("fail", True),  # secrets and pods/exec beyond its least privilege
    "login:brute-force:user07": ("fail", True),
    "login:anomaly:user07": ("warn", False),
    "login:spray:185.220.101.47": ("fail", True),
    "login:new-source:user04:198.18.7.21": ("fail", False),
    "gateway:auth-errors:grandmodel/api-gateway": ("fail", False),  # 401/403 on 60 % of the last minutes' requests
    "drift:deployment:grandmodel-monitoring/prometheus:image": ("fail", False),
    "drift:configmap:grandmodel/risk-engine-config:max_order_contracts": ("fail", False),
}
CHECKS = [
    "tls_certificates",
    "network_policies",
    "privileges",
    "failed_logins",
    "gateway_auth_errors",
    "configuration_drift",
]


@pytest.fixture
def security_dag(dagbag, airflow_db, airflow_connections, reports, recheck_after, replicas_for_now):
    recheck_after("0s")  # a failed check looks again at once (the pause is tested in tests/tradeops/checks)
    return runnable(dagbag, "daily_security_check")


@pytest.fixture
def reports(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    return tmp_path / "daily_security_check"


@pytest.fixture
def state(sandbox_settings, config):
    """A state database whose security findings start empty (each test sees its own first run)."""
    dsn = sandbox_settings["postgres"]["state_dsn"]
    store.migrate(dsn)
    with store.connect(dsn) as conn:
        conn.execute("DELETE FROM tradeops.security_findings")
    return IncidentService(config, dsn)


@pytest.fixture
def slack(sandbox_settings):
    url = sandbox_settings["slack"]["url"] + "/_sandbox/messages"
    requests.delete(url, timeout=5)
    return lambda: requests.get(url, timeout=5).json()


def tracked(run) -> dict[str, dict]:
    pushed = run.get_task_instance("track_findings").xcom_pull(task_ids="track_findings", key="tracked_findings")
    return {t["id"]: t for t in pushed}


def test_every_planted_problem_is_found_at_its_severity_and_nothing_else(security_dag, state, reports, slack):
    run = security_dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert {t: states[t] for t in CHECKS} == dict.fromkeys(CHECKS, "failed")  # each has a planted problem
    assert states["vulnerability_scan"] == "success"  # the sandbox's images have medium and low ones only
    assert states["track_findings"] == "success" and states["report"] == "failed" and run.state == "failed"

    found = tracked(run)
    assert {i: (t["status"], t["critical"]) for i, t in found.items()} == PLANTED
    assert {t["state"] for t in found.values()} == {"new"}
    drift = found["drift:deployment:grandmodel-monitoring/prometheus:image"]["details"]
    assert drift["expected"].endswith("prometheus:2.53.0") and drift["live"].endswith("prometheus:2.54.1")
    assert drift["changed_by"]["manager"] == "kubectl"  # as managedFields say: the seed set it like kubectl does
    config_drift = found["drift:configmap:grandmodel/risk-engine-config:max_order_contracts"]["details"]
    assert (config_drift["field"], config_drift["live"]) == ("data.max_order_contracts", "500")
    assert config_drift["changed_by"]["manager"] == "kubectl-edit"

    # One incident per failed finding, at the security severity when critical; warnings open none.
    incidents = state.active_by_key([incident_key(i) for i in PLANTED])
    failed = {i for i, (level, _) in PLANTED.items() if level == "fail"}
    assert {key.removeprefix("security:") for key in incidents} == failed
    for finding_id in failed:
        expected = "security" if PLANTED[finding_id][1] else "P2"
        assert incidents[incident_key(finding_id)].severity == expected, finding_id

    html = next(reports.glob("*.html")).read_text()
    assert "legacy-admin-tls" in html and "185.220.101.47" in html
    (message,) = [m for m in slack() if "Daily security check" in m.get("text", "")]
    assert message["channel_name"] == "#security-incidents"
    assert "6 of 7 checks failed" in message["text"] and f"{len(PLANTED)} new" in message["text"]

    again = tracked(security_dag.test())  # the same problems: still open, the same incidents
    assert {t["state"] for t in again.values()} == {"still open"} and set(again) == set(PLANTED)
    assert state.active_by_key([incident_key(i) for i in failed]).keys() == incidents.keys()
    assert all(again[i]["incident_id"] == incidents[incident_key(i)].id for i in failed)


NEW_PROBLEMS = {
    "rbac:cluster-admin:ClusterRoleBinding/contractor-admin:User:contractor@quantnova.com",
    "netpol:default-deny:grandmodel-research",
    "tls:grandmodel/risk-ui-tls",
    "drift:deployment:grandmodel/risk-management:image",
}


def test_problems_made_with_kubectl_are_new_then_fixed_with_their_incidents(
    security_dag, state, kubectl, tmp_path, config
):
    tracked(security_dag.test())  # the seeded problems, now known
    declared = config.kubernetes.deployment("risk-management").image
    pem, key_pem = self_signed_certificate("risk-ui.grandmodel.quantnova.com", 3)
    (tmp_path / "tls.crt").write_text(pem)
    (tmp_path / "tls.key").write_text(key_pem)
    kubectl.ok("create", "clusterrolebinding", "contractor-admin", "--clusterrole=cluster-admin",
               "--user=contractor@quantnova.com")  # fmt: skip
    kubectl.ok("create", "namespace", "grandmodel-research")
    kubectl.ok("label", "namespace", "grandmodel-research", config.security.namespace_label)
    kubectl.ok("create", "secret", "tls", "risk-ui-tls", f"--cert={tmp_path / 'tls.crt'}",
               f"--key={tmp_path / 'tls.key'}")  # fmt: skip
    kubectl.ok("set", "image", "deployment/risk-management", f"risk-management={declared.rsplit(':', 1)[0]}:3.1.1")
    try:
        found = tracked(security_dag.test())
        assert {i: found[i]["state"] for i in NEW_PROBLEMS} == dict.fromkeys(NEW_PROBLEMS, "new")
        assert {t["state"] for i, t in found.items() if i not in NEW_PROBLEMS} == {"still open"}
        certificate = found["tls:grandmodel/risk-ui-tls"]
        assert certificate["critical"] and 2.9 < certificate["details"]["days_left"] <= 3
        image = found["drift:deployment:grandmodel/risk-management:image"]["details"]
        assert image["live"].endswith(":3.1.1") and image["changed_by"]["manager"] == "kubectl-set"
        opened = state.active_by_key([incident_key(i) for i in NEW_PROBLEMS])
        assert len(opened) == len(NEW_PROBLEMS)
    finally:
        kubectl("delete", "clusterrolebinding", "contractor-admin")
        kubectl("delete", "namespace", "grandmodel-research")
        kubectl("delete", "secret", "risk-ui-tls")
        kubectl.ok("set", "image", "deployment/risk-management", f"risk-management={declared}")

    after = tracked(security_dag.test())
    assert {i: after[i]["state"] for i in NEW_PROBLEMS} == dict.fromkeys(NEW_PROBLEMS, "fixed")
    assert not state.active_by_key([incident_key(i) for i in NEW_PROBLEMS])
    for incident in opened.values():
        assert state.get(incident.id).status.value == "resolved"
    assert {t["state"] for i, t in after.items() if i not in NEW_PROBLEMS} == {"still open"}


def _sandbox_secrets(kubectl, sandbox_settings) -> set[str]:
    """Every secret value of the sandbox: Kubernetes secrets' data (encoded and decoded, PEM lines too), the API
    tokens of its kubeconfig, and every password, token and secret of its settings (the databases' among them)."""
    found = set()
    for secret in kubectl.json("get", "secrets", "-A")["items"]:
        for value in (secret.get("data") or {}).values():
            decoded = base64.b64decode(value).decode(errors="replace")
            found.add(value)
            found.add(decoded)
            found.update(line for line in decoded.splitlines() if len(line) > 40 and "CERTIFICATE" not in line)
    config = json.loads(kubectl.ok("config", "view", "--raw", "-o", "json"))
    found.update(user["user"]["token"] for user in config["users"] if user["user"].get("token"))

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, str) and key.endswith("dsn"):
            found.add(node.partition("://")[2].partition("@")[0].partition(":")[2])
        elif isinstance(node, str) and any(word in key for word in ("token", "password", "secret")):
            found.add(node)

    walk(sandbox_settings)
    # Public parts (certificates are meant to be read) are not secrets.
    return {s for s in found if len(s) >= 12 and "BEGIN CERTIFICATE" not in s}


def test_no_secret_reaches_a_log_xcom_report_incident_or_slack(
    security_dag, state, reports, slack, kubectl, sandbox_settings, caplog, airflow_db
):
    caplog.set_level(logging.DEBUG)
    run = security_dag.test()
    secrets = _sandbox_secrets(kubectl, sandbox_settings)
    assert len(secrets) > 10, "the scan must have secrets to look for"
    outputs = {"log": "\n".join(r.getMessage() for r in caplog.records)}
    for ti in run.get_task_instances():
        for key in ("return_value", "check_result", "tracked_findings"):
            outputs[f"xcom {ti.task_id} {key}"] = json.dumps(ti.xcom_pull(task_ids=ti.task_id, key=key), default=str)
    for path in reports.parent.rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_text(errors="replace")
    outputs["slack"] = json.dumps(slack())
    with store.connect(state.dsn) as conn:
        rows = conn.execute(
            "SELECT i.title, i.summary, i.details::text, e.detail::text AS event FROM tradeops.incidents i "
            "LEFT JOIN tradeops.incident_events e ON e.incident_id = i.id WHERE i.dedup_key LIKE 'security:%'"
        ).fetchall()
        outputs["incidents"] = json.dumps(rows, default=str)
        outputs["findings"] = json.dumps(
            conn.execute("SELECT * FROM tradeops.security_findings").fetchall(), default=str
        )
    assert "legacy-admin-tls" in outputs["slack"] + outputs["incidents"]  # the scan reads real output
    leaks = [(where, s[:16]) for where, text in outputs.items() for s in secrets if s in text]
    assert not leaks
