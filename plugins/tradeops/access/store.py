"""What the access review reads from the platform database (user activity) and keeps in TradeOps' state database
(each review's snapshot, each approved removal)."""

from __future__ import annotations

import json
from datetime import datetime

from tradeops.access.review import Entry, UserActivity
from tradeops.incidents import store

ACTIVITY = """
SELECT u.username, u.created_at, u.is_active,
       greatest(
           (SELECT max(occurred_at) FROM login_events e WHERE e.username = u.username AND e.success),
           (SELECT max(created_at) FROM audit_log a WHERE a.actor = u.username)
       ) AS last_activity
FROM users u ORDER BY u.username
"""


def user_activity(platform_dsn: str, application_name: str) -> list[UserActivity]:
    """Every platform user and their last successful login or audited action."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(platform_dsn, row_factory=dict_row, application_name=application_name) as conn:
        return [
            UserActivity(row["username"], row["created_at"], row["is_active"], row["last_activity"])
            for row in conn.execute(ACTIVITY)
        ]


def last_snapshot(dsn: str, before_run: str) -> tuple[datetime, list[Entry]] | None:
    """The latest review's matrix other than ``before_run``'s own (a retry must not diff against itself)."""
    with store.connect(dsn) as conn:
        row = conn.execute(
            "SELECT taken_at, entries FROM tradeops.access_snapshots WHERE run_id <> %s ORDER BY taken_at DESC LIMIT 1",
            (before_run,),
        ).fetchone()
    if row is None:
        return None
    return row["taken_at"], [Entry(**{**e, "verbs": tuple(e["verbs"])}) for e in row["entries"]]


def save_snapshot(dsn: str, run_id: str, taken_at: datetime, entries: list[Entry]) -> None:
    payload = json.dumps([e.__dict__ for e in entries])
    with store.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO tradeops.access_snapshots (run_id, taken_at, entries) VALUES (%s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET taken_at = EXCLUDED.taken_at, entries = EXCLUDED.entries",
            (run_id, taken_at, payload),
        )


def record_removal(
    dsn: str, run_id: str, binding: str, reason: str, approved_by: str, at: datetime, outcome: str
) -> bool:
    """Record one approved removal; False when this run recorded it already (a retry applies nothing twice)."""
    with store.connect(dsn) as conn:
        row = conn.execute(
            "INSERT INTO tradeops.access_removals (run_id, binding, reason, approved_by, applied_at, outcome) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, binding) DO NOTHING RETURNING id",
            (run_id, binding, reason, approved_by, at, outcome),
        ).fetchone()
    return row is not None


def removals_of(dsn: str, run_id: str) -> list[dict]:
    with store.connect(dsn) as conn:
        return conn.execute(
            "SELECT binding, reason, approved_by, applied_at, outcome FROM tradeops.access_removals "
            "WHERE run_id = %s ORDER BY id",
            (run_id,),
        ).fetchall()
