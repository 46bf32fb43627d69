"""The escalation engine's heartbeats on the sandbox's real PostgreSQL: the engine's trigger writes one each time it
wakes (its sleep is bounded, so at least every 30 s), the health check's check reads them, week-old windows are
pruned, and a state database without the heartbeat table still escalates."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest

from tradeops.checks.base import Status
from tradeops.database.backup import drop_database
from tradeops.exceptions import IncidentError
from tradeops.incidents import heartbeats, store, triggers
from tradeops.incidents.checks import EscalationEngineRunning
from tradeops.incidents.triggers import EscalationEngineTrigger


def run_window(seconds: float) -> tuple[datetime, dict]:
    """Run the engine's trigger for a window of ``seconds``; returns the window's end and its final event."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)

    async def run():
        return [event async for event in EscalationEngineTrigger(until.isoformat()).run()]

    [event] = asyncio.run(run())
    return until, event.xcoms["return_value"]


def rows(dsn: str) -> list[dict]:
    with store.connect(dsn) as conn:
        return conn.execute("SELECT * FROM tradeops.engine_heartbeats ORDER BY last_beat_at").fetchall()


@pytest.fixture
def no_heartbeats(state_dsn):
    """No engine window has beaten yet on the shared state database (no other test runs an engine meanwhile)."""
    with store.connect(state_dsn) as conn:
        conn.execute("DELETE FROM tradeops.engine_heartbeats")
    return state_dsn


def test_the_engine_trigger_beats_each_time_it_wakes_and_at_least_every_max_sleep(
    no_heartbeats, airflow_connections, monkeypatch
):
    monkeypatch.setattr(triggers, "MAX_SLEEP_S", 0.5)  # 30 s in production: a beat at least that often
    until, result = run_window(3)

    [row] = rows(no_heartbeats)
    assert row["window_until"] == until
    assert row["triggerer"] == f"{socket.gethostname()}:{os.getpid()}"
    assert row["run_id"] is None  # run outside a triggerer: no task instance to name
    assert row["beats"] >= 5, "a beat when the window starts, then one per wake (every 0.5 s here, nothing due)"
    assert row["last_beat_at"] - row["started_at"] >= timedelta(seconds=2)
    assert result["window_end"] == until.isoformat()


def test_the_check_reads_the_trigger_s_heartbeats_and_fails_once_they_stop(
    no_heartbeats, demo_config, airflow_connections, monkeypatch
):
    check = EscalationEngineRunning()
    never = check.run(demo_config)
    assert never.status is Status.FAIL and never.summary.startswith("no heartbeat at all: ")

    monkeypatch.setattr(triggers, "MAX_SLEEP_S", 0.5)
    run_window(1)
    running = check.run(demo_config)
    assert running.status is Status.OK, running.summary
    assert running.details["age_s"] <= 2

    with store.connect(no_heartbeats) as conn:  # the window's last beat, four minutes ago
        conn.execute("UPDATE tradeops.engine_heartbeats SET last_beat_at = now() - interval '4 minutes'")
    stopped = check.run(demo_config)
    assert stopped.status is Status.FAIL
    assert stopped.summary.startswith("not running: last heartbeat 4m")


def test_a_window_resumed_by_another_triggerer_keeps_its_row(no_heartbeats):
    until = datetime.now(UTC) + timedelta(minutes=31)
    with store.connect(no_heartbeats) as conn:
        heartbeats.beat(conn, until, "triggerer-a:1", "scheduled__run")
        heartbeats.beat(conn, until, "triggerer-b:2")
    [row] = rows(no_heartbeats)
    assert (row["triggerer"], row["run_id"], row["beats"]) == ("triggerer-b:2", "scheduled__run", 2)


def test_a_window_prunes_the_heartbeats_of_windows_older_than_a_week(no_heartbeats, airflow_connections):
    with store.connect(no_heartbeats) as conn:
        for days in (8, 6):
            conn.execute(
                "INSERT INTO tradeops.engine_heartbeats (window_until, triggerer, started_at, last_beat_at) "
                "VALUES (now() - %s, 'old:1', now() - %s, now() - %s)",
                (timedelta(days=days), timedelta(days=days), timedelta(days=days)),
            )
    run_window(0.5)
    ages = sorted(round((datetime.now(UTC) - row["last_beat_at"]) / timedelta(days=1)) for row in rows(no_heartbeats))
    assert ages == [0, 6]


@pytest.fixture
def state_db_without_heartbeats(state_dsn, tmp_path):
    """A new database migrated with every migration but the heartbeats' (a deployment that skipped it)."""
    name = f"tradeops_noheartbeat_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(state_dsn, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    for path in store.MIGRATIONS.glob("*.sql"):
        if path.name != "004_engine_heartbeat.sql":
            shutil.copy(path, tmp_path / path.name)
    dsn = urlsplit(state_dsn)._replace(path=f"/{name}").geturl()
    store.migrate(dsn, tmp_path)
    yield dsn
    drop_database(state_dsn, name)


def test_without_the_heartbeat_table_the_engine_still_escalates_and_the_check_says_what_to_run(
    state_db_without_heartbeats, demo_config, monkeypatch, capsys
):
    from tradeops import connections

    async def the_unmigrated_database(conn_id: str) -> str:
        return state_db_without_heartbeats

    monkeypatch.setattr(connections, "apostgres_dsn", the_unmigrated_database)
    monkeypatch.setattr(connections, "postgres_dsn", lambda conn_id: state_db_without_heartbeats)
    monkeypatch.setattr(triggers, "MAX_SLEEP_S", 0.5)

    until, result = run_window(1)
    assert result["window_end"] == until.isoformat()
    logged = capsys.readouterr().out
    assert logged.count("no heartbeat recorded") == 1, "said once, not at every wake"
    assert "python -m tradeops.incidents migrate" in logged

    check = EscalationEngineRunning()
    with pytest.raises(IncidentError, match="python -m tradeops.incidents migrate"):
        check.collect(demo_config)
