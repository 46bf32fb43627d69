"""Retention against real PostgreSQL: exactly the expired rows go, nothing kept changes, interrupted runs resume,
and lock waits are bounded instead of queueing the platform's writers."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tests.tradeops.database.conftest import Writer
from tradeops.config.database import Maintenance, Table
from tradeops.database import retention
from tradeops.database.session import connect
from tradeops.exceptions import LockRetriesExhausted

AUDIT = Table(name="audit_log", time_column="created_at", retention_days=90, partitioning="daily")
LOGINS = Table(name="login_events", time_column="occurred_at", retention_days=60)


def settings(**overrides) -> Maintenance:
    return Maintenance(**{"batch_pause_ms": 0, **overrides})


def fingerprint(db, table: Table, cutoff: datetime, *, expired: bool = False) -> tuple[int, str | None]:
    """Row count and MD5 of every row on one side of the cutoff, whole rows in a fixed order."""
    op = sql.SQL("<") if expired else sql.SQL(">=")
    row = db.execute(
        sql.SQL(
            "SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY t::text)) AS digest FROM {} t WHERE {} {} %s"
        ).format(sql.Identifier(table.name), sql.Identifier(table.time_column), op),
        (cutoff,),
    ).fetchone()
    return row["n"], row["digest"]


def test_cutoff_is_midnight_utc_retention_days_ago():
    now = datetime(2026, 11, 23, 7, 45, tzinfo=UTC)
    assert retention.cutoff_for(AUDIT, now) == datetime(2026, 8, 25, tzinfo=UTC)
    assert retention.cutoff_for(AUDIT, now.replace(hour=23, minute=59)) == datetime(2026, 8, 25, tzinfo=UTC)


def test_partitioned_table_drops_exactly_the_expired_partitions_and_creates_upcoming_ones(platform_copy, db):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(AUDIT, now)
    kept_before = fingerprint(db, AUDIT, cutoff)
    expired_before, _ = fingerprint(db, AUDIT, cutoff, expired=True)
    expected_drops = [p.name for p in retention.partitions(db, "audit_log") if p.upper <= cutoff]
    assert expired_before > 0 and expected_drops
    wal_before = db.execute("SELECT pg_current_wal_lsn() AS lsn").fetchone()["lsn"]

    with connect(platform_copy, settings(partitions_ahead_days=10), application_name="test") as conn:
        result = retention.apply_retention(conn, AUDIT, settings(partitions_ahead_days=10), now=now)

    assert sorted(result.dropped_partitions) == sorted(expected_drops)
    assert fingerprint(db, AUDIT, cutoff, expired=True) == (0, None)
    assert fingerprint(db, AUDIT, cutoff) == kept_before
    remaining = retention.partitions(db, "audit_log")
    assert min(p.lower for p in remaining) == cutoff
    # The seed created 7 days ahead; 10 were asked for: days 8-10 are new, attached and usable.
    assert result.created_partitions == [
        retention.partition_name("audit_log", now.date() + timedelta(days=n)) for n in (8, 9, 10)
    ]
    db.execute(
        "INSERT INTO audit_log (created_at, actor, action, entity) VALUES (%s, 'test', 'x', 'y')",
        (now + timedelta(days=10),),
    )
    assert not db.execute(
        "SELECT 1 FROM pg_class WHERE relname LIKE 'audit_log_p%%' AND NOT relispartition AND relkind = 'r'"
    ).fetchall()  # nothing left detached
    wal = db.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s) AS bytes", (wal_before,)).fetchone()["bytes"]
    assert wal < 8 * 2**20, f"dropping partitions should write almost no WAL, wrote {wal} bytes"

    with connect(platform_copy, settings(partitions_ahead_days=10), application_name="test") as conn:
        again = retention.apply_retention(conn, AUDIT, settings(partitions_ahead_days=10), now=now)
    assert again.dropped_partitions == [] and again.created_partitions == []


def test_an_interrupted_detach_is_finalized_and_an_orphan_dropped(platform_copy, db):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(AUDIT, now)
    oldest, second = [p for p in retention.partitions(db, "audit_log") if p.upper <= cutoff][:2]
    # What a run killed between its steps leaves: one partition detached but not dropped, one marked.
    db.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            sql.Identifier(oldest.name), sql.Literal(retention.DETACHING.format("audit_log"))
        )
    )
    db.execute(sql.SQL("ALTER TABLE audit_log DETACH PARTITION {}").format(sql.Identifier(oldest.name)))
    kept_before = fingerprint(db, AUDIT, cutoff)

    with connect(platform_copy, settings(), application_name="test") as conn:
        result = retention.apply_retention(conn, AUDIT, settings(), now=now)

    assert oldest.name in result.dropped_partitions and second.name in result.dropped_partitions
    assert not db.execute("SELECT 1 FROM pg_class WHERE relname = %s", (oldest.name,)).fetchall()
    assert fingerprint(db, AUDIT, cutoff) == kept_before


def test_plain_table_deletes_exactly_the_expired_rows_in_bounded_batches(platform_copy, db, caplog):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(LOGINS, now)
    kept_before = fingerprint(db, LOGINS, cutoff)
    expired, _ = fingerprint(db, LOGINS, cutoff, expired=True)
    assert expired > 300

    caplog.set_level(logging.INFO, logger="airflow.task.tradeops.database")
    with connect(platform_copy, settings(batch_rows=100), application_name="test") as conn:
        result = retention.apply_retention(conn, LOGINS, settings(batch_rows=100), now=now)

    assert result.complete and result.deleted_rows == expired
    assert result.batches == -(-expired // 100)
    assert fingerprint(db, LOGINS, cutoff, expired=True) == (0, None)
    assert fingerprint(db, LOGINS, cutoff) == kept_before
    assert any("rows/s" in r.message and "ETA" in r.message for r in caplog.records)


def test_a_run_stops_at_its_time_budget_and_the_next_run_finishes(platform_copy, db):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(LOGINS, now)
    kept_before = fingerprint(db, LOGINS, cutoff)
    ticks = iter(range(10_000))  # a clock that advances one second per reading

    with connect(platform_copy, settings(batch_rows=100), application_name="test") as conn:
        first = retention.delete_in_batches(
            conn,
            LOGINS,
            cutoff,
            settings(batch_rows=100),
            timedelta(seconds=10),
            clock=lambda: float(next(ticks)),
            sleep=lambda seconds: None,
        )
        assert not first.complete and first.deleted_rows > 0
        assert fingerprint(db, LOGINS, cutoff, expired=True)[0] > 0
        second = retention.apply_retention(conn, LOGINS, settings(batch_rows=100), now=now)
    assert second.complete
    assert fingerprint(db, LOGINS, cutoff, expired=True) == (0, None)
    assert fingerprint(db, LOGINS, cutoff) == kept_before


def test_a_killed_connection_loses_nothing_kept_and_the_next_run_finishes_the_job(platform_copy, db):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(LOGINS, now)
    kept_before = fingerprint(db, LOGINS, cutoff)
    slow = settings(batch_rows=20, batch_pause_ms=30)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with connect(platform_copy, slow, application_name="tradeops-retention-under-test") as conn:
                retention.delete_in_batches(conn, LOGINS, cutoff, slow, timedelta(minutes=5))
        except BaseException as err:  # the test inspects it
            failure.append(err)

    worker = threading.Thread(target=run)
    worker.start()
    expired_at_start = fingerprint(db, LOGINS, cutoff, expired=True)[0]
    deadline = time.monotonic() + 20
    while fingerprint(db, LOGINS, cutoff, expired=True)[0] > expired_at_start - 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = db.execute(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
        "WHERE application_name = 'tradeops-retention-under-test'"
    ).fetchall()
    worker.join(20)
    assert killed and failure and isinstance(failure[0], psycopg.OperationalError)
    left = fingerprint(db, LOGINS, cutoff, expired=True)[0]
    assert 0 < left < expired_at_start
    assert fingerprint(db, LOGINS, cutoff) == kept_before

    with connect(platform_copy, settings(), application_name="test") as conn:
        result = retention.apply_retention(conn, LOGINS, settings(), now=now)
    assert result.complete and result.deleted_rows == left
    assert fingerprint(db, LOGINS, cutoff, expired=True) == (0, None)
    assert fingerprint(db, LOGINS, cutoff) == kept_before


def test_a_conflicting_lock_makes_the_step_give_up_within_its_timeouts(platform_copy, db, caplog):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(LOGINS, now)
    expired = fingerprint(db, LOGINS, cutoff, expired=True)
    short = settings(lock_timeout_ms=200, lock_retries=2)
    with psycopg.connect(platform_copy) as holder:  # an open transaction holding a lock DELETE conflicts with
        holder.execute("LOCK TABLE login_events IN SHARE MODE")
        caplog.set_level(logging.WARNING, logger="airflow.task.tradeops.database")
        started = time.monotonic()
        with connect(platform_copy, short, application_name="test") as conn:
            with pytest.raises(LockRetriesExhausted, match="3 attempts"):
                retention.delete_in_batches(conn, LOGINS, cutoff, short, timedelta(minutes=5))
            assert conn.execute("SHOW lock_timeout").fetchone()["lock_timeout"] == "200ms"
            assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "30s"
        elapsed = time.monotonic() - started
        holder.rollback()
    # 3 waits of 200 ms and backoffs of 0.5 s + 1 s: bounded, never an open-ended wait in the lock queue.
    assert 2.0 <= elapsed < 5.0
    assert sum("lock not available" in r.message for r in caplog.records) == 2
    assert fingerprint(db, LOGINS, cutoff, expired=True) == expired


def test_dropping_partitions_behind_a_long_reader_never_stalls_writers(platform_copy, db):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(AUDIT, now)
    oldest = next(p for p in retention.partitions(db, "audit_log") if p.upper <= cutoff)
    patient = settings(lock_timeout_ms=200, lock_retries=8)
    writer = Writer(platform_copy)
    writer.start()
    done: list[object] = []
    with psycopg.connect(platform_copy) as reader:  # a report reading the oldest partition, transaction left open
        reader.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(oldest.name)))

        def run() -> None:
            with connect(platform_copy, patient, application_name="test") as conn:
                done.append(retention.apply_retention(conn, AUDIT, patient, now=now))

        step = threading.Thread(target=run)
        step.start()
        time.sleep(2.5)
        assert not done, "the drop must wait for the reader (it gives up and retries, never blocks writers)"
        reader.rollback()
    step.join(30)
    latencies = writer.finish()
    assert done and oldest.name in done[0].dropped_partitions
    assert len(latencies) > 50
    assert max(latencies) < 0.5, f"a writer waited {max(latencies):.2f} s"


def test_batches_refuse_a_partitioned_table_whose_config_forgot_to_say_so(platform_copy):
    unmarked = Table(name="audit_log", time_column="created_at", retention_days=90)
    with (
        connect(platform_copy, settings(), application_name="test") as conn,
        pytest.raises(ValueError, match="audit_log is partitioned or has child tables"),
    ):
        retention.apply_retention(conn, unmarked, settings())


def test_a_batch_cancelled_by_statement_timeout_is_retried_at_half_the_size(platform_copy, db, caplog):
    now = datetime.now(UTC)
    cutoff = retention.cutoff_for(LOGINS, now)
    kept_before = fingerprint(db, LOGINS, cutoff)
    expired, _ = fingerprint(db, LOGINS, cutoff, expired=True)
    # Every deleted row costs 1 ms (a trigger, standing in for a slow disk or heavy foreign keys): a batch of 1,600
    # rows needs 1.6 s, past the 400 ms statement_timeout.
    db.execute(
        "CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.001); RETURN OLD; END $$"
    )
    db.execute("CREATE TRIGGER slow_delete BEFORE DELETE ON login_events FOR EACH ROW EXECUTE FUNCTION slow_delete()")
    slow = settings(batch_rows=1600, statement_timeout_ms=400)
    caplog.set_level(logging.WARNING, logger="airflow.task.tradeops.database")

    with connect(platform_copy, slow, application_name="test") as conn:
        result = retention.delete_in_batches(conn, LOGINS, cutoff, slow, timedelta(minutes=5))

    halvings = [r.message for r in caplog.records if "hit statement_timeout" in r.message]
    assert halvings[:2] == [
        f"login_events: a batch hit statement_timeout; continuing with {n} rows per batch" for n in (800, 400)
    ]
    assert result.complete and result.deleted_rows == expired and result.slowest_batch_s < 0.4
    assert fingerprint(db, LOGINS, cutoff, expired=True) == (0, None)
    assert fingerprint(db, LOGINS, cutoff) == kept_before
