"""Statistics, indexes and dead tuples, kept in shape without ever taking a lock that stops the platform.

``ANALYZE`` and ``VACUUM (ANALYZE)`` run alongside writers. Indexes are rebuilt with ``REINDEX INDEX CONCURRENTLY``
and only when their estimated bloat is past the configured threshold; a concurrent rebuild that fails leaves an
invalid ``*_ccnew`` index behind, which is dropped (``DROP INDEX CONCURRENTLY``) before and after every attempt.
Table rewrites (the FULL option of vacuum, ``CLUSTER``) and database-wide reindexes are never issued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from psycopg import sql

from tradeops.config.database import Maintenance
from tradeops.database.session import Session, with_lock_retries

log = logging.getLogger("airflow.task.tradeops.database")

# Leaf pages needed for the index's live tuples at its fillfactor, from the planner's statistics (the estimate of
# pgsql-bloat-estimation, without pgstattuple): tuple = 8-byte header + key width rounded up to 8, + 4-byte line
# pointer; 8192-byte pages less 24 (page header) and 16 (btree special space). It assumes one index tuple per row,
# so an index that btree deduplication packs (few distinct keys) looks unbloated: it errs towards not rebuilding.
INDEX_BLOAT = """
WITH idx AS (
    SELECT i.indexrelid, i.indrelid, ci.relname AS index_name, ci.relpages, ci.reltuples,
           coalesce((SELECT substring(opt FROM 'fillfactor=([0-9]+)')::int
                     FROM unnest(ci.reloptions) AS opt WHERE opt LIKE 'fillfactor=%%'), 90) AS fillfactor,
           string_to_array(i.indkey::text, ' ')::int[] AS keys
    FROM pg_index i
    JOIN pg_class ci ON ci.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ci.relam AND am.amname = 'btree'
    WHERE i.indrelid = %(table)s::regclass AND i.indisvalid AND ci.relkind = 'i'
), widths AS (
    SELECT idx.indexrelid, sum(coalesce(s.avg_width, 1024) * (1 - coalesce(s.null_frac, 0))) AS key_width
    FROM idx
    CROSS JOIN LATERAL unnest(idx.keys) AS k(attnum)
    JOIN pg_class ct ON ct.oid = idx.indrelid
    JOIN pg_namespace n ON n.oid = ct.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = idx.indrelid AND a.attnum = k.attnum
    LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = a.attname
    GROUP BY idx.indexrelid
)
SELECT idx.index_name, pg_relation_size(idx.indexrelid) AS bytes, idx.relpages AS pages,
       1 + ceil(idx.reltuples * (8 + ceil(w.key_width / 8) * 8 + 4)
                / ((current_setting('block_size')::int - 40) * idx.fillfactor / 100.0)) AS expected_pages
FROM idx JOIN widths w USING (indexrelid)
ORDER BY idx.index_name
"""

INVALID_INDEXES = """
SELECT ci.relname AS index_name, ct.relname AS table_name
FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
WHERE NOT i.indisvalid AND ct.relname = %(table)s AND ci.relname ~ '_cc(new|old)[0-9]*$'
"""

DEAD_TUPLES = """
SELECT n_live_tup AS live, n_dead_tup AS dead, last_autovacuum, last_vacuum
FROM pg_stat_user_tables WHERE relid = %(table)s::regclass
"""


@dataclass
class IndexBloat:
    index_name: str
    bytes: int
    pages: int
    expected_pages: int

    @property
    def bloat_pct(self) -> float:
        return round(max(0.0, 1 - self.expected_pages / self.pages) * 100, 1) if self.pages else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "bloat_pct": self.bloat_pct}


def _unbounded_statements(conn: Session) -> None:
    """Concurrent rebuilds and plain vacuums run alongside writers, so only their lock waits are bounded: a big
    table's rebuild may take longer than ``statement_timeout``, and cancelling it would waste the work."""
    conn.execute("SET statement_timeout = 0")


def _set_lock_timeout(conn: Session, milliseconds: int) -> None:
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(milliseconds)))


def analyze(conn: Session, table: str, settings: Maintenance, sleep: Callable[[float], None] = time.sleep) -> None:
    with_lock_retries(
        partial(conn.execute, sql.SQL("ANALYZE {}").format(sql.Identifier(table))), settings, f"analyze {table}", sleep
    )


