"""The size report: every table (partitions rolled up to their root with ``pg_partition_root``) and index, with
its growth since the previous report, which is stored in TradeOps' state database for trends."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import DictRow, dict_row

SIZES = """
WITH rels AS (
    SELECT c.oid, c.relkind, coalesce(pg_partition_root(c.oid), c.oid) AS root, c.reltuples
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 'p', 'I')
)
SELECT root::regclass::text AS relation, 'table' AS kind, root::regclass::text AS table_name,
       sum(pg_table_size(oid))::bigint AS bytes, sum(greatest(reltuples, 0))::bigint AS row_estimate
FROM rels WHERE relkind IN ('r', 'p') GROUP BY root
UNION ALL
SELECT coalesce(pg_partition_root(i.indexrelid), i.indexrelid)::regclass::text, 'index',
       coalesce(pg_partition_root(i.indrelid), i.indrelid)::regclass::text,
       sum(pg_relation_size(i.indexrelid))::bigint, NULL
FROM rels JOIN pg_index i ON i.indexrelid = rels.oid
WHERE rels.relkind = 'i'
GROUP BY 1, 2, 3
ORDER BY bytes DESC
"""

PREVIOUS = """
SELECT DISTINCT ON (relation) relation, bytes, captured_at FROM tradeops.relation_sizes
WHERE database = %s AND captured_at < %s ORDER BY relation, captured_at DESC
"""


def measure(conn: psycopg.Connection[DictRow]) -> list[DictRow]:
    return conn.execute(SIZES).fetchall()


def record(state_dsn: str, database: str, sizes: list[dict], captured_at: datetime) -> list[dict]:
    """Store this report in the state database ``state_dsn`` points at (its schema migrated by the deployment) and
    return it with each relation's growth since the previous one."""
    with psycopg.connect(
        state_dsn,
        row_factory=dict_row,
        connect_timeout=10,
        application_name="tradeops-size-report",
        options="-c timezone=UTC",
    ) as state:
        previous = {row["relation"]: row for row in state.execute(PREVIOUS, (database, captured_at)).fetchall()}
        with state.transaction(), state.cursor() as cur:
            cur.executemany(
                "INSERT INTO tradeops.relation_sizes (captured_at, database, relation, kind, table_name, bytes, "
                "row_estimate) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [
                    (captured_at, database, r["relation"], r["kind"], r["table_name"], r["bytes"], r["row_estimate"])
                    for r in sizes
                ],
            )
    report = []
    for row in sizes:
        before = previous.get(row["relation"])
        report.append(
            {
                **row,
                "growth_bytes": row["bytes"] - before["bytes"] if before else None,
                "previous_at": before["captured_at"].isoformat() if before else None,
            }
        )
    return report
