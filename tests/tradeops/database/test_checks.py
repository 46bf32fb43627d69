"""The database checks find what is planted on a real server (read as a task reads it: through the platform database
connection), and their evaluations grade it, with findings whose ids stay the same from run to run."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tradeops.checks.base import Status
from tradeops.database.checks import (
    BackupCheck,
    BackupTaken,
    BlockedSessions,
    DatabaseConnections,
    LongQueries,
    Wraparound,
    redact,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def quick(config):
    """The production config with a 1 s long-query threshold, so a planted query is 'long' at once."""
    database = config.database.model_copy(
        update={
            "maintenance": config.database.maintenance.model_copy(update={"long_query_after": timedelta(seconds=1)})
        }
    )
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


def test_every_check_suggests_an_action():
    assert all(check.action for check in (LongQueries(), BlockedSessions(), DatabaseConnections(), Wraparound()))


def test_a_planted_long_query_is_found(platform_connection, db, quick):
    assert LongQueries().run(quick).status is Status.OK
    planted = _background(platform_connection, "SELECT pg_sleep(30)", "planted-long-query")
    own = _background(platform_connection, "SELECT pg_sleep(30)", "tradeops-vacuum:trades")  # TradeOps' own: expected
    try:
        _wait_for(
            db,
            "SELECT count(*) > 0 AS found FROM pg_stat_activity WHERE application_name = "
            "'planted-long-query' AND state = 'active' AND now() - query_start > interval '1.2 seconds'",
        )
        result = LongQueries().run(quick)
    finally:
        db.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
            "WHERE application_name IN ('planted-long-query', 'tradeops-vacuum:trades')"
        )
        planted.join(10)
        own.join(10)
    assert result.status is Status.FAIL and result.action
    [query] = result.details["queries"]
    assert query["application_name"] == "planted-long-query"
    assert "pg_sleep(30)" in query["query"] and query["seconds"] >= 1
    [finding] = result.findings
    assert finding.id == f"long_query:{query['pid']}" and "planted-long-query" in finding.message


def test_a_planted_lock_chain_is_found_with_its_head(platform_connection, db, config):
    check = BlockedSessions()
    assert check.run(config).status is Status.OK
    with psycopg.connect(platform_connection, application_name="planted-holder") as holder:
        holder.execute("UPDATE positions SET qty = qty WHERE symbol = 'ES'")  # row lock, transaction left open
        holder_pid = holder.info.backend_pid
        second = _background(
            platform_connection, "UPDATE positions SET qty = qty WHERE symbol = 'ES'", "planted-waiter"
        )
        _wait_for(db, "SELECT count(*) = 1 AS found FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        third = _background(platform_connection, "LOCK TABLE positions IN ACCESS EXCLUSIVE MODE", "planted-ddl")
        _wait_for(db, "SELECT count(*) = 2 AS found FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        result = check.run(config)
        again = check.run(config)
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
    [chain] = result.findings
    assert chain.id == f"lock_chain:{holder_pid}" and "planted-holder" in chain.message
    assert chain.details["waiting"] == sorted(s["pid"] for s in waiting.values()), "the DDL waits behind it too"
    assert [f.id for f in again.findings] == [chain.id], "the same chain has the same id on the next run"


def test_connections_and_wraparound_run_on_the_real_server(platform_connection, config):
    connections = DatabaseConnections().run(config)
    assert connections.status is Status.OK and connections.details["used"] >= 1
    assert connections.findings == ()
    wraparound = Wraparound().run(config)
    assert wraparound.status is Status.OK and wraparound.details["databases"]


def test_connection_usage_is_graded_against_the_usable_limit(config):
    def grade(used):
        return DatabaseConnections().evaluate(
            [{"used": used, "active": 3, "idle_in_transaction": 0, "max_connections": 103, "reserved": 3}], config
        )

    assert grade(79).status is Status.OK
    assert grade(80).status is Status.WARN
    assert grade(95).status is Status.FAIL and "95 of 100" in grade(95).summary
    assert [(f.id, f.status) for f in grade(95).findings] == [("connections", Status.FAIL)]


@pytest.mark.parametrize(("used", "status"), [(100, Status.OK), (158, Status.WARN), (188, Status.FAIL)])
def test_database_connections_against_the_thresholds(config, used, status):
    # thresholds.db_connections_warn_pct 80, db_connections_fail_pct 95, of 200 - 3 reserved
    data = {"used": used, "active": 3, "idle_in_transaction": 0, "max_connections": 200, "reserved": 3}
    result = DatabaseConnections().evaluate([data], config)
    assert result.status is status
    assert f"{used} of 197 usable connections" in result.summary and "3 active" in result.summary
    assert result.details["usable"] == 197 and result.details["active"] == 3


def test_wraparound_age_is_graded_against_the_config(config):
    def grade(age):
        return Wraparound().evaluate(
            [{"database": "grandmodel", "xid_age": age}, {"database": "postgres", "xid_age": 1_000}], config
        )

    assert grade(200_000_000).status is Status.OK and grade(200_000_000).findings == ()
    assert grade(500_000_000).status is Status.WARN
    assert grade(1_300_000_000).status is Status.FAIL
    assert [(f.id, f.status) for f in grade(1_300_000_000).findings] == [("database:grandmodel", Status.FAIL)]


def test_a_lock_cycle_has_no_single_head(config):
    result = BlockedSessions().evaluate([{"pid": 1, "blocked_by": [2]}, {"pid": 2, "blocked_by": [1]}], config)
    assert result.status is Status.FAIL and "(a cycle)" in result.summary
    assert [(f.id, f.details["waiting"]) for f in result.findings] == [("lock_cycle:1", [1, 2])]


def test_each_head_of_a_lock_chain_is_one_finding(config):
    rows = [{"pid": 10, "blocked_by": [7]}, {"pid": 11, "blocked_by": [10]}, {"pid": 12, "blocked_by": [8, 10]}]
    result = BlockedSessions().evaluate(rows, config)
    assert result.details["root_blockers"] == [7, 8]
    assert [(f.id, f.details["waiting"]) for f in result.findings] == [
        ("lock_chain:7", [10, 11, 12]),
        ("lock_chain:8", [12]),
    ]


def test_query_text_is_redacted_before_it_reaches_incidents_or_slack():
    assert redact("ALTER ROLE app PASSWORD 'hunter2'") == "ALTER ROLE app PASSWORD '?'"
    assert (
        redact("SELECT * FROM t WHERE a = 'it''s' AND b = $x$secret$x$") == "SELECT * FROM t WHERE a = '?' AND b = '?'"
    )
    assert len(redact("SELECT " + "x" * 500)) == 200


def test_a_backup_taken_is_summarised(config):
    manifest = {"id": "grandmodel-20261122T070000Z", "bytes": 3 * 2**20, "seconds": 4.2}
    taken = BackupTaken(
        "/backups/grandmodel-20261122T070000Z",
        manifest,
        {"toc_entries": 42},
        {"rows": 12_345, "restore_seconds": 3.1},
        ["grandmodel-20261101T070000Z"],
    )
    result = BackupCheck().evaluate(taken, config)
    assert result.status is Status.OK and result.action == ""
    assert result.summary == (
        "grandmodel-20261122T070000Z: 3.0 MB in 4.2 s, 42 TOC entries verified, restored and "
        "compared (12,345 rows in 3.1 s)"
    )
    assert result.details == {
        "id": manifest["id"],
        "path": taken.path,
        "bytes": 3 * 2**20,
        "seconds": 4.2,
        "restore_check": taken.restored,
        "pruned": taken.pruned,
    }
    unchecked = BackupCheck().evaluate(BackupTaken(taken.path, manifest, {"toc_entries": 42}, None, []), config)
    assert unchecked.summary.endswith("42 TOC entries verified")


def test_a_failed_backup_is_a_failed_check_with_its_reason():
    result = BackupCheck().unreachable(RuntimeError("pg_dump failed (exit 1): disk full"))
    assert (result.status, result.summary) == (Status.FAIL, "RuntimeError: pg_dump failed (exit 1): disk full")
    assert result.action
    with pytest.raises(ValueError, match="due, always or never"):
        BackupCheck("sometimes")


def test_dag_files_can_import_the_checks_without_psycopg():
    code = "import sys, tradeops.database.checks; assert 'psycopg' not in sys.modules, 'psycopg imported'"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
