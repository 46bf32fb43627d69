"""The approved path of incident_response, its destructive operators executed directly against the sandbox
(``dag.test()`` never answers an HITL approval): trading stopped (the trading services at 0, read with the real
kubectl, the counts recorded for the restore), every position closed and the platform's book flat in its database,
the gateway Service at ``ClusterIP`` with its type before recorded on the incident for undo; each step on the
incident's trail by the triggering user, and a retry changes nothing more. Also: the diagnostics archive's SHA-256
verifies against the file, and a P1 without a war room gets one asked for, once, through the outbox."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tradeops.incident_response.actions import (
    IsolateGatewayOperator,
    RunbookClosePositionsOperator,
    StopTradingOperator,
)
from tradeops.incident_response.operators import RunbookDiagnosticsOperator
from tradeops.kubernetes.patches import SAVED_REPLICAS


def trail(service, incident_id: int) -> dict[str, dict]:
    events = service.timeline(incident_id)
    return {e.detail["step"]: {"by": e.actor, **e.detail} for e in events if e.kind.value == "runbook_step"}


def test_approved_trading_stops_positions_close_and_the_gateway_is_isolated(
    context, incident, cluster, book, kubectl, config
):
    opened = incident("P1")
    assert book.before, "the sandbox seeds open positions"
    running = {name: count for name, count in cluster.before["replicas"].items() if count}

    stop = StopTradingOperator(task_id="stop_trading", incident_id=opened.id, namespace="grandmodel",
                               trading=cluster.names)  # fmt: skip
    stopped = stop.execute(context)
    closed = RunbookClosePositionsOperator(task_id="close_positions", incident_id=opened.id, reason="tests").execute(
        context
    )
    isolated = IsolateGatewayOperator(task_id="isolate_gateway", incident_id=opened.id, service="api-gateway").execute(
        context
    )

    after = cluster.snapshot()
    assert after["replicas"] == dict.fromkeys(cluster.names, 0)
    assert sorted(stopped["stopped"]) == sorted(running) and stopped["before"] == cluster.before["replicas"]
    for name, count in running.items():
        annotations = kubectl.json("get", "deployment", name)["metadata"]["annotations"]
        assert annotations[SAVED_REPLICAS] == str(count), "the restore profile puts this back"
    assert book.read() == {}, "the platform's book is flat"
    assert closed["closed"] == len(book.before)
    assert after["gateway"] == "ClusterIP" and isolated["before"]["type"] == cluster.before["gateway"]

    steps = trail(incident.service, opened.id)
    assert {steps[s]["by"] for s in ("stop_trading", "close_positions", "isolate_gateway")} == {"alice"}
    assert steps["stop_trading"]["before"] == cluster.before["replicas"]
    assert steps["isolate_gateway"]["before"]["type"] == cluster.before["gateway"]
    assert "undo: set type back to" in steps["isolate_gateway"]["summary"]

    assert stop.execute(context)["stopped"] == [], "a retry changes nothing more"
    assert IsolateGatewayOperator(task_id="i", incident_id=opened.id, service="api-gateway").execute(context)[
        "changed"
    ] is False  # fmt: skip


def test_the_diagnostics_archive_checksum_verifies_and_is_on_the_incident(
    context, incident, tmp_path, monkeypatch, config
):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    opened = incident("P2")
    collected = RunbookDiagnosticsOperator(
        task_id="collect_diagnostics", incident_id=opened.id, deployments=["api-gateway"], tail_lines=50
    ).execute(context)

    archive = Path(collected["archive"])
    assert archive.suffixes[-2:] == [".tar", ".gz"]
    assert collected["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    recorded = trail(incident.service, opened.id)["diagnostics"]
    assert (recorded["archive"], recorded["sha256"], recorded["by"]) == (str(archive), collected["sha256"], "alice")
    archive.write_bytes(archive.read_bytes() + b"tampered")
    assert hashlib.sha256(archive.read_bytes()).hexdigest() != collected["sha256"]


def test_a_p1_without_a_war_room_gets_one_asked_for_once_through_the_outbox(incident, sandbox_settings):
    from tradeops.incidents import runbook, store

    opened = incident("P1")
    service = incident.service
    with store.connect(sandbox_settings["postgres"]["state_dsn"]) as conn:
        asked_by_the_page = runbook.war_room_requested(conn, opened.id)
        conn.execute("DELETE FROM tradeops.outbox WHERE incident_id = %s AND kind = 'war_room'", (opened.id,))
        conn.execute("UPDATE tradeops.incidents SET war_room = NULL WHERE id = %s", (opened.id,))
    assert asked_by_the_page, "the engine asks for a P1's war room when it pages"

    assert service.runbook_update(opened.id, "tests: runbook update") is True
    assert service.runbook_update(opened.id, "tests: a second update") is False, "asked for once"
    assert service.get(opened.id).war_room, "the outbox created it"
    p2 = incident("P2")
    assert service.runbook_update(p2.id, "tests: runbook update") is False, "a P2 has no war room"
