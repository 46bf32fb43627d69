"""incident_response run in-process (``dag.test()``, triggered as ``dag_test``) with its real operators against the
sandbox's Kubernetes API, platform API, state database and Slack: a dry run collects the diagnostics (the archive's
SHA-256 verifies against the file), posts in the incident's thread through the outbox, lists the plan and changes
nothing (replicas and the gateway Service read with the real kubectl, positions in the platform's database), every
step on the incident's timeline by the triggering user; a resolved incident is refused with nothing done."""

from __future__ import annotations

import hashlib
import json
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.dagtest import runnable, states

DAG = "incident_response"
FORM = {"type": "critical", "reason": "tests: every fill rejected"}


def xcom(run, task_id: str):
    value = run.get_task_instance(task_id).xcom_pull(task_ids=task_id)
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture
def response(dagbag, airflow_db, airflow_connections, sandbox, sandbox_settings, cluster, book, tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)
    return runnable(dagbag, DAG)


def steps_of(service, incident_id: int) -> list[dict]:
    return [{"by": e.actor, **e.detail} for e in service.timeline(incident_id) if e.kind.value == "runbook_step"]


def test_a_dry_run_collects_notifies_lists_the_plan_and_changes_nothing(response, incident, cluster, book, sandbox):
    opened = incident("P1")
    run = response.test(run_conf={**FORM, "incident_id": opened.id, "dry_run": True})

    assert run.state == "success", states(run)
    assert cluster.snapshot() == cluster.before, "replicas and the gateway Service unchanged (kubectl)"
    assert book.read() == book.before, "no position closed"
    ended = states(run)
    assert ended["approve"] == "skipped" and ended["lock"] == "skipped"
    assert {ended[t] for t in ("stop_trading", "close_positions", "isolate_gateway")} == {"skipped"}
    planned = xcom(run, "plan")
    assert planned["dry_run"] is True
    scaled = {c["target"]: c["before"] for c in planned["plan"] if c["action"] == "scale"}
    assert scaled == {name: count for name, count in cluster.before["replicas"].items() if count}
    closed = {c["target"]: float(c["before"]) for c in planned["plan"] if c["action"] == "close"}
    assert closed == book.before
    isolate = [c for c in planned["plan"] if c["action"] == "isolate"]
    assert isolate == [
        {"action": "isolate", "target": "api-gateway", "before": cluster.before["gateway"], "after": "ClusterIP"}
    ]
    assert xcom(run, "report")["outcome"] == "dry run: plan listed, nothing changed"

    diagnostics = xcom(run, "collect_diagnostics")
    archive = Path(diagnostics["archive"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == diagnostics["sha256"]
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()

    trail = steps_of(incident.service, opened.id)
    assert [s["step"] for s in trail] == ["started", "diagnostics", "notified", "plan", "outcome"]
    assert {s["by"] for s in trail} == {"dag_test"} and {s["run_id"] for s in trail} == {run.run_id}
    assert trail[0]["dry_run"] is True and trail[0]["type"] == "critical"
    assert trail[1]["sha256"] == diagnostics["sha256"] and trail[1]["archive"] == str(archive)
    texts = [m["text"] for m in sandbox.slack_messages()]
    assert any(t.startswith("*Incident response (critical)* started by dag_test") for t in texts)
    assert any(t.startswith(f"*Incident response #{opened.id} (critical): dry run") for t in texts)


def test_a_resolved_incident_is_refused_and_nothing_is_done(response, incident, cluster, book):
    opened = incident("P2")
    incident.service.resolve(opened.id, "tests", "fixed already")
    run = response.test(run_conf={**FORM, "incident_id": opened.id, "dry_run": False})

    assert run.state == "failed"
    ended = states(run)
    assert ended["check_incident"] == "failed" and ended["report"] == "success" and ended["verdict"] == "failed"
    assert ended["stop_trading"] == "upstream_failed"
    assert xcom(run, "report")["outcome"] == "REFUSED, nothing done"
    assert cluster.snapshot() == cluster.before and book.read() == book.before
    assert steps_of(incident.service, opened.id) == []
    assert incident.service.active_by_key(["runbook:incident_response"]) == {}, "a refusal pages no one"


def test_a_performance_dry_run_lists_the_plan_and_changes_nothing(
    response, incident, cluster, book, sandbox, sandbox_settings, kubectl
):
    import psycopg
    import redis

    opened = incident("P2")
    sandbox.set_faults("platform_api", unhealthy=["tactical-marl"])
    cache = redis.Redis.from_url(sandbox_settings["redis"]["url"])
    dsn = sandbox_settings["postgres"]["platform_dsn"]

    def analyzed() -> dict:
        with psycopg.connect(dsn) as conn:
            return dict(conn.execute("SELECT relname, last_analyze FROM pg_stat_user_tables").fetchall())

    keys, statistics = set(cache.scan_iter(count=1000)), analyzed()
    gateway_replicas = kubectl.json("get", "deployment", "api-gateway")["spec"]["replicas"]
    run = response.test(
        run_conf={"type": "performance", "reason": "tests: p95 at 640 ms", "incident_id": opened.id,
                  "dry_run": True, "flush_cache": True}
    )  # fmt: skip

    assert run.state == "success", states(run)
    assert cluster.snapshot() == cluster.before, "no replica changed (kubectl)"
    assert kubectl.json("get", "deployment", "api-gateway")["spec"]["replicas"] == gateway_replicas
    assert set(cache.scan_iter(count=1000)) == keys, "no cache key deleted"
    assert analyzed() == statistics, "no ANALYZE ran"
    assert book.read() == book.before
    ended = states(run)
    performance = ("diagnostics", "notify", "plan", "apply")
    assert {ended[f"performance.{t}"] for t in performance} == {"success"}
    gated = ("analyze", "approve", "lock", "scale", "flush_cache")
    assert {ended[f"performance.{t}"] for t in gated} == {"skipped"}
    assert {ended[t] for t in ("collect_diagnostics", "approve", "stop_trading", "isolate_gateway")} == {"skipped"}
    assert ended["report"] == ended["release_lock"] == "success" and ended["verdict"] == "skipped"

    planned = xcom(run, "performance.plan")
    assert planned["dry_run"] is True and "tactical-marl" in planned["degraded"]
    actions = {c["action"]: c for c in planned["plan"]}
    assert actions["scale"]["target"] == "tactical-marl"
    assert actions["scale"]["after"] == cluster.before["replicas"]["tactical-marl"] + 1 <= actions["scale"]["max"]
    assert actions["flush"]["target"] == "grandmodel:md:" and actions["flush"]["keys"] >= 1
    assert "trades" in actions["analyze"]["tables"]
    assert xcom(run, "report")["outcome"] == "dry run: plan listed, nothing changed"

    trail = steps_of(incident.service, opened.id)
    assert [s["step"] for s in trail] == ["started", "diagnostics", "notified", "plan", "outcome"]
    assert {s["by"] for s in trail} == {"dag_test"} and trail[0]["type"] == "performance"
    assert trail[1]["consumers"]["cpu"] and "blocked" in trail[1]
    texts = [m["text"] for m in sandbox.slack_messages()]
    assert any(t.startswith("*Incident response (performance)* started by dag_test") for t in texts)
    assert any(t.startswith(f"*Incident response #{opened.id} (performance): dry run") for t in texts)


def test_a_security_dry_run_keeps_the_evidence_pages_security_first_and_contains_nothing(
    response, incident, cluster, book, sandbox, sandbox_settings
):
    from tradeops.incident_response import forensics

    opened = incident("security")
    platform = requests.Session()
    platform.headers["Authorization"] = f"Bearer {sandbox_settings['secrets']['platform_api_token']}"
    tokens_url = sandbox_settings["platform_api"]["url"] + "/v1/auth/tokens"
    active = platform.get(tokens_url, params={"active": "true"}, timeout=10).json()["tokens"]
    run = response.test(
        run_conf={"type": "security", "reason": "tests: logins from an unknown ASN", "incident_id": opened.id,
                  "dry_run": True}
    )  # fmt: skip

    assert run.state == "success", states(run)
    assert cluster.snapshot() == cluster.before, "nothing isolated or stopped (kubectl)"
    assert platform.get(tokens_url, params={"active": "true"}, timeout=10).json()["tokens"] == active, "none revoked"
    ended = states(run)
    assert {ended[f"security.{t}"] for t in ("preserve_evidence", "page_security", "plan", "apply")} == {"success"}
    contained = ("approve", "lock", "isolate_gateway", "stop_trading", "revoke_tokens")
    assert {ended[f"security.{t}"] for t in contained} == {"skipped"}
    assert {ended[t] for t in ("collect_diagnostics", "performance.diagnostics", "stop_trading")} == {"skipped"}

    bundle = xcom(run, "security.preserve_evidence")
    assert forensics.verify(Path(bundle["bundle"]), bundle["sha256"]).ok
    trail = steps_of(incident.service, opened.id)
    assert [s["step"] for s in trail] == ["started", "evidence", "security_paged", "plan", "outcome"]
    assert {s["by"] for s in trail} == {"dag_test"}
    planned = xcom(run, "security.plan")
    assert planned["dry_run"] is True and [c["action"] for c in planned["plan"]][:3] == ["preserve", "page", "isolate"]
    pages = [m["text"] for m in sandbox.slack_messages("#security-incidents")]
    assert any(f"#{opened.id}" in text and bundle["sha256"][:12] in text for text in pages), pages
    assert xcom(run, "report")["outcome"] == "dry run: plan listed, nothing changed"


def test_incidents_are_answered_side_by_side_and_their_changes_meet_at_the_lock(dagbag):
    dag = dagbag.dags[DAG]
    assert dag.max_active_runs > 1, "a second incident's evidence and page do not wait for the first's approval"
    locks = {t.task_id: t for t in dag.tasks if t.task_type == "AcquireDeploymentLockOperator"}
    assert set(locks) == {"lock", "performance.lock", "security.lock"}
    for task_id, lock in locks.items():
        assert lock.wait >= timedelta(minutes=15), f"{task_id} waits for another run's changes, not failing at once"
        approve = task_id.replace("lock", "approve")
        assert lock.upstream_task_ids == {approve}, "taken after the approval: a person's hesitation holds no lease"
