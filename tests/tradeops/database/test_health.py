"""The database health queries find what is planted on a real server, and their evaluations grade it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest

from tradeops.checks.base import Status
from tradeops.database.health import (
    DATABASE_CHECKS,
    evaluate_blocked_sessions,
    evaluate_connections,
    evaluate_wraparound,
)


@pytest.fixture
def quick(config):
    """The production config with a 1 s long-query threshold, so a planted query is 'long' at once."""
    database = config.database.model_copy(update={"maintenance": config.database.maintenance.model_copy(
        update={"long_query_after": timedelta(seconds=1)})})
    return config.model_copy(update={"database": database})


def _background(dsn: str, statement: str, name: str) -> threading.Thread:
    def run() -> None:
        try:
            with psycopg.connect(dsn, application_name=name) as conn:  # inside a transaction, as LOCK needs
                conn.execute(statement)
        except psycopg.Error:
            pass  # cancelled or terminated by the test

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for(db, predicate_sql: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not db.execute(predicate_sql).fetchone()["found"]:
        assert time.monotonic() < deadline, predicate_sql
        time.sleep(0.05)


def test_a_planted_long_query_is_found(platform_copy, db, quick):
    assert DATABASE_CHECKS["long_queries"].run(db, quick).status is Status.OK
    planted = _background(platform_copy, "SELECT pg_sleep(30)", "planted-long-query")
    own = _background(platform_copy, "SELECT pg_sleep(30)", "tradeops-vacuum:trades")  # TradeOps' own: expected
    try:
        _wait_for(db, "SELECT count(*) > 0 AS found FROM pg_stat_activity WHERE application_name = "
                      "'planted-long-query' AND state = 'active' AND now() - query_start > interval '1.2 seconds'")
        result = DATABASE_CHECKS["long_queries"].run(db, quick)
    finally:
        db.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name IN ('planted-long-query', 'tradeops-vacuum:trades')")
        planted.join(10)
        own.join(10)
    assert result.status is Status.FAIL
    [query] = result.details["queries"]
    assert query["application_name"] == "planted-long-query"
    assert "pg_sleep(30)" in query["query"] and query["seconds"] >= 1


def test_a_planted_lock_chain_is_found_with_its_head(platform_copy, db, config):
    assert DATABASE_CHECKS["blocked_sessions"].run(db, config).status is Status.OK
    with psycopg.connect(platform_copy, application_name="planted-holder") as holder:
        holder.execute("UPDATE positions SET qty = qty WHERE symbol = 'ES'")  # row lock, transaction left open
        holder_pid = holder.info.backend_pid
        second = _background(platform_copy, "UPDATE positions SET qty = qty WHERE symbol = 'ES'", "planted-waiter")
        _wait_for(db, "SELECT count(*) = 1 AS found FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        third = _background(platform_copy, "LOCK TABLE positions IN ACCESS EXCLUSIVE MODE", "planted-ddl")
        _wait_for(db, "SELECT count(*) = 2 AS found FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        result = DATABASE_CHECKS["blocked_sessions"].run(db, config)
        holder.rollback()
    second.join(10)
    third.join(10)
    assert result.status is Status.FAIL
    assert result.details["root_blockers"] == [holder_pid]
    waiting = {s["application_name"]: s for s in result.details["sessions"]}
    assert set(waiting) == {"planted-waiter", "planted-ddl"}
    assert waiting["planted-waiter"]["blocked_by"] == [holder_pid]
    assert holder_pid in waiting["planted-ddl"]["blocked_by"]
    assert any(b["application_name"] == "planted-holder" for b in waiting["planted-waiter"]["blockers"])


def test_connections_and_wraparound_run_on_the_real_server(db, config):
    connections = DATABASE_CHECKS["connections"].run(db, config)
    assert connections.status is Status.OK and connections.details["used"] >= 1
    wraparound = DATABASE_CHECKS["wraparound"].run(db, config)
    assert wraparound.status is Status.OK and wraparound.details["databases"]


def test_connection_usage_is_graded_against_the_usable_limit(config):
    def grade(used):
        return evaluate_connections([{"used": used, "max_connections": 103, "reserved": 3}], config)

    assert grade(79).status is Status.OK
    assert grade(80).status is Status.WARN
    assert grade(95).status is Status.FAIL and "95 of 100" in grade(95).summary


def test_wraparound_age_is_graded_against_the_config(config):
    def grade(age):
        return evaluate_wraparound([{"database": "grandmodel", "xid_age": age}], config)

    assert grade(200_000_000).status is Status.OK
    assert grade(500_000_000).status is Status.WARN
    assert grade(1_300_000_000).status is Status.FAIL


def test_a_lock_cycle_has_no_single_head(config):
    result = evaluate_blocked_sessions([{"pid": 1, "blocked_by": [2]}, {"pid": 2, "blocked_by": [1]}], config)
    assert result.status is Status.FAIL and "(a cycle)" in result.summary


def test_query_text_is_redacted_before_it_reaches_incidents_or_slack():
    from tradeops.database.health import redact

    assert redact("ALTER ROLE app PASSWORD 'hunter2'") == "ALTER ROLE app PASSWORD '?'"
    assert (redact("SELECT * FROM t WHERE a = 'it''s' AND b = $x$secret$x$")
            == "SELECT * FROM t WHERE a = '?' AND b = '?'")
    assert len(redact("SELECT " + "x" * 500)) == 200
