"""The security runbook's operators, executed directly against the sandbox (the Kubernetes API the real kubectl
reads, the platform API, the state database, Slack): the evidence is preserved in a write-once bundle whose
checksums verify, listed on the incident, reused by a second run and never overwritten (a tampered one is kept and
a new numbered one written); in the runbook's order the evidence and the security page come before the isolation
and the stop (trail ids, and the outbox holding the page before the isolation runs), and the shared isolate/stop
operators act on a security incident; tokens are revoked through the platform API (read back there), the ids on
the trail and no token value in the trail, the log or the outbox; a dry run changes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
import tarfile
import uuid
from dataclasses import asdict
from pathlib import Path

import psycopg
import pytest
import requests

from tradeops.incident_response import forensics
from tradeops.incident_response.actions import IsolateGatewayOperator, StopTradingOperator
from tradeops.incident_response.evidence import security_targets
from tradeops.incident_response.security import (
    EVIDENCE_TASK,
    PageSecurityOperator,
    PreserveEvidenceOperator,
    RevokeTokensOperator,
    SecurityPlanOperator,
)

EVIDENCE = ["api-gateway", "auth-service"]


@pytest.fixture
def reports(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def platform_api(sandbox_settings):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox_settings['secrets']['platform_api_token']}"
    base = sandbox_settings["platform_api"]["url"]
    return lambda method, path, **kwargs: session.request(method, base + path, timeout=10, **kwargs).json()


def steps(service, incident_id: int) -> list:
    return [e for e in service.timeline(incident_id) if e.kind.value == "runbook_step"]


def member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


def test_the_evidence_is_preserved_write_once_verified_and_listed_on_the_incident(context, incident, reports):
    opened = incident("security")

    def preserve() -> dict:
        return PreserveEvidenceOperator(
            task_id="preserve_evidence", incident_id=opened.id, deployments=EVIDENCE, tail_lines=200
        ).execute(context)

    first = preserve()
    archive = Path(first["bundle"])
    assert archive.parent == reports / "forensics" / f"incident-{opened.id}" and archive.name == "evidence-001.tar.gz"
    assert first["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert forensics.verify(archive, first["sha256"]).ok, "every member's SHA-256 matches the manifest"
    for path in (archive, forensics.checksum_file(archive)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert {"incident/incident.json", "incident/trail.json", "auth_failures/daily.json"} <= set(first["members"])
    assert {"events/grandmodel.json", "auth_failures/api-gateway.log"} <= set(first["members"])
    for name in EVIDENCE:
        assert any(m.startswith(f"logs/{name}/") for m in first["members"]), name
    assert json.loads(member(archive, "incident/incident.json"))["id"] == opened.id
    assert "opened" in [e["kind"] for e in json.loads(member(archive, "incident/trail.json"))]
    denied = member(archive, "auth_failures/api-gateway.log").decode().splitlines()
    assert denied and all(" status=401 " in line or " status=403 " in line for line in denied)
    assert json.loads(member(archive, forensics.MANIFEST))["collected_by"] == "alice"

    entry = steps(incident.service, opened.id)[-1]
    assert (entry.detail["step"], entry.actor, entry.detail["bundle"]) == ("evidence", "alice", str(archive))
    assert entry.detail["sha256"] == first["sha256"]
    listed = incident.service.get(opened.id).details["forensic_bundle"]
    assert listed == {"bundle": str(archive), "sha256": first["sha256"], "by": "alice"}

    written = archive.read_bytes()
    second = preserve()
    assert second["reused"] is True and (second["bundle"], second["sha256"]) == (first["bundle"], first["sha256"])
    assert archive.read_bytes() == written and forensics.bundles(archive.parent) == [archive], "nothing rewritten"

    archive.chmod(0o644)
    archive.write_bytes(written + b"tampered")
    third = preserve()
    assert third["reused"] is False and third["replaced"] == str(archive)
    assert Path(third["bundle"]).name == "evidence-002.tar.gz" and forensics.verify(Path(third["bundle"])).ok
    assert archive.read_bytes() == written + b"tampered", "the bundle that fails verification is kept as it is"
    assert not forensics.verify(archive, first["sha256"]).ok
    replaced = steps(incident.service, opened.id)[-1].detail["replaced"]
    assert replaced["bundle"] == str(archive) and replaced["problems"]
    assert incident.service.get(opened.id).details["forensic_bundle"]["bundle"] == third["bundle"]

    listed_archive = Path(third["bundle"])  # rewritten whole: archive, manifest and checksum file agree again
    forged = forensics.archive_bytes({"incident/incident.json": b"{}"}, {"incident_id": opened.id})
    for path in (listed_archive, forensics.checksum_file(listed_archive)):
        path.chmod(0o644)
    listed_archive.write_bytes(forged)
    forensics.checksum_file(listed_archive).write_text(f"{forensics.sha256_hex(forged)}  {listed_archive.name}\n")
    fourth = preserve()
    assert fourth["reused"] is False and fourth["replaced"] == third["bundle"], "the incident's SHA-256 tells"
    assert Path(fourth["bundle"]).name == "evidence-003.tar.gz"
    problems = steps(incident.service, opened.id)[-1].detail["replaced"]["problems"]
    assert any("is not the expected" in problem for problem in problems)


def test_evidence_and_the_security_page_come_before_the_isolation_and_the_stop(
    context, xcoms, incident, reports, cluster, config, sandbox_settings
):
    opened = incident("security")
    xcoms[EVIDENCE_TASK] = PreserveEvidenceOperator(
        task_id="preserve_evidence", incident_id=opened.id, deployments=[*cluster.names, "api-gateway"], tail_lines=50
    ).execute(context)
    bundle = xcoms[EVIDENCE_TASK]["bundle"]
    paged = PageSecurityOperator(task_id="page_security", incident_id=opened.id).execute(context)
    assert paged["channels"] == security_targets(config)[0] and paged["mentions"] == ["@security-team"]

    def security_pages() -> list[tuple]:
        with psycopg.connect(sandbox_settings["postgres"]["state_dsn"]) as conn:
            return conn.execute(
                "SELECT channel, text, created_at FROM tradeops.outbox "
                "WHERE incident_id = %s AND kind = 'escalation' AND text LIKE '%%Security response%%'",
                (opened.id,),
            ).fetchall()

    queued = security_pages()
    assert sorted(channel for channel, _, _ in queued) == sorted(paged["channels"]), "queued before any isolation"
    assert all(f"#{opened.id}" in text and bundle in text and "@security-team" in text for _, text, _ in queued)
    assert cluster.snapshot() == cluster.before, "nothing contained yet"

    IsolateGatewayOperator(task_id="isolate_gateway", incident_id=opened.id, service="api-gateway").execute(context)
    StopTradingOperator(
        task_id="stop_trading", incident_id=opened.id, namespace="grandmodel", trading=cluster.names
    ).execute(context)
    after = cluster.snapshot()
    assert after["gateway"] == "ClusterIP" and after["replicas"] == dict.fromkeys(cluster.names, 0)

    trail = {e.detail["step"]: e for e in steps(incident.service, opened.id)}
    order = [trail[step] for step in ("evidence", "security_paged", "isolate_gateway", "stop_trading")]
    assert [e.id for e in order] == sorted(e.id for e in order) and len({e.id for e in order}) == 4
    assert [e.at for e in order] == sorted(e.at for e in order)
    assert {e.actor for e in order} == {"alice"}
    assert max(created for _, _, created in queued) <= trail["isolate_gateway"].at
    saved = json.loads(member(Path(bundle), "incident/trail.json"))
    assert "isolate_gateway" not in [e["detail"].get("step") for e in saved], "the evidence predates the isolation"

    assert PageSecurityOperator(task_id="page_security", incident_id=opened.id).execute(context)["queued"] == []
    assert len(security_pages()) == len(queued), "a retry queues nothing twice"


def test_tokens_are_revoked_through_the_platform_api_by_id_and_no_value_is_written_anywhere(
    context, incident, platform_api, sandbox_settings, caplog, capsys
):
    opened = incident("security")
    user = f"tests-sec-{uuid.uuid4().hex[:8]}"
    scopes = ("trading", "trading", "read")
    issued = [platform_api("POST", "/v1/auth/tokens", json={"user": user, "scope": s}) for s in scopes]
    values = [t["token"] for t in issued]
    selected = sorted(t["id"] for t in issued if t["scope"] == "trading")
    active = lambda: platform_api("GET", "/v1/auth/tokens", params={"active": "true"})["count"]  # noqa: E731
    before = active()
    caplog.set_level(logging.INFO)

    def revoke(dry_run: bool) -> dict:
        return RevokeTokensOperator(
            task_id="revoke_tokens",
            incident_id=opened.id,
            reason="tests: a leaked key",
            user=user,
            scope="trading",
            dry_run=dry_run,
        ).execute(context)

    with pytest.raises(ValueError, match="all_tokens=True"):  # naming nothing never means every token
        RevokeTokensOperator(task_id="revoke_tokens", incident_id=opened.id, reason="tests", dry_run=False)
    dry = revoke(True)
    assert sorted(dry["would_revoke"]) == selected and dry["revoked"] == []
    assert active() == before, "a dry run revokes nothing"

    done = revoke(False)
    assert sorted(done["revoked"]) == selected
    read_back = {t["id"]: t for t in platform_api("GET", "/v1/auth/tokens", params={"user": user})["tokens"]}
    assert [read_back[i]["active"] for i in selected] == [False, False]
    assert {read_back[i]["revoked_reason"] for i in selected} == {f"incident #{opened.id}: tests: a leaked key"}
    assert read_back[issued[2]["id"]]["active"] is True, "the read-scope token was not selected"
    assert active() == before - 2, "no other token touched"
    assert revoke(False)["revoked"] == done["revoked"], "a retry replays the same revocation"

    entries = [e for e in steps(incident.service, opened.id) if e.detail["step"] == "revoke_tokens"]
    assert [e.detail.get("dry_run", False) for e in entries] == [True, False, False]
    assert sorted(entries[1].detail["revoked"]) == selected and entries[1].actor == "alice"
    logs = caplog.text + capsys.readouterr().out  # the task logger (structlog) writes to stdout outside a worker
    assert "token(s) revoked" in logs and done["revoked"][0] in logs, "the operator's log is captured: ids only"
    with psycopg.connect(sandbox_settings["postgres"]["state_dsn"]) as conn:
        outbox = conn.execute("SELECT text, blocks::text FROM tradeops.outbox WHERE incident_id = %s", (opened.id,))
        messages = json.dumps(outbox.fetchall())
    trail = json.dumps([asdict(e) for e in incident.service.timeline(opened.id)], default=str)
    for value in values:
        for where, text in (("log", logs), ("trail", trail), ("outbox", messages), ("xcom", json.dumps(done))):
            assert value not in text, f"a token value in the {where}"
    platform_api("POST", "/v1/auth/tokens/revoke", json={"reason": "tests: cleanup", "user": user})


def test_the_dry_run_plan_lists_every_step_and_changes_nothing(context, xcoms, incident, cluster, platform_api):
    opened = incident("security")
    xcoms["check_incident"] = {"dry_run": True}
    trading_tokens = platform_api("GET", "/v1/auth/tokens", params={"scope": "trading", "active": "true"})["tokens"]
    planned = SecurityPlanOperator(
        task_id="plan",
        incident_id=opened.id,
        namespace="grandmodel",
        trading=cluster.names,
        gateway="api-gateway",
        evidence=[*cluster.names, *EVIDENCE],
        scope="trading",
    ).execute(context)

    actions = [step["action"] for step in planned["plan"]]
    assert actions[:3] == ["preserve", "page", "isolate"] and actions[-1] == "revoke"
    scaled = {s["target"]: s["before"] for s in planned["plan"] if s["action"] == "scale"}
    assert scaled == {name: count for name, count in cluster.before["replicas"].items() if count}
    revoke = planned["plan"][-1]
    assert revoke["target"] == "scope trading" and sorted(revoke["ids"]) == sorted(t["id"] for t in trading_tokens)
    assert cluster.snapshot() == cluster.before
    assert platform_api("GET", "/v1/auth/tokens", params={"scope": "trading", "active": "true"})["tokens"] == (
        trading_tokens
    )
    entry = steps(incident.service, opened.id)[-1]
    assert entry.detail["step"] == "plan" and entry.detail["summary"].startswith("dry run, nothing changed: ")
