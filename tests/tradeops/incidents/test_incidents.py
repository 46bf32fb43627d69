"""Opening, deduplicating, escalating, acknowledging and resolving incidents on the real PostgreSQL and Slack of the
sandbox: one incident per key however many callers race, nothing paged twice, nothing dropped when Slack fails."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tradeops.exceptions import IncidentError
from tradeops.incidents import store
from tradeops.incidents.models import EventKind, Incident, IncidentSource, IncidentStatus, NewIncident, Opened
from tradeops.incidents.service import IncidentService


def open_p2(incidents: IncidentService, key: str, *, deliver: bool = True, **fields) -> Opened:
    new = NewIncident(
        dedup_key=key,
        source="manual",
        severity="P2",
        title=f"test incident {key}",
        summary="something is late",
        **fields,
    )
    return incidents.open(new, deliver=deliver)


def kinds(incidents: IncidentService, incident_id: int) -> list[str]:
    return [e.kind for e in incidents.timeline(incident_id)]


def outbox(incidents: IncidentService, incident_id: int) -> list[dict]:
    with store.connect(incidents.dsn) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.outbox WHERE incident_id = %s ORDER BY id", (incident_id,)
        ).fetchall()


def test_opening_pages_level_one_with_blocks_buttons_and_a_thread(incidents, key, messages_of):
    opened = open_p2(incidents, key, dag_id="daily_health_check", run_id="scheduled__2026-11-23T13:00:00+00:00")
    incident = opened.incident
    assert opened.created and incident.status is IncidentStatus.OPEN

    [page] = messages_of(incident.id, "#trading-alerts")
    assert page["text"] == f":red_circle: [P2] #{incident.id} test incident {key}"
    assert page["thread_ts"] is None
    blocks = {b["type"]: b for b in page["blocks"]}
    assert blocks["header"]["text"]["text"] == f"[P2] test incident {key}"
    facts = (
        [f["text"] for f in blocks["section"]["fields"]]
        if "fields" in blocks["section"]
        else [f["text"] for b in page["blocks"] if b["type"] == "section" and "fields" in b for f in b["fields"]]
    )
    assert "*Paged:* L1 On-call engineer: #trading-alerts @oncall-primary" in facts
    links = blocks["context"]["elements"][0]["text"]
    assert "Airflow run" in links and "runbooks.quantnova.internal/grandmodel/daily_health_check" in links
    assert [e["action_id"] for e in blocks["actions"]["elements"]] == ["incident_ack", "incident_resolve"]

    row = incidents.get(incident.id)
    events = incidents.timeline(incident.id)
    assert isinstance(row, Incident) and row.source is IncidentSource.MANUAL and row.status is IncidentStatus.OPEN
    with store.connect(incidents.dsn) as conn:  # the database keeps the same words
        stored = conn.execute("SELECT status, source FROM tradeops.incidents WHERE id = %s", (incident.id,)).fetchone()
        stored_kinds = [
            r["kind"]
            for r in conn.execute(
                "SELECT kind FROM tradeops.incident_events WHERE incident_id = %s ORDER BY id", (incident.id,)
            )
        ]
    assert stored == {"status": "open", "source": "manual"} and stored_kinds == ["opened", "paged", "notified"]
    assert (row.slack_channel, row.slack_ts) == (page["channel"], page["ts"])
    assert row.level == 1
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.PAGED, EventKind.NOTIFIED]
    assert events[2].slack_ts == page["ts"] and events[2].slack_channel == "#trading-alerts"


def test_twenty_simultaneous_openings_make_one_incident_and_one_page(
    incidents, demo_config, state_dsn, key, messages_of
):
    barrier = threading.Barrier(20)

    def open_once(_: int) -> Opened:
        mine = IncidentService(demo_config, state_dsn)  # its own connections, as another scheduler's would be
        barrier.wait()
        return open_p2(mine, key)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(open_once, range(20)))
    assert len({r.incident.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    incident_id = results[0].incident.id
    with store.connect(state_dsn) as conn:
        row = store.get(conn, incident_id)
        active = conn.execute("SELECT count(*) AS n FROM tradeops.incidents WHERE dedup_key = %s", (key,)).fetchone()
    assert active["n"] == 1 and row.occurrences == 20
    assert len(messages_of(incident_id)) == 1, "exactly one L1 message"
    assert kinds(incidents, incident_id).count("paged") == 1
    assert kinds(incidents, incident_id).count("deduplicated") == 19


def test_a_key_reopens_as_a_new_incident_after_resolve(incidents, key):
    first = open_p2(incidents, key).incident
    again = open_p2(incidents, key)
    assert not again.created and again.incident.id == first.id

    incidents.resolve(first.id, "alice", "fixed")
    reopened = open_p2(incidents, key)
    assert reopened.created and reopened.incident.id != first.id
    assert kinds(incidents, first.id) == ["opened", "paged", "notified", "deduplicated", "resolved", "notified"]


def test_escalation_follows_the_policy_and_ack_stops_it(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    anchor = incident.escalation_anchor
    engine = incidents.engine

    assert engine.process_due(anchor + timedelta(seconds=7)) == 0  # P2 demo policy: L2 after 8 s
    engine.process_due(anchor + timedelta(seconds=8))
    incidents.outbox.deliver()
    [l2] = messages_of(incident.id, "#ops-management")
    assert l2["text"].startswith(":arrow_double_up: Escalated to L2 Operations manager @ops-manager:")
    replies = [m for m in messages_of(incident.id, "#trading-alerts") if m["thread_ts"]]
    [root] = [m for m in messages_of(incident.id, "#trading-alerts") if not m["thread_ts"]]
    assert [r["thread_ts"] for r in replies] == [root["ts"]]

    incidents.acknowledge(incident.id, "@alice", "looking")
    assert engine.process_due(anchor + timedelta(seconds=19)) == 0, "no L3 (due at 18 s) once acknowledged"
    assert messages_of(incident.id, "#exec-escalations") == []
    root_now = next(m for m in messages_of(incident.id, "#trading-alerts") if m["ts"] == root["ts"])
    assert root_now.get("edited") and "acknowledged" in str(root_now["blocks"])

    with pytest.raises(IncidentError, match="acknowledged, not open"):
        incidents.acknowledge(incident.id, "@bob")
    incidents.resolve(incident.id, "@alice", "feed restarted")
    with pytest.raises(IncidentError, match="already resolved"):
        incidents.resolve(incident.id, "@alice")
    assert engine.process_due(anchor + timedelta(hours=5)) == 0
    assert kinds(incidents, incident.id) == [
        "opened",
        "paged",
        "notified",
        "escalated",
        "notified",
        "notified",
        "acknowledged",
        "notified",
        "resolved",
        "notified",
    ]


def test_the_engine_never_pages_the_same_step_twice_when_several_run(
    incidents, demo_config, state_dsn, key, messages_of
):
    incident = open_p2(incidents, key).incident
    due = incident.escalation_anchor + timedelta(seconds=8)
    engines = [IncidentService(demo_config, state_dsn) for _ in range(4)]
    threads = [threading.Thread(target=lambda e=e: (e.engine.process_due(due), e.outbox.deliver())) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(messages_of(incident.id, "#ops-management")) == 1
    assert kinds(incidents, incident.id).count("escalated") == 1
    incidents.resolve(incident.id, "tests")


def test_p1_opens_a_war_room(incidents, key, messages_of):
    incident = incidents.open(NewIncident(dedup_key=key, source="manual", severity="P1", title=f"P1 {key}")).incident
    war_room = f"#inc-{datetime.now(UTC):%Y%m%d}-{incident.id}"
    assert [m["channel_name"] for m in messages_of(incident.id) if "War room" in m["text"]] == [war_room]
    assert incidents.get(incident.id).war_room == war_room
    incidents.resolve(incident.id, "tests")


def test_a_stale_acknowledgement_pages_again(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    acknowledged = incidents.acknowledge(incident.id, "@alice")
    # Demo policy: an acknowledgement goes stale after 45 s without a resolve.
    incidents.engine.process_due(acknowledged.acknowledged_at + timedelta(seconds=46))
    incidents.outbox.deliver()
    row = incidents.get(incident.id)
    assert row.status is IncidentStatus.OPEN and row.acknowledged_at is None
    stale = [m for m in messages_of(incident.id, "#trading-alerts") if "went stale" in m["text"]]
    assert stale and "by @alice" in stale[0]["text"]
    assert "ack_stale" in kinds(incidents, incident.id)
    incidents.resolve(incident.id, "tests")


def test_status_updates_go_to_the_thread(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    incidents.acknowledge(incident.id, "@alice")
    incidents.engine.process_due(incident.opened_at + timedelta(seconds=21))  # demo: every 20 s
    incidents.outbox.deliver()
    updates = [m for m in messages_of(incident.id) if m["text"].startswith(":hourglass_flowing_sand: Status:")]
    assert len(updates) == 1 and updates[0]["thread_ts"]
    assert "acknowledged by @alice" in updates[0]["text"]
    incidents.resolve(incident.id, "tests")


def test_a_silence_mutes_matching_incidents_with_author_reason_and_expiry(incidents, key, messages_of):
    silence = incidents.silence(key, "@alice", "planned feed maintenance", timedelta(minutes=30))
    assert silence.author == "@alice" and silence.ends_at - silence.starts_at == timedelta(minutes=30)
    incident = open_p2(incidents, f"{key}:sub").incident
    assert incident.silenced_until == silence.ends_at
    assert messages_of(incident.id) == [], "nobody paged during the silence"
    assert kinds(incidents, incident.id) == ["opened", "silenced"]

    incidents.engine.process_due(silence.ends_at + timedelta(seconds=1))
    incidents.outbox.deliver()
    assert len(messages_of(incident.id, "#trading-alerts")) == 1, "paged when the silence ends"
    with pytest.raises(IncidentError, match="author and a reason"):
        incidents.silence(key, "@alice", "  ", timedelta(minutes=5))
    incidents.resolve(incident.id, "tests")


def test_a_silence_matches_its_prefix_literally_never_as_a_pattern(incidents, key):
    active = open_p2(incidents, key).incident
    wildcard = key.replace(":", "_")  # as a LIKE pattern, "_" would match the ":" of this test's keys
    incidents.silence(wildcard, "@alice", "a matcher with a wildcard character", timedelta(minutes=30))
    later = open_p2(incidents, f"{key}:later").incident
    assert incidents.get(active.id).silenced_until is None and later.silenced_until is None
    incidents.resolve(active.id, "tests")
    incidents.resolve(later.id, "tests")


def test_the_audit_trail_is_append_only(incidents, key):
    incident = open_p2(incidents, key).incident
    with store.connect(incidents.dsn) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE tradeops.incident_events SET actor = 'mallory' WHERE incident_id = %s", (incident.id,))
        conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM tradeops.incident_events WHERE incident_id = %s", (incident.id,))


# --- the run that already failed -----------------------------------------------------------------------------------


def _deadline(state: str, run_id: str):
    return {"dag_run_id": run_id, "state": state}, {"deadline_time": "2026-11-23T14:20:00+00:00"}


@pytest.mark.parametrize("policy", ["merge", "suppress", "separate"])
def test_a_deadline_of_an_already_failed_run_follows_the_policy(
    demo_config, state_dsn, airflow_connections, key, policy, messages_of
):
    config = demo_config.model_copy(
        update={"escalation": demo_config.escalation.model_copy(update={"failed_run_deadline_policy": policy})}
    )
    incidents = IncidentService(config, state_dsn)
    dag_id, run_id = f"dag_{key.split(':')[1]}", "manual__2026-11-23T14:00:00+00:00"
    failure = incidents.task_failed(
        dag_id=dag_id, run_id=run_id, task_id="agents", severity="P2", error="AgentsUnhealthy: 2 agents silent"
    )

    dag_run, deadline = _deadline("failed", run_id)
    result = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")

    with store.connect(state_dsn) as conn:
        rows = conn.execute("SELECT * FROM tradeops.incidents WHERE dag_id = %s ORDER BY id", (dag_id,)).fetchall()
    if policy == "merge":
        assert result.incident.id == failure.incident.id and not result.created
        assert [r["occurrences"] for r in rows] == [2]
        assert len(messages_of(failure.incident.id)) == 1, "merged: nobody paged twice"
    elif policy == "suppress":
        assert result is None and len(rows) == 1
    else:
        assert result.created and [r["dedup_key"] for r in rows] == [
            f"failure:{dag_id}:{run_id}",
            f"deadline:{dag_id}:{run_id}:late",
        ]
    for row in rows:
        incidents.resolve(row["id"], "tests")


def test_a_deadline_of_a_running_run_opens_its_own_incident(incidents, key, messages_of):
    dag_id = f"dag_{key.split(':')[1]}"
    dag_run, deadline = _deadline("running", "scheduled__2026-11-23T13:00:00+00:00")
    opened = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")
    again = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")
    assert opened.created and not again.created, "a duplicate callback (several schedulers) pages nobody twice"
    assert opened.incident.dedup_key == f"deadline:{dag_id}:scheduled__2026-11-23T13:00:00+00:00:late"
    assert "was still `running` at its 'late' deadline" in opened.incident.summary
    assert len(messages_of(opened.incident.id)) == 1
    incidents.resolve(opened.incident.id, "tests")


# --- Slack failures: retried, never dropped --------------------------------------------------------------------------


def test_a_rate_limited_post_waits_for_retry_after_and_is_delivered(incidents, key, sandbox, messages_of):
    sandbox.set_faults("slack", rate_limit=1, retry_after_s=2)
    started = time.monotonic()
    incident = open_p2(incidents, key).incident
    assert time.monotonic() - started >= 2, "Retry-After honoured"
    assert len(messages_of(incident.id)) == 1
    assert [r["attempts"] for r in outbox(incidents, incident.id)] == [1]
    incidents.resolve(incident.id, "tests")


def test_a_message_slack_refuses_is_kept_and_retried_and_the_thread_waits_for_it(incidents, key, sandbox, messages_of):
    sandbox.set_faults("slack", error_burst=100, error_status=503)
    incident = open_p2(incidents, key).incident
    incidents.acknowledge(incident.id, "@alice")  # its thread reply must wait for the first message
    assert messages_of(incident.id) == []
    pending = outbox(incidents, incident.id)
    assert [(r["kind"], r["delivered_at"]) for r in pending] == [
        ("page", None),
        ("thread_reply", None),
        ("update_root", None),
    ]
    assert pending[0]["attempts"] >= 1
    assert pending[0]["last_error"] == "internal_error", "Slack's error is kept for the operator"
    assert "delivery_failed" in kinds(incidents, incident.id)

    sandbox.clear_faults("slack")
    deadline = time.monotonic() + 30
    while any(r["delivered_at"] is None for r in outbox(incidents, incident.id)) and time.monotonic() < deadline:
        incidents.outbox.deliver()
        time.sleep(0.5)
    delivered = messages_of(incident.id)
    assert [bool(m["thread_ts"]) for m in delivered] == [False, True], "the page first, then its thread"
    assert delivered[1]["thread_ts"] == delivered[0]["ts"]
    incidents.resolve(incident.id, "tests")


def test_deliveries_resume_after_the_engine_restarts(incidents, demo_config, state_dsn, key, sandbox, messages_of):
    """The outbox is in PostgreSQL: a fresh engine (a restarted triggerer) delivers what another left."""
    sandbox.set_faults("slack", error_burst=100, error_status=500)
    incident = open_p2(incidents, key).incident
    sandbox.clear_faults("slack")
    fresh = IncidentService(demo_config, state_dsn).outbox
    deadline = time.monotonic() + 30
    while not messages_of(incident.id) and time.monotonic() < deadline:
        fresh.deliver()
        time.sleep(0.5)
    assert len(messages_of(incident.id)) == 1
    incidents.resolve(incident.id, "tests")


# --- the engine's trigger ------------------------------------------------------------------------------------------


def test_the_engine_trigger_delivers_wakes_on_a_change_and_ends_with_its_window(incidents, key, messages_of):
    import asyncio

    from tradeops.incidents.triggers import EscalationEngineTrigger

    first = open_p2(incidents, f"{key}:a", deliver=False).incident
    assert messages_of(first.id) == [], "queued, not delivered"
    until = datetime.now(UTC) + timedelta(seconds=4)
    opened_later: list[Incident] = []

    async def run_the_window():
        async def open_another():
            await asyncio.sleep(1.5)  # the engine is asleep (nothing due before its window ends): a NOTIFY wakes it
            opened_later.append(await asyncio.to_thread(lambda: open_p2(incidents, f"{key}:b", deliver=False).incident))

        opener = asyncio.create_task(open_another())
        events = [event async for event in EscalationEngineTrigger(until.isoformat()).run()]
        await opener
        return events

    [event] = asyncio.run(run_the_window())
    assert datetime.now(UTC) >= until
    result = event.xcoms["return_value"]
    assert result["window_end"] == until.isoformat() and result["delivered"] >= 2
    assert len(messages_of(first.id, "#trading-alerts")) == 1
    assert len(messages_of(opened_later[0].id, "#trading-alerts")) == 1


def test_the_deadline_of_a_failed_scheduled_runbook_merges_into_its_runbook_incident(incidents, messages_of):
    from tradeops.incidents.service import runbook_key

    dag_id, run_id = "weekly_maintenance", "manual__2026-11-29T07:00:00+00:00"
    refused = incidents.open(
        NewIncident(dedup_key=runbook_key(dag_id), source="task_failure", severity="P2", title=f"{dag_id} failed")
    )
    dag_run, deadline = _deadline("failed", run_id)
    merged = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="window", severity="P2")
    assert merged.incident.id == refused.incident.id and not merged.created
    assert len(messages_of(refused.incident.id)) == 1, "the refused gate and its deadline page once"
