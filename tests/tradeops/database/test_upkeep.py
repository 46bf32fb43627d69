"""Index and vacuum upkeep against real PostgreSQL: only bloated indexes are rebuilt, concurrently; a failed rebuild
leaves no invalid index behind; vacuum runs only past its thresholds."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.tradeops.database.conftest import Writer
from tradeops.config.database import Maintenance
from tradeops.database import upkeep
from tradeops.database.session import connect
from tradeops.exceptions import LockRetriesExhausted

SETTINGS = Maintenance(
    reindex_min_bloat_pct=50, reindex_min_size_mb=0, vacuum_min_dead_pct=10, vacuum_min_dead_tuples=100
)


def bloat_trades(db) -> None:
    """Scattered deletes leave trades' index pages four-fifths empty; vacuum frees the heap, not the index pages."""
    db.execute("DELETE FROM trades WHERE id % 5 <> 0")
    db.execute("VACUUM trades")
    db.execute("ANALYZE trades")


def invalid_indexes(db) -> list[str]:
    return [
        r["relname"]
        for r in db.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
        )
    ]


def test_the_bloat_estimate_tells_a_bloated_index_from_a_fresh_one(db):
    db.execute("ANALYZE")
    fresh = {i.index_name: i.bloat_pct for i in upkeep.index_bloat(db, "trades")}
    assert set(fresh) == {"trades_pkey", "trades_trade_ts_idx", "trades_symbol_trade_ts_idx", "trades_strategy_idx"}
    assert max(fresh.values()) < 50, fresh
    bloat_trades(db)
    bloated = {i.index_name: i.bloat_pct for i in upkeep.index_bloat(db, "trades")}
    # trades_strategy_idx has two distinct keys: btree deduplication packs it so tightly that the estimate (which
    # assumes one tuple per row) sees no bloat. The estimate errs towards not rebuilding, never the other way.
    assert {name: pct > 60 for name, pct in bloated.items()} == {
        "trades_pkey": True,
        "trades_trade_ts_idx": True,
        "trades_symbol_trade_ts_idx": True,
        "trades_strategy_idx": False,
    }, bloated


def test_reindex_rebuilds_only_bloated_indexes_concurrently_and_shrinks_them(platform_copy, db):
    bloat_trades(db)
    db.execute("ANALYZE positions")
    oids_before = {
        r["relname"]: r["oid"]
        for r in db.execute("SELECT relname, oid FROM pg_class WHERE relname IN ('positions_pkey', 'trades_pkey')")
    }
    writer = Writer(platform_copy)
    writer.start()
    with connect(platform_copy, SETTINGS, application_name="test") as conn:
        trades = upkeep.reindex_bloated(conn, "trades", SETTINGS)
        positions = upkeep.reindex_bloated(conn, "positions", SETTINGS)
    latencies = writer.finish()
    assert {r["index"] for r in trades["reindexed"]} == {
        "trades_pkey",
        "trades_trade_ts_idx",
        "trades_symbol_trade_ts_idx",
    }
    assert all(r["bytes_after"] < r["bytes_before"] / 2 for r in trades["reindexed"]), trades["reindexed"]
    assert positions["reindexed"] == []
    oids_after = {
        r["relname"]: r["oid"]
        for r in db.execute("SELECT relname, oid FROM pg_class WHERE relname IN ('positions_pkey', 'trades_pkey')")
    }
    assert oids_after["positions_pkey"] == oids_before["positions_pkey"]
    assert oids_after["trades_pkey"] != oids_before["trades_pkey"]  # a concurrent rebuild swaps in a new index
    assert invalid_indexes(db) == []
    assert max(latencies) < 0.5


def test_a_failed_concurrent_reindex_leaves_no_invalid_index(platform_copy, db):
    bloat_trades(db)
    impatient = SETTINGS.model_copy(update={"reindex_lock_timeout_ms": 300, "lock_retries": 1})
    # A transaction holding an old snapshot (reading another table): REINDEX CONCURRENTLY must wait for it, and gives
    # up at its lock timeout with its new index half built (invalid), twice. Nothing is locked on trades itself.
    with psycopg.connect(platform_copy) as old_snapshot:
        old_snapshot.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old_snapshot.execute("SELECT count(*) FROM positions")
        with connect(platform_copy, impatient, application_name="test") as conn, pytest.raises(LockRetriesExhausted):
            upkeep.reindex_bloated(conn, "trades", impatient)
        assert invalid_indexes(db) == []
        old_snapshot.rollback()
    with connect(platform_copy, impatient, application_name="test") as conn:
        report = upkeep.reindex_bloated(conn, "trades", impatient)
    assert report["reindexed"] and invalid_indexes(db) == []


def test_invalid_leftovers_of_an_earlier_crash_are_dropped_first(platform_copy, db):
    # A genuinely invalid index, as a failed concurrent build leaves one: a unique index over duplicated rows.
    db.execute(
        "INSERT INTO trades (trade_ts, account, symbol, side, qty, price, strategy) "
        "SELECT trade_ts, account, symbol, side, qty, price, strategy FROM trades LIMIT 1"
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY trades_strategy_idx_ccnew ON trades (trade_ts, symbol, qty)")
    assert invalid_indexes(db) == ["trades_strategy_idx_ccnew"]
    with connect(platform_copy, SETTINGS, application_name="test") as conn:
        report = upkeep.reindex_bloated(conn, "trades", SETTINGS)
    assert report["dropped_invalid"] == ["trades_strategy_idx_ccnew"]
    assert invalid_indexes(db) == []


def test_vacuum_runs_only_past_the_dead_tuple_thresholds(platform_copy, db):
    with connect(platform_copy, SETTINGS, application_name="test") as conn:
        db.execute("VACUUM ANALYZE market_data")
        clean = upkeep.vacuum_if_needed(conn, "market_data", SETTINGS)
        assert clean["vacuumed"] is False
        db.execute("DELETE FROM market_data WHERE ts < (SELECT min(ts) + (max(ts) - min(ts)) / 3 FROM market_data)")
        db.execute("SELECT pg_stat_force_next_flush()")
        deadline = time.monotonic() + 10  # the statistics reach pg_stat_user_tables asynchronously
        while (
            conn.execute(upkeep.DEAD_TUPLES, {"table": "market_data"}).fetchone()["dead"] < 100
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        dirty = upkeep.vacuum_if_needed(conn, "market_data", SETTINGS)
    assert dirty["vacuumed"] is True and dirty["dead_pct"] >= 10
    assert (
        db.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'market_data'").fetchone()["n_dead_tup"]
        < dirty["dead_tuples"]
    )
