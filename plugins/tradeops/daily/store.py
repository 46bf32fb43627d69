"""``tradeops.daily_metrics`` in the state database (created by migration 005): one row per session, replaced by a
re-run of the same session, never duplicated."""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg.types.json import Jsonb

from tradeops.incidents import store

COLUMNS = (
    "session_date",
    "exchange",
    "trades",
    "contracts",
    "notional",
    "realized_pnl",
    "positions_closed",
    "positions_open",
    "backup_bytes",
    "log_archive_bytes",
    "performance",
    "run_id",
)

UPSERT = f"""
INSERT INTO tradeops.daily_metrics ({", ".join(COLUMNS)}, recorded_at)
VALUES ({", ".join(f"%({c})s" for c in COLUMNS)}, now())
ON CONFLICT (session_date) DO UPDATE SET
{", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "session_date")}, recorded_at = now()
"""


def upsert(dsn: str, row: dict[str, Any]) -> None:
    """Write the session's row (every column of :data:`COLUMNS`), replacing the one a former run wrote."""
    missing = set(COLUMNS) - set(row)
    if missing:
        raise ValueError(f"a daily_metrics row needs {sorted(missing)}")
    with store.connect(dsn) as conn:
        conn.execute(UPSERT, {**row, "performance": Jsonb(row["performance"])})


def read(dsn: str, session_date: date) -> dict[str, Any] | None:
    """The session's row, or None."""
    with store.connect(dsn) as conn:
        return conn.execute("SELECT * FROM tradeops.daily_metrics WHERE session_date = %s", (session_date,)).fetchone()
