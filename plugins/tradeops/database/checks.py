"""Checks of the live platform database: long-running queries, sessions blocked on locks (and by whom), connections
against the limit, transaction-ID wraparound age, and the backup.

Each query check is one cheap query (a few ms, safe every minute) read through a session on
``connections.platform_db`` with the maintenance settings, named ``tradeops-check:<name>`` in ``pg_stat_activity``,
and a pure evaluation against the config. a DAG runs one as
``CheckOperator(task_id="db_long_queries", check=LongQueries())``.

The backup is a check too (:class:`BackupCheck`, run by :class:`~tradeops.database.operators.BackupOperator`): its
collection takes, verifies and publishes the backup, so a failed backup is reported like a failed check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tradeops.checks.base import Check, CheckResult, Finding, Status

if TYPE_CHECKING:  # the DAG files build their check tasks from this module: no psycopg at parse time
    from tradeops.config import TradeOpsConfig
    from tradeops.database.session import Session

Row = dict[str, Any]
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'|\$([A-Za-z_]*)\$.*?\$\1\$", re.DOTALL)


def redact(query: str | None, limit: int = 200) -> str:
    """A query's text with every string literal replaced by ``'?'`` (a literal may be a password or client data),
    cut to ``limit`` characters: what reaches XCom, incidents and Slack."""
    return _STRING_LITERAL.sub("'?'", query or "")[:limit]


class DatabaseQueryCheck(Check[list[Row]]):
    """A check that is one query on the platform database; ``query`` may use the :meth:`parameters`."""

    query: ClassVar[str]
    dependency = "platform_db"

    def collect(self, config: TradeOpsConfig) -> list[Row]:
        from tradeops.connections import postgres_dsn
        from tradeops.database.session import connect

        with connect(
            postgres_dsn(config.connections.platform_db),
            config.database.maintenance,
            application_name=f"tradeops-check:{self.name}",
        ) as conn:
            return self.read(conn, config)

    def read(self, conn: Session, config: TradeOpsConfig) -> list[Row]:
        """The query's rows (``conn`` returns dicts), every query text in them redacted."""
        rows = conn.execute(self.query, self.parameters(config)).fetchall()
        for row in rows:
            if "query" in row:
                row["query"] = redact(row["query"])
            for blocker in row.get("blockers") or []:
                blocker["query"] = redact(blocker["query"])
        return rows

    def parameters(self, config: TradeOpsConfig) -> dict[str, Any]:
        return {}


class LongQueries(DatabaseQueryCheck):
    """Queries and transactions running longer than ``long_query_after`` (an idle-in-transaction session holds back
    vacuum just the same), except TradeOps' own maintenance sessions, whose long concurrent rebuilds and vacuums are
    expected and bounded where they can block."""

    name = "long_queries"
    title = "Long-running queries"
    action = (
        "Ask each query's owner (user, application) what it is; cancel one that should not be running with "
        "pg_cancel_backend(pid), and end its session with pg_terminate_backend(pid) if it does not stop."
    )
    query = """
SELECT pid, usename AS "user", application_name, client_addr::text, state,
       round(extract(epoch FROM now() - coalesce(xact_start, query_start)))::int AS seconds, query
FROM pg_stat_activity
WHERE state <> 'idle' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND application_name NOT LIKE 'tradeops-%%'
  AND now() - coalesce(xact_start, query_start) > %(after)s
ORDER BY coalesce(xact_start, query_start)
"""

    def parameters(self, config: TradeOpsConfig) -> dict[str, Any]:
        return {"after": config.database.maintenance.long_query_after}

    def evaluate(self, data: list[Row], config: TradeOpsConfig) -> CheckResult:
        after = config.database.maintenance.long_query_after
        if not data:
            return self.result(Status.OK, f"no query running longer than {after}")
        longest = data[0]
        findings = [
            Finding(
                f"long_query:{row['pid']}",
                Status.FAIL,
                f"pid {row['pid']} ({row['user']}, {row['application_name'] or 'no application name'}) "
                f"running for {row['seconds']} s: {row['query']}",
                {"pid": row["pid"], "user": row["user"], "seconds": row["seconds"]},
            )
            for row in data
        ]
        return self.result(
            Status.FAIL,
            f"{len(data)} running longer than {after}; longest: pid {longest['pid']} "
            f"({longest['user']}, {longest['seconds']} s)",
            findings=findings,
            queries=data,
        )


