"""Retention: remove rows older than a table's ``retention_days`` without hurting the live platform.

Time-partitioned tables lose whole expired partitions (``DETACH PARTITION ... CONCURRENTLY`` then ``DROP TABLE``:
a few MB of WAL and the space back at once) and gain upcoming ones (created detached, then attached, so the parent
is never locked against writers). Plain tables are deleted from in bounded batches, each its own short
transaction, stopping cleanly at a time budget; the next run resumes where this one stopped.

The cutoff is midnight UTC, ``retention_days`` before today: day-granular, so that partitions and batches remove
exactly the same rows and a run on any hour of the day removes the same set.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

from psycopg import errors, sql

from tradeops.config.database import Maintenance, Table
from tradeops.database.session import Session, with_lock_retries

log = logging.getLogger("airflow.task.tradeops.database")
DETACHING = "tradeops retention: expired partition of {}, being detached and dropped"
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
MIN_BATCH_ROWS = 100


def cutoff_for(table: Table, now: datetime) -> datetime:
    """Rows whose time is before this instant are expired."""
    if table.retention_days is None:
        raise ValueError(f"table {table.name!r} has no retention_days")
    day = (now.astimezone(UTC) - timedelta(days=table.retention_days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _time_column(table: Table) -> sql.Identifier:
    if table.time_column is None:  # the config's consistency check requires it for retention and partitioning
        raise ValueError(f"table {table.name!r} has no time_column")
    return sql.Identifier(table.time_column)


@dataclass
class Partition:
    name: str
    lower: datetime | None
    upper: datetime | None
    detach_pending: bool


@dataclass
class RetentionResult:
    table: str
    method: str
    cutoff: str
    complete: bool = True
    deleted_rows: int = 0
    batches: int = 0
    dropped_partitions: list[str] = field(default_factory=list)
    created_partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0
    slowest_batch_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def partitions(conn: Session, table: str) -> list[Partition]:
    rows = conn.execute(
        "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound, i.inhdetachpending AS pending "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
        "ORDER BY c.relname",
        (table,),
    ).fetchall()
    found = []
    for row in rows:
        match = _BOUND.search(row["bound"] or "")
        lower, upper = (datetime.fromisoformat(v) for v in match.groups()) if match else (None, None)
        found.append(Partition(row["name"], lower, upper, row["pending"]))
    return found


def drop_expired_partitions(
    conn: Session, table: Table, cutoff: datetime, settings: Maintenance, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Detach and drop every partition entirely before ``cutoff``; finish what an interrupted run left (a detach
    pending, a detached table not yet dropped). ``conn`` must be in autocommit: a concurrent detach cannot run
    inside a transaction block."""
    parent = sql.Identifier(table.name)
    marker = DETACHING.format(table.name)
    dropped = []
    for orphan in conn.execute(
        "SELECT c.relname AS name FROM pg_class c WHERE c.relkind = 'r' AND NOT c.relispartition "
        "AND obj_description(c.oid, 'pg_class') = %s",
        (marker,),
    ).fetchall():
        drop = sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(orphan["name"]))
        with_lock_retries(partial(conn.execute, drop), settings, f"drop {orphan['name']}", sleep)
        log.info("%s: dropped %s, detached by an earlier interrupted run", table.name, orphan["name"])
        dropped.append(orphan["name"])
    current = partitions(conn, table.name)
    has_default = any(p.lower is None for p in current)
    for part in current:
        if part.upper is None or part.upper > cutoff:
            continue
        ident = sql.Identifier(part.name)
        mark = sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(marker))
        with_lock_retries(partial(conn.execute, mark), settings, f"mark {part.name}", sleep)

        def detach_partition(part=part, ident=ident):
            if part.detach_pending:
                detach = sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE")
            elif has_default:  # CONCURRENTLY refuses to run when a DEFAULT partition exists
                detach = sql.SQL("ALTER TABLE {} DETACH PARTITION {}")
            else:
                detach = sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY")
            try:
                conn.execute(detach.format(parent, ident))
            except errors.LockNotAvailable:
                # A concurrent detach interrupted by its timeout stays pending: the next attempt finalizes it.
                part.detach_pending = _detach_pending(conn, part.name)
                raise

        with_lock_retries(detach_partition, settings, f"detach {part.name}", sleep)
        drop = sql.SQL("DROP TABLE IF EXISTS {}").format(ident)
        with_lock_retries(partial(conn.execute, drop), settings, f"drop {part.name}", sleep)
        log.info("%s: dropped partition %s (rows before %s)", table.name, part.name, part.upper.isoformat())
        dropped.append(part.name)
    return dropped


def _detach_pending(conn: Session, name: str) -> bool:
    row = conn.execute("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = %s::regclass", (name,)).fetchone()
    return bool(row and row["inhdetachpending"])


