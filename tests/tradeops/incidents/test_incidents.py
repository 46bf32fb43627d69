"""Opening, deduplicating, escalating, acknowledging and resolving incidents on the real PostgreSQL and Slack of the
sandbox: one incident per key however many callers race, nothing paged twice, nothing dropped when Slack fails."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tradeops.incidents import store
from tradeops.incidents.service import Incidents


def open_p2(incidents: Incidents, key: str, **kwargs) -> store.Opened:
    return incidents.open(dedup_key=key, source="manual", severity="P2", title=f"test incident {key}",
                          summary="something is late", **kwargs)


def kinds(incidents: Incidents, incident_id: int) -> list[str]:
    with store.connect(incidents.dsn) as conn:
        return [e["kind"] for e in store.timeline(conn, incident_id)]


def outbox(incidents: Incidents, incident_id: int) -> list[dict]:
    with store.connect(incidents.dsn) as conn:
        return conn.execute("SELECT * FROM tradeops.outbox WHERE incident_id = %s ORDER BY id",
                            (incident_id,)).fetchall()


def test_migrations_create_the_schema_once_and_are_idempotent(incidents, state_dsn):
    assert store.migrate(state_dsn) == []  # the fixture's Incidents() already applied them
    with store.connect(state_dsn) as conn:
        names = [r["name"] for r in conn.execute("SELECT name FROM tradeops.schema_migrations ORDER BY name")]
        tables = {r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tradeops'")}
    assert names == sorted(path.name for path in store.MIGRATIONS.glob("*.sql"))
    assert {"incidents", "incident_events", "silences", "outbox", "relation_sizes", "schema_migrations"} <= tables


def test_concurrent_migrators_do_not_race(state_dsn):
    results, errors = [], []

    def migrate():
        try:
            results.append(store.migrate(state_dsn))
        except Exception as err:  # noqa: BLE001 - any failure fails the test below
            errors.append(err)

    threads = [threading.Thread(target=migrate) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [[]] * 5


def test_opening_pages_level_one_with_blocks_buttons_and_a_thread(incidents, key, messages_of):
    opened = open_p2(incidents, key, dag_id="daily_health_check", run_id="scheduled__2026-11-23T13:00:00+00:00")
    incident = opened.incident
    assert opened.created and incident["status"] == "open"

    [page] = messages_of(incident["id"], "#trading-alerts")
    assert page["text"] == f":red_circle: [P2] #{incident['id']} test incident {key}"
    assert page["thread_ts"] is None
    blocks = {b["type"]: b for b in page["blocks"]}
    assert blocks["header"]["text"]["text"] == f"[P2] test incident {key}"
    facts = [f["text"] for f in blocks["section"]["fields"]] if "fields" in blocks["section"] else [
        f["text"] for b in page["blocks"] if b["type"] == "section" and "fields" in b for f in b["fields"]]
    assert "*Paged:* L1 On-call engineer: #trading-alerts @oncall-primary" in facts
    links = blocks["context"]["elements"][0]["text"]
    assert "Airflow run" in links and "runbooks.quantnova.internal/grandmodel/daily_health_check" in links
    assert [e["action_id"] for e in blocks["actions"]["elements"]] == ["incident_ack", "incident_resolve"]

    with store.connect(incidents.dsn) as conn:
        row = store.get(conn, incident["id"])
        events = store.timeline(conn, incident["id"])
    assert (row["slack_channel"], row["slack_ts"]) == (page["channel"], page["ts"])
    assert row["level"] == 1
    assert [e["kind"] for e in events] == ["opened", "paged", "notified"]
    assert events[2]["slack_ts"] == page["ts"] and events[2]["slack_channel"] == "#trading-alerts"


def test_twenty_simultaneous_openings_make_one_incident_and_one_page(incidents, demo_config, state_dsn, key,
                                                                     messages_of):
    barrier = threading.Barrier(20)
    results, errors = [], []

    def open_once():
        try:
            mine = Incidents(demo_config, state_dsn)  # its own connections, as another scheduler's would be
            barrier.wait()
            results.append(open_p2(mine, key))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=open_once) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({r.incident["id"] for r in results}) == 1
    assert sum(r.created for r in results) == 1
    incident_id = results[0].incident["id"]
    with store.connect(state_dsn) as conn:
        row = store.get(conn, incident_id)
        active = conn.execute("SELECT count(*) AS n FROM tradeops.incidents WHERE dedup_key = %s", (key,)).fetchone()
    assert active["n"] == 1 and row["occurrences"] == 20
    assert len(messages_of(incident_id)) == 1, "exactly one L1 message"
    assert kinds(incidents, incident_id).count("paged") == 1
    assert kinds(incidents, incident_id).count("deduplicated") == 19


def test_a_key_reopens_as_a_new_incident_after_resolve(incidents, key):
    first = open_p2(incidents, key).incident
    again = open_p2(incidents, key)
    assert not again.created and again.incident["id"] == first["id"]

    incidents.resolve(first["id"], "alice", "fixed")
    reopened = open_p2(incidents, key)
    assert reopened.created and reopened.incident["id"] != first["id"]
    assert kinds(incidents, first["id"]) == ["opened", "paged", "notified", "deduplicated", "resolved", "notified"]


def test_escalation_follows_the_policy_and_ack_stops_it(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    anchor = incident["escalation_anchor"]
    engine = incidents.engine

    assert engine.process_due(anchor + timedelta(seconds=7)) == 0  # P2 demo policy: L2 after 8 s
    engine.process_due(anchor + timedelta(seconds=8))
    engine.deliver()
    [l2] = messages_of(incident["id"], "#ops-management")
    assert l2["text"].startswith(":arrow_double_up: Escalated to L2 Operations manager @ops-manager:")
    replies = [m for m in messages_of(incident["id"], "#trading-alerts") if m["thread_ts"]]
    [root] = [m for m in messages_of(incident["id"], "#trading-alerts") if not m["thread_ts"]]
    assert [r["thread_ts"] for r in replies] == [root["ts"]]

    incidents.acknowledge(incident["id"], "@alice", "looking")
    assert engine.process_due(anchor + timedelta(seconds=19)) == 0, "no L3 (due at 18 s) once acknowledged"
    assert messages_of(incident["id"], "#exec-escalations") == []
    root_now = next(m for m in messages_of(incident["id"], "#trading-alerts") if m["ts"] == root["ts"])
    assert root_now.get("edited") and "acknowledged" in str(root_now["blocks"])

    with pytest.raises(store.IncidentError, match="acknowledged, not open"):
        incidents.acknowledge(incident["id"], "@bob")
    incidents.resolve(incident["id"], "@alice", "feed restarted")
    with pytest.raises(store.IncidentError, match="already resolved"):
        incidents.resolve(incident["id"], "@alice")
    assert engine.process_due(anchor + timedelta(hours=5)) == 0
    assert kinds(incidents, incident["id"]) == [
        "opened", "paged", "notified", "escalated", "notified", "notified", "acknowledged", "notified",
        "resolved", "notified"]


def test_the_engine_never_pages_the_same_step_twice_when_several_run(incidents, demo_config, state_dsn, key,
                                                                     messages_of):
    incident = open_p2(incidents, key).incident
    due = incident["escalation_anchor"] + timedelta(seconds=8)
    engines = [Incidents(demo_config, state_dsn).engine for _ in range(4)]
    threads = [threading.Thread(target=lambda e=e: (e.process_due(due), e.deliver())) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(messages_of(incident["id"], "#ops-management")) == 1
    assert kinds(incidents, incident["id"]).count("escalated") == 1
    incidents.resolve(incident["id"], "tests")


def test_p1_opens_a_war_room(incidents, key, messages_of):
    incident = incidents.open(dedup_key=key, source="manual", severity="P1", title=f"P1 {key}").incident
    war_room = f"#inc-{datetime.now(UTC):%Y%m%d}-{incident['id']}"
    assert [m["channel_name"] for m in messages_of(incident["id"]) if "War room" in m["text"]] == [war_room]
    with store.connect(incidents.dsn) as conn:
        assert store.get(conn, incident["id"])["war_room"] == war_room
    incidents.resolve(incident["id"], "tests")


def test_a_stale_acknowledgement_pages_again(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    acknowledged = incidents.acknowledge(incident["id"], "@alice")
    # Demo policy: an acknowledgement goes stale after 45 s without a resolve.
    incidents.engine.process_due(acknowledged["acknowledged_at"] + timedelta(seconds=46))
    incidents.engine.deliver()
    with store.connect(incidents.dsn) as conn:
        row = store.get(conn, incident["id"])
    assert row["status"] == "open" and row["acknowledged_at"] is None
    stale = [m for m in messages_of(incident["id"], "#trading-alerts") if "went stale" in m["text"]]
    assert stale and "by @alice" in stale[0]["text"]
    assert "ack_stale" in kinds(incidents, incident["id"])
    incidents.resolve(incident["id"], "tests")


def test_status_updates_go_to_the_thread(incidents, key, messages_of):
    incident = open_p2(incidents, key).incident
    incidents.acknowledge(incident["id"], "@alice")
    incidents.engine.process_due(incident["opened_at"] + timedelta(seconds=21))  # demo: every 20 s
    incidents.engine.deliver()
    updates = [m for m in messages_of(incident["id"]) if m["text"].startswith(":hourglass_flowing_sand: Status:")]
    assert len(updates) == 1 and updates[0]["thread_ts"]
    assert "acknowledged by @alice" in updates[0]["text"]
    incidents.resolve(incident["id"], "tests")


def test_a_silence_mutes_matching_incidents_with_author_reason_and_expiry(incidents, key, messages_of):
    silence = incidents.silence(key, "@alice", "planned feed maintenance", timedelta(minutes=30))
    assert silence["author"] == "@alice" and silence["ends_at"] - silence["starts_at"] == timedelta(minutes=30)
    incident = open_p2(incidents, f"{key}:sub").incident
    assert incident["silenced_until"] == silence["ends_at"]
    assert messages_of(incident["id"]) == [], "nobody paged during the silence"
    assert kinds(incidents, incident["id"]) == ["opened", "silenced"]

    incidents.engine.process_due(silence["ends_at"] + timedelta(seconds=1))
    incidents.engine.deliver()
    assert len(messages_of(incident["id"], "#trading-alerts")) == 1, "paged when the silence ends"
    with pytest.raises(store.IncidentError, match="author and a reason"):
        incidents.silence(key, "@alice", "  ", timedelta(minutes=5))
    incidents.resolve(incident["id"], "tests")


def test_the_audit_trail_is_append_only(incidents, key):
    incident = open_p2(incidents, key).incident
    with store.connect(incidents.dsn) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE tradeops.incident_events SET actor = 'mallory' WHERE incident_id = %s",
                         (incident["id"],))
        conn.rollback()
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM tradeops.incident_events WHERE incident_id = %s", (incident["id"],))


# --- the run that already failed -----------------------------------------------------------------------------------

def _deadline(state: str, run_id: str):
    return {"dag_run_id": run_id, "state": state}, {"deadline_time": "2026-11-23T14:20:00+00:00"}


@pytest.mark.parametrize("policy", ["merge", "suppress", "separate"])
def test_a_deadline_of_an_already_failed_run_follows_the_policy(demo_config, state_dsn, airflow_connections, key,
                                                                policy, messages_of):
    config = demo_config.model_copy(update={"escalation": demo_config.escalation.model_copy(
        update={"failed_run_deadline_policy": policy})})
    incidents = Incidents(config, state_dsn)
    dag_id, run_id = f"dag_{key.split(':')[1]}", "manual__2026-11-23T14:00:00+00:00"
    failure = incidents.task_failed(dag_id=dag_id, run_id=run_id, task_id="agents", severity="P2",
                                    error="AgentsUnhealthy: 2 agents silent")

    dag_run, deadline = _deadline("failed", run_id)
    result = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")

    with store.connect(state_dsn) as conn:
        rows = conn.execute("SELECT * FROM tradeops.incidents WHERE dag_id = %s ORDER BY id", (dag_id,)).fetchall()
    if policy == "merge":
        assert result.incident["id"] == failure.incident["id"] and not result.created
        assert [r["occurrences"] for r in rows] == [2]
        assert len(messages_of(failure.incident["id"])) == 1, "merged: nobody paged twice"
    elif policy == "suppress":
        assert result is None and len(rows) == 1
    else:
        assert result.created and [r["dedup_key"] for r in rows] == [f"failure:{dag_id}:{run_id}",
                                                                     f"deadline:{dag_id}:{run_id}:late"]
    for row in rows:
        incidents.resolve(row["id"], "tests")


def test_a_deadline_of_a_running_run_opens_its_own_incident(incidents, key, messages_of):
    dag_id = f"dag_{key.split(':')[1]}"
    dag_run, deadline = _deadline("running", "scheduled__2026-11-23T13:00:00+00:00")
    opened = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")
    again = incidents.deadline_missed(dag_run, deadline, dag_id=dag_id, tier="late", severity="P2")
    assert opened.created and not again.created, "a duplicate callback (several schedulers) pages nobody twice"
    assert opened.incident["dedup_key"] == f"deadline:{dag_id}:scheduled__2026-11-23T13:00:00+00:00:late"
    assert "was still `running` at its 'late' deadline" in opened.incident["summary"]
    assert len(messages_of(opened.incident["id"])) == 1
    incidents.resolve(opened.incident["id"], "tests")


# --- Slack failures: retried, never dropped --------------------------------------------------------------------------

def test_a_rate_limited_post_waits_for_retry_after_and_is_delivered(incidents, key, sandbox, messages_of):
    sandbox.set_faults("slack", rate_limit=1, retry_after_s=2)
    started = time.monotonic()
    incident = open_p2(incidents, key).incident
    assert time.monotonic() - started >= 2, "Retry-After honoured"
    assert len(messages_of(incident["id"])) == 1
    assert [r["attempts"] for r in outbox(incidents, incident["id"])] == [1]
    incidents.resolve(incident["id"], "tests")


def test_a_message_slack_refuses_is_kept_and_retried_and_the_thread_waits_for_it(incidents, key, sandbox,
                                                                                 messages_of):
    sandbox.set_faults("slack", error_burst=100, error_status=503)
    incident = open_p2(incidents, key).incident
    incidents.acknowledge(incident["id"], "@alice")  # its thread reply must wait for the first message
    assert messages_of(incident["id"]) == []
    pending = outbox(incidents, incident["id"])
    assert [(r["kind"], r["delivered_at"]) for r in pending] == [("page", None), ("thread_reply", None),
                                                                 ("update_root", None)]
    assert pending[0]["attempts"] >= 1
    assert pending[0]["last_error"] == "internal_error", "Slack's error is kept for the operator"
    assert "delivery_failed" in kinds(incidents, incident["id"])

    sandbox.clear_faults("slack")
    deadline = time.monotonic() + 30
    while any(r["delivered_at"] is None for r in outbox(incidents, incident["id"])) and time.monotonic() < deadline:
        incidents.engine.deliver()
        time.sleep(0.5)
    delivered = messages_of(incident["id"])
    assert [bool(m["thread_ts"]) for m in delivered] == [False, True], "the page first, then its thread"
    assert delivered[1]["thread_ts"] == delivered[0]["ts"]
    incidents.resolve(incident["id"], "tests")


def test_deliveries_resume_after_the_engine_restarts(incidents, demo_config, state_dsn, key, sandbox, messages_of):
    """The outbox is in PostgreSQL: a fresh engine (a restarted triggerer) delivers what another left."""
    sandbox.set_faults("slack", error_burst=100, error_status=500)
    incident = open_p2(incidents, key).incident
    sandbox.clear_faults("slack")
    fresh = Incidents(demo_config, state_dsn).engine
    deadline = time.monotonic() + 30
    while not messages_of(incident["id"]) and time.monotonic() < deadline:
        fresh.deliver()
        time.sleep(0.5)
    assert len(messages_of(incident["id"])) == 1
    incidents.resolve(incident["id"], "tests")
