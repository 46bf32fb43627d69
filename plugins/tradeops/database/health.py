"""Health of the live database: long-running queries, sessions blocked on locks (and by whom), connections
against the limit, transaction-ID wraparound age. Each is a cheap query (a few ms, safe every minute) and a pure
evaluation against the config into a :class:`CheckResult`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tradeops.checks.base import CheckResult, Status
from tradeops.config import TradeOpsConfig

if TYPE_CHECKING:  # the DAG files build their check tasks from this module: no psycopg at parse time
    import psycopg

# Queries and transactions (an idle-in-transaction session holds back vacuum just the same), except TradeOps' own
# maintenance sessions, whose long concurrent rebuilds and vacuums are expected and bounded where they can block.
LONG_QUERIES = """
SELECT pid, usename AS "user", application_name, client_addr::text, state,
       round(extract(epoch FROM now() - coalesce(xact_start, query_start)))::int AS seconds, query
FROM pg_stat_activity
WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND application_name NOT LIKE 'tradeops-%%'
  AND now() - coalesce(xact_start, query_start) > %(after)s
ORDER BY coalesce(xact_start, query_start)
"""

# pg_blocking_pids() honours lock-mode compatibility; the classic self-join over pg_locks reports false pairs.
BLOCKED_SESSIONS = """
SELECT waiting.pid, waiting.usename AS "user", waiting.application_name,
       round(extract(epoch FROM now() - waiting.query_start))::int AS waiting_seconds,
       waiting.query, pg_blocking_pids(waiting.pid) AS blocked_by,
       (SELECT json_agg(json_build_object('pid', b.pid, 'user', b.usename, 'state', b.state,
                                          'application_name', b.application_name, 'query', b.query))
        FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(waiting.pid))) AS blockers
FROM pg_stat_activity waiting
WHERE waiting.wait_event_type = 'Lock'
ORDER BY waiting.query_start
"""

CONNECTIONS = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
"""

WRAPAROUND = """
SELECT datname AS database, age(datfrozenxid) AS xid_age FROM pg_database WHERE datallowconn ORDER BY 2 DESC
"""


_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'|\$([A-Za-z_]*)\$.*?\$\1\$", re.DOTALL)


def redact(query: str | None, limit: int = 200) -> str:
    """A query's text with every string literal replaced by ``'?'`` (a literal may be a password or client data),
    cut to ``limit`` characters: what reaches XCom, incidents and Slack."""
    return _STRING_LITERAL.sub("'?'", query or "")[:limit]


@dataclass(frozen=True)
class DatabaseCheck:
    name: str
    title: str
    query: str
    evaluate: Callable[[list[dict], TradeOpsConfig], CheckResult]

    def collect(self, conn: psycopg.Connection, config: TradeOpsConfig) -> list[dict]:
        params = {"after": config.database.maintenance.long_query_after}
        rows = conn.execute(self.query, params).fetchall()
        for row in rows:
            if "query" in row:
                row["query"] = redact(row["query"])
            for blocker in row.get("blockers") or []:
                blocker["query"] = redact(blocker["query"])
        return rows

    def run(self, conn: psycopg.Connection, config: TradeOpsConfig) -> CheckResult:
        return self.evaluate(self.collect(conn, config), config)


def _result(name: str, title: str, status: Status, summary: str, **details) -> CheckResult:
    return CheckResult(name, title, status, summary, details)


def evaluate_long_queries(rows: list[dict], config: TradeOpsConfig) -> CheckResult:
    after = config.database.maintenance.long_query_after
    if not rows:
        return _result("long_queries", "Long-running queries", Status.OK, f"no query running longer than {after}")
    worst = rows[0]
    return _result("long_queries", "Long-running queries", Status.FAIL,
                   f"{len(rows)} running longer than {after}; longest: pid {worst['pid']} ({worst['user']}, "
                   f"{worst['seconds']} s)", queries=rows)


def evaluate_blocked_sessions(rows: list[dict], config: TradeOpsConfig) -> CheckResult:
    if not rows:
        return _result("blocked_sessions", "Sessions blocked on locks", Status.OK, "no session waiting on a lock")
    roots = sorted({pid for row in rows for pid in row["blocked_by"]} - {row["pid"] for row in rows})
    return _result("blocked_sessions", "Sessions blocked on locks", Status.FAIL,
                   f"{len(rows)} sessions waiting on locks; at the head of the chain: pid "
                   f"{', '.join(map(str, roots)) or '(a cycle)'}", sessions=rows, root_blockers=roots)


def evaluate_connections(rows: list[dict], config: TradeOpsConfig) -> CheckResult:
    row = rows[0]
    usable = row["max_connections"] - row["reserved"]
    pct = round(row["used"] / usable * 100, 1) if usable else 100.0
    status = (Status.FAIL if pct >= config.thresholds.db_connections_fail_pct
              else Status.WARN if pct >= config.thresholds.db_connections_warn_pct else Status.OK)
    return _result("connections", "Connections vs limit", status,
                   f"{row['used']} of {usable} usable connections ({pct}%)", used=row["used"], usable=usable, pct=pct)


def evaluate_wraparound(rows: list[dict], config: TradeOpsConfig) -> CheckResult:
    settings = config.database.maintenance
    oldest = rows[0]
    status = (Status.FAIL if oldest["xid_age"] >= settings.xid_age_fail
              else Status.WARN if oldest["xid_age"] >= settings.xid_age_warn else Status.OK)
    return _result("wraparound", "Transaction-ID wraparound", status,
                   f"oldest unfrozen XID age {oldest['xid_age']:,} in {oldest['database']} "
                   f"(wraparound at 2,147,483,647; fails at {settings.xid_age_fail:,})", databases=rows)


DATABASE_CHECKS = {check.name: check for check in (
    DatabaseCheck("long_queries", "Long-running queries", LONG_QUERIES, evaluate_long_queries),
    DatabaseCheck("blocked_sessions", "Sessions blocked on locks", BLOCKED_SESSIONS, evaluate_blocked_sessions),
    DatabaseCheck("connections", "Connections vs limit", CONNECTIONS, evaluate_connections),
    DatabaseCheck("wraparound", "Transaction-ID wraparound", WRAPAROUND, evaluate_wraparound),
)}