def create_upcoming_partitions(
    conn: Session, table: Table, today: date, settings: Maintenance, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """Make sure a partition exists for today and each of the next ``partitions_ahead_days`` days. Each is created
    as a plain table with a matching CHECK constraint and then attached, which locks the parent only in SHARE UPDATE
    EXCLUSIVE mode (``CREATE TABLE ... PARTITION OF`` would take ACCESS EXCLUSIVE and stop every writer)."""
    existing = partitions(conn, table.name)
    created = []
    for offset in range(settings.partitions_ahead_days + 1):
        day = today + timedelta(days=offset)
        lower = datetime(day.year, day.month, day.day, tzinfo=UTC)
        upper = lower + timedelta(days=1)
        if any(p.lower is not None and p.upper is not None and p.lower < upper and p.upper > lower for p in existing):
            continue
        name = partition_name(table.name, day)
        ident, parent, column = sql.Identifier(name), sql.Identifier(table.name), _time_column(table)
        bounds = (sql.Literal(lower), sql.Literal(upper))

        def create(ident=ident, parent=parent, column=column, bounds=bounds, name=name):
            with conn.transaction():
                conn.execute(
                    sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(ident, parent)
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} >= {} AND {} < {})").format(
                        ident, sql.Identifier(f"{name}_bounds"), column, bounds[0], column, bounds[1]
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                        parent, ident, *bounds
                    )
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(f"{name}_bounds"))
                )

        with_lock_retries(create, settings, f"create {name}", sleep)
        created.append(name)
    if created:
        log.info("%s: created partitions %s", table.name, ", ".join(created))
    return created


def expired_count(conn: Session, table: Table, cutoff: datetime) -> int:
    [row] = conn.execute(
        sql.SQL("SELECT count(*) AS n FROM {} WHERE {} < %s").format(sql.Identifier(table.name), _time_column(table)),
        (cutoff,),
    ).fetchall()
    return row["n"]


def delete_in_batches(
    conn: Session,
    table: Table,
    cutoff: datetime,
    settings: Maintenance,
    budget: timedelta,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RetentionResult:
    """Delete expired rows ``batch_rows`` at a time, each batch its own transaction (``conn`` in autocommit), pausing
    between batches for ``batch_pause_ms`` or as long as the batch took, whichever is longer. Stops before a batch
    that would overrun ``budget`` (``complete`` is then False; the next run carries on). A batch cancelled by
    ``statement_timeout`` is retried at half the size."""
    result = RetentionResult(table.name, "batches", cutoff.isoformat())
    started = clock()
    [shape] = conn.execute(
        "SELECT relkind, relhassubclass FROM pg_class WHERE oid = %s::regclass", (table.name,)
    ).fetchall()
    if shape["relkind"] != "r" or shape["relhassubclass"]:
        # ctid is only unique within one physical table: batches would match rows of other partitions/children.
        raise ValueError(
            f"{table.name} is partitioned or has child tables: set `partitioning` for it in the config "
            "so that retention drops partitions instead of deleting rows"
        )
    # The time column is tested again in the DELETE itself: a row updated since the SELECT is only deleted if it
    # is still expired.
    statement = sql.SQL(
        "DELETE FROM ONLY {t} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ONLY {t} WHERE {c} < %s LIMIT %s)) AND {c} < %s"
    ).format(t=sql.Identifier(table.name), c=_time_column(table))
    remaining = expired_count(conn, table, cutoff)
    log.info(
        "%s: %s rows before %s to delete, %s per batch, budget %s",
        table.name,
        remaining,
        cutoff.isoformat(),
        settings.batch_rows,
        budget,
    )
    batch_rows, slowest, last_log = settings.batch_rows, 0.0, started
    while remaining > 0:
        elapsed = clock() - started
        if elapsed + slowest > budget.total_seconds():
            result.complete = False
            log.warning(
                "%s: time budget reached after %s rows; %s expired rows left for the next run",
                table.name,
                result.deleted_rows,
                remaining,
            )
            break
        batch_started = clock()
        try:
            deleted = with_lock_retries(
                partial(conn.execute, statement, (cutoff, batch_rows, cutoff)),
                settings,
                f"delete from {table.name}",
                sleep,
            ).rowcount
        except errors.QueryCanceled:
            if batch_rows <= MIN_BATCH_ROWS:
                raise
            batch_rows = max(MIN_BATCH_ROWS, batch_rows // 2)
            log.warning("%s: a batch hit statement_timeout; continuing with %s rows per batch", table.name, batch_rows)
            continue
        slowest = max(slowest, clock() - batch_started)
        result.slowest_batch_s = round(slowest, 4)
        if deleted == 0:
            break
        result.deleted_rows += deleted
        result.batches += 1
        remaining = max(remaining - deleted, 0)
        now = clock()
        if now - last_log >= 5 or remaining == 0:
            rate = result.deleted_rows / max(now - started, 1e-6)
            log.info(
                "%s: %s rows deleted (%.0f rows/s), %s left, ETA %.0f s",
                table.name,
                result.deleted_rows,
                rate,
                remaining,
                remaining / rate if rate else float("inf"),
            )
            last_log = now
        if remaining:
            # Rest at least as long as the batch took: the deletes never hold more than half of a core's time
            # (and of the disk) against the platform's own writers, however slow the batches get.
            sleep(max(settings.batch_pause_ms / 1000, now - batch_started))
    result.seconds = round(clock() - started, 3)
    return result


def apply_retention(
    conn: Session, table: Table, settings: Maintenance, *, now: datetime | None = None, budget: timedelta | None = None
) -> RetentionResult:
    """The retention step of one table, whichever its shape."""
    now = now or datetime.now(UTC)
    cutoff = cutoff_for(table, now)
    started = time.monotonic()
    if table.partitioning:
        result = RetentionResult(table.name, "partitions", cutoff.isoformat())
        # Creating comes first: a drop that keeps losing its lock race must not leave tomorrow without a partition.
        result.created_partitions = create_upcoming_partitions(conn, table, now.astimezone(UTC).date(), settings)
        result.dropped_partitions = drop_expired_partitions(conn, table, cutoff, settings)
        result.seconds = round(time.monotonic() - started, 3)
        return result
    return delete_in_batches(conn, table, cutoff, settings, budget or settings.time_budget)