class BlockedSessions(DatabaseQueryCheck):
    """Sessions waiting on a lock, who blocks them, and the session at the head of each chain of waits."""

    name = "blocked_sessions"
    title = "Sessions blocked on locks"
    action = (
        "Look at the session at the head of each lock chain (its query and how long its transaction has been "
        "open); have its owner commit or roll back, or end it with pg_terminate_backend(<head pid>)."
    )
    # pg_blocking_pids() honours lock-mode compatibility; the classic self-join over pg_locks reports false pairs.
    query = """
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

    def evaluate(self, data: list[Row], config: TradeOpsConfig) -> CheckResult:
        if not data:
            return self.result(Status.OK, "no session waiting on a lock")
        roots = sorted({pid for row in data for pid in row["blocked_by"]} - {row["pid"] for row in data})
        return self.result(
            Status.FAIL,
            f"{len(data)} sessions waiting on locks; at the head of the chain: pid "
            f"{', '.join(map(str, roots)) or '(a cycle)'}",
            findings=lock_chains(data),
            sessions=data,
            root_blockers=roots,
        )


def lock_chains(waiting: list[Row]) -> list[Finding]:
    """One finding per session at the head of a chain of lock waits (``lock_chain:<head pid>``), naming every
    session waiting behind it, directly or not; sessions that wait only on each other are one ``lock_cycle``."""
    blocked_by = {row["pid"]: row["blocked_by"] for row in waiting}
    holders = {blocker["pid"]: blocker for row in waiting for blocker in row.get("blockers") or []}
    behind: dict[int, set[int]] = {}
    in_cycle = []
    for pid in blocked_by:
        heads = _heads(pid, blocked_by)
        if not heads:
            in_cycle.append(pid)
        for head in heads:
            behind.setdefault(head, set()).add(pid)
    findings = []
    for head, pids in sorted(behind.items()):
        holder = holders.get(head)
        who = (
            f" ({holder['user']}, {holder['application_name'] or 'no application name'}, {holder['state']})"
            if holder
            else ""
        )
        findings.append(
            Finding(
                f"lock_chain:{head}",
                Status.FAIL,
                f"pid {head}{who} holds the locks {len(pids)} sessions wait on"
                + (f": {holder['query']}" if holder else ""),
                {"head": head, "waiting": sorted(pids)},
            )
        )
    if in_cycle:
        findings.append(
            Finding(
                f"lock_cycle:{min(in_cycle)}",
                Status.FAIL,
                f"sessions {', '.join(map(str, sorted(in_cycle)))} wait on each other",
                {"waiting": sorted(in_cycle)},
            )
        )
    return findings


def _heads(pid: int, blocked_by: dict[int, list[int]]) -> set[int]:
    """The sessions at the end of ``pid``'s chains of waits: they block, and wait on no lock themselves."""
    heads: set[int] = set()
    seen, todo = {pid}, list(blocked_by[pid])
    while todo:
        blocker = todo.pop()
        if blocker in seen:
            continue
        seen.add(blocker)
        if blocker in blocked_by:
            todo.extend(blocked_by[blocker])
        else:
            heads.add(blocker)
    return heads


class DatabaseConnections(DatabaseQueryCheck):
    """Client connections in use against the usable limit (``max_connections`` less the superuser reserve),
    graded by ``thresholds.db_connections_warn_pct`` and ``db_connections_fail_pct``."""

    name = "database_connections"
    title = "Database connections"
    action = (
        "See which applications hold the connections (pg_stat_activity by application_name and state); end "
        "sessions left idle in transaction and check the applications' pool sizes before the limit is reached."
    )
    query = """
SELECT count(*) AS used,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""

    def evaluate(self, data: list[Row], config: TradeOpsConfig) -> CheckResult:
        [row] = data
        usable = row["max_connections"] - row["reserved"]
        pct = round(row["used"] / usable * 100, 1) if usable else 100.0
        thresholds = config.thresholds
        status = (
            Status.FAIL
            if pct >= thresholds.db_connections_fail_pct
            else Status.WARN
            if pct >= thresholds.db_connections_warn_pct
            else Status.OK
        )
        summary = (
            f"{row['used']} of {usable} usable connections in use ({pct}%; {row['active']} active, "
            f"{row['idle_in_transaction']} idle in transaction)"
        )
        findings = [] if status is Status.OK else [Finding("connections", status, summary, {"pct": pct})]
        return self.result(status, summary, findings=findings, **row, usable=usable, pct=pct)


class Wraparound(DatabaseQueryCheck):
    """The age of each database's oldest unfrozen transaction ID, graded by ``xid_age_warn`` and ``xid_age_fail``
    (at 2,147,483,647 the server stops accepting writes)."""

    name = "wraparound"
    title = "Transaction-ID wraparound"
    action = (
        "Run VACUUM (FREEZE) on the oldest tables of the database named (by age(relfrozenxid)) and find what "
        "holds vacuum back: long transactions, abandoned replication slots, forgotten prepared transactions."
    )
    query = """