def index_bloat(conn: Session, table: str) -> list[IndexBloat]:
    return [
        IndexBloat(r["index_name"], r["bytes"], r["pages"], int(r["expected_pages"]))
        for r in conn.execute(INDEX_BLOAT, {"table": table}).fetchall()
    ]


def drop_invalid_indexes(
    conn: Session, table: str, settings: Maintenance, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Drop what failed concurrent rebuilds of ``table``'s indexes left behind: invalid ``*_ccnew*`` (a rebuild
    that stopped) and ``*_ccold*`` (one that stopped while dropping the old index) indexes."""
    dropped = []
    for row in conn.execute(INVALID_INDEXES, {"table": table}).fetchall():
        drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row["index_name"]))
        with_lock_retries(partial(conn.execute, drop), settings, f"drop invalid index {row['index_name']}", sleep)
        log.warning("%s: dropped invalid index %s left by a failed concurrent reindex", table, row["index_name"])
        dropped.append(row["index_name"])
    return dropped


def reindex_bloated(
    conn: Session, table: str, settings: Maintenance, sleep: Callable[[float], None] = time.sleep
) -> dict:
    """``REINDEX INDEX CONCURRENTLY`` each index of ``table`` past both the bloat and the size thresholds.
    ``conn`` must be in autocommit (a concurrent reindex cannot run in a transaction block). Its lock waits are
    bounded by ``reindex_lock_timeout_ms``: they queue no writer (only ``SHARE UPDATE EXCLUSIVE`` and waits for
    older transactions), and a rebuild abandoned late throws its work away. Every attempt starts by dropping the
    invalid index an earlier attempt left, and the last failure cleans up after itself."""
    _unbounded_statements(conn)
    report: dict[str, Any] = {"table": table, "dropped_invalid": [], "indexes": [], "reindexed": []}

    def clean() -> None:
        report["dropped_invalid"] += drop_invalid_indexes(conn, table, settings, sleep)

    clean()
    for index in index_bloat(conn, table):
        report["indexes"].append(index.to_dict())
        size_mb = index.bytes / 2**20
        if index.bloat_pct < settings.reindex_min_bloat_pct or size_mb < settings.reindex_min_size_mb:
            continue
        log.info(
            "%s: %s is %.1f MB with ~%s%% bloat; rebuilding concurrently",
            table,
            index.index_name,
            size_mb,
            index.bloat_pct,
        )
        started = time.monotonic()

        def rebuild(name: str = index.index_name) -> None:
            clean()
            _set_lock_timeout(conn, settings.reindex_lock_timeout_ms)
            try:
                conn.execute(sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(name)))
            finally:
                _set_lock_timeout(conn, settings.lock_timeout_ms)

        try:
            with_lock_retries(rebuild, settings, f"reindex {index.index_name}", sleep)
        finally:
            clean()
        [size] = conn.execute("SELECT pg_relation_size(%s::regclass) AS bytes", (index.index_name,)).fetchall()
        report["reindexed"].append(
            {
                "index": index.index_name,
                "bytes_before": index.bytes,
                "bytes_after": size["bytes"],
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    return report


def vacuum_if_needed(
    conn: Session, table: str, settings: Maintenance, sleep: Callable[[float], None] = time.sleep
) -> dict:
    """Plain ``VACUUM (ANALYZE)`` when dead tuples are past both thresholds (never ``FULL``)."""
    stats = conn.execute(DEAD_TUPLES, {"table": table}).fetchone() or {"live": 0, "dead": 0}
    live, dead = stats["live"] or 0, stats["dead"] or 0
    dead_pct = round(dead / (live + dead) * 100, 1) if live + dead else 0.0
    report: dict[str, Any] = {
        "table": table,
        "live_tuples": live,
        "dead_tuples": dead,
        "dead_pct": dead_pct,
        "vacuumed": False,
    }
    if dead >= settings.vacuum_min_dead_tuples and dead_pct >= settings.vacuum_min_dead_pct:
        started = time.monotonic()
        _unbounded_statements(conn)
        with_lock_retries(
            partial(conn.execute, sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table))),
            settings,
            f"vacuum {table}",
            sleep,
        )
        report.update(vacuumed=True, seconds=round(time.monotonic() - started, 2))
        log.info("%s: vacuumed (%s dead tuples, %s%%)", table, dead, dead_pct)
    return report