SELECT datname AS database, age(datfrozenxid) AS xid_age FROM pg_database WHERE datallowconn ORDER BY 2 DESC
"""

    def evaluate(self, data: list[Row], config: TradeOpsConfig) -> CheckResult:
        settings = config.database.maintenance

        def grade(age: int) -> Status:
            return (
                Status.FAIL
                if age >= settings.xid_age_fail
                else Status.WARN
                if age >= settings.xid_age_warn
                else Status.OK
            )

        oldest = data[0]
        findings = [
            Finding(
                f"database:{row['database']}",
                grade(row["xid_age"]),
                f"{row['database']}: oldest unfrozen XID age {row['xid_age']:,}",
                {"xid_age": row["xid_age"]},
            )
            for row in data
            if grade(row["xid_age"]) is not Status.OK
        ]
        return self.result(
            grade(oldest["xid_age"]),
            f"oldest unfrozen XID age {oldest['xid_age']:,} in {oldest['database']} "
            f"(wraparound at 2,147,483,647; fails at {settings.xid_age_fail:,})",
            findings=findings,
            databases=data,
        )


RESTORE_CHECKS = ("due", "always", "never")


@dataclass(frozen=True)
class BackupTaken:
    """What a backup run did: the published backup (``path`` and its manifest), its verification, the restore
    check when one ran, and the backups pruned."""

    path: str
    manifest: dict[str, Any]
    verified: dict[str, Any]
    restored: dict[str, Any] | None
    pruned: list[str]


class BackupCheck(Check[BackupTaken]):
    """Take a backup of the platform database and make sure it restores: dump, verify (checksums, ``pg_restore
    --list``), restore into a scratch database and compare row counts when ``restore_check`` says so (``due``: when
    the last restore-checked backup is older than ``database.backup.restore_check_every``; ``always``; ``never``),
    publish, keep only the newest ``database.backup.keep``. Any failure on the way means there is no verified
    backup: a failed check."""

    name = "backup"
    title = "Backup"
    recheck = False  # another look would be another backup: the task's retry is the second attempt
    action = (
        "Read the backup task's log for the step that failed, fix its cause and clear the task: until a backup "
        "verifies, the newest verified backup is older than planned."
    )

    def __init__(self, restore_check: str = "due", postgres_conn_id: str | None = None) -> None:
        if restore_check not in RESTORE_CHECKS:
            raise ValueError(f"restore_check must be due, always or never, got {restore_check!r}")
        self.restore_check = restore_check
        self.postgres_conn_id = postgres_conn_id

    def collect(self, config: TradeOpsConfig) -> BackupTaken:
        from tradeops.connections import postgres_dsn
        from tradeops.database import backup

        dsn = postgres_dsn(self.postgres_conn_id or config.connections.platform_db)
        settings = config.database.backup
        root = backup.backup_root(settings)
        partial, manifest = backup.take_backup(dsn, settings)
        verified = backup.verify(partial)
        restored = None
        if self.restore_check == "always" or (
            self.restore_check == "due" and backup.restore_check_due(root, settings.restore_check_every)
        ):
            restored = backup.restore_check(partial, dsn, settings.jobs)
        folder = backup.publish(partial)
        return BackupTaken(str(folder), manifest, verified, restored, backup.prune(root, settings.keep))

    def evaluate(self, data: BackupTaken, config: TradeOpsConfig) -> CheckResult:
        manifest, restored = data.manifest, data.restored
        summary = (
            f"{manifest['id']}: {manifest['bytes'] / 2**20:.1f} MB in {manifest['seconds']} s, "
            f"{data.verified['toc_entries']} TOC entries verified"
            + (
                f", restored and compared ({restored['rows']:,} rows in {restored['restore_seconds']} s)"
                if restored
                else ""
            )
        )
        return self.result(
            Status.OK,
            summary,
            id=manifest["id"],
            path=data.path,
            bytes=manifest["bytes"],
            seconds=manifest["seconds"],
            restore_check=restored,
            pruned=data.pruned,
        )

    def unreachable(self, error: BaseException) -> CheckResult:
        """Whatever went wrong (the dump, the verification, the restore check), there is no verified backup."""
        return self.result(Status.FAIL, f"{type(error).__name__}: {error}"[:1500])
