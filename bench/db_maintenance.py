"""Database care on a live database: the seeds' statements vs TradeOps' steps, side by side in one process.

On a fresh embedded PostgreSQL with the sandbox's platform database at ``--rows`` audit_log rows (the sandbox's size
knob; 5 M by default, the others scale with it), each scenario runs on its own copy of the seeded database while a
fixed-rate writer (``--rate`` inserts/s into the table the step works on) records its latencies; an idle window
before each step gives the writer's baseline on this host.

- retention of the partitioned ``audit_log``: the seeds' ``DELETE FROM audit_log WHERE created_at < NOW() -
  INTERVAL '90 days'`` vs dropping the expired partitions;
- retention of a plain table (a non-partitioned copy of audit_log): the same ``DELETE`` vs bounded batches;
- reindex of ``trades``: ``REINDEX TABLE trades`` vs ``REINDEX INDEX CONCURRENTLY`` of each index;
- backup: a plain SQL ``pg_dump`` restored with ``psql -f`` vs ``pg_dump -Fd -j 2 -Z 1`` restored with
  ``pg_restore -j 2`` (and its row counts compared).

    python bench/db_maintenance.py [--rows 5000000] [--rate 200] [--idle 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from sandbox import platform_db  # noqa: E402
from sandbox.launcher import free_port  # noqa: E402
from sandbox.servers import PostgresServer, Role, dsn  # noqa: E402
from tradeops.config.database import Backup, Maintenance, Table  # noqa: E402
from tradeops.database import backup, retention, upkeep  # noqa: E402
from tradeops.database.session import connect  # noqa: E402

SEED_DELETE = "DELETE FROM {} WHERE created_at < NOW() - INTERVAL '90 days'"
AUDIT = Table(name="audit_log", time_column="created_at", retention_days=90, partitioning="daily")
AUDIT_PLAIN = Table(name="audit_log_plain", time_column="created_at", retention_days=90)
INSERTS = {
    "audit_log": "INSERT INTO {} (created_at, actor, action, entity) VALUES (now(), 'bench', 'order.submit', 'o/1')",
    "trades": "INSERT INTO {} (trade_ts, account, symbol, side, qty, price, strategy) "
    "VALUES (now(), 'GM-PRIMARY', 'ES', 'buy', 1, 5000, 'bench')",
}


class Writer(threading.Thread):
    """Inserts into ``table`` at a fixed rate (no catch-up burst after a stall), recording each write's start and
    latency, so that a write stuck behind a lock counts in the window it started in."""

    def __init__(self, dsn_: str, table: str, rate: float):
        super().__init__(daemon=True)
        self.dsn, self.rate = dsn_, rate
        base = "audit_log" if table.startswith("audit_log") else table
        self.statement = sql.SQL(INSERTS[base]).format(sql.Identifier(table))
        self.writes: list[tuple[float, float]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            next_at = time.monotonic()
            while not self.stop_event.is_set():
                started = time.monotonic()
                conn.execute(self.statement)
                self.writes.append((started, time.monotonic() - started))
                next_at = max(next_at + 1 / self.rate, time.monotonic())
                time.sleep(max(0.0, next_at - time.monotonic()))

    def between(self, start: float, end: float) -> list[float]:
        """Latencies of the writes that started in [start, end), once the last of them has finished."""
        deadline = time.monotonic() + 60
        while not (self.writes and self.writes[-1][0] >= end) and time.monotonic() < deadline:
            time.sleep(0.01)
        return [latency for started, latency in self.writes if start <= started < end]

    def finish(self) -> None:
        self.stop_event.set()
        self.join(30)


def percentiles(values: list[float]) -> str:
    if not values:
        return "no writes"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p99 {p99 * 1000:8.1f} ms  "
        f"max {ordered[-1] * 1000:8.1f} ms  ({len(ordered)} writes)"
    )


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


class Bench:
    def __init__(self, server: PostgresServer, role: Role, template: str, rate: float, idle: float):
        self.server, self.role, self.template, self.rate, self.idle = server, role, template, rate, idle
        self.rows: list[tuple[str, str, dict]] = []

    def dsn(self, database: str) -> str:
        return dsn(self.server.host, self.server.port, self.role, database)

    def copy(self, name: str) -> str:
        with self.server.admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.template), sql.Identifier(self.role.name)
                )
            )
            conn.execute("CHECKPOINT")
        return self.dsn(name)

    def copy_empty(self, name: str) -> str:
        with self.server.admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.role.name))
            )
        return self.dsn(name)

    def drop(self, name: str) -> None:
        with self.server.admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def measure(
        self,
        scenario: str,
        method: str,
        database: str,
        table: str,
        step: Callable[[str], dict],
        size_of: str | None = None,
    ) -> dict:
        target = self.copy(database)
        writer = Writer(target, table, self.rate)
        writer.start()
        idle_from = time.monotonic()
        time.sleep(self.idle)
        with psycopg.connect(target, autocommit=True, row_factory=dict_row) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn() AS lsn").fetchone()["lsn"]
            started = time.monotonic()
            extra = step(target) or {}
            ended = time.monotonic()
            wall = ended - started
            wal = int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s) AS b", (lsn,)).fetchone()["b"])
            size = None
            if size_of:
                size = conn.execute(  # pg_partition_tree() of a plain table is empty
                    "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%(t)s)), "
                    "pg_total_relation_size(%(t)s))::bigint AS b",
                    {"t": size_of},
                ).fetchone()["b"]
        baseline, during = writer.between(idle_from, started), writer.between(started, ended)
        writer.finish()
        self.drop(database)
        result = {"wall": wall, "wal": wal, "size": size, "baseline": baseline, "during": during, **extra}
        self.rows.append((scenario, method, result))
        print(f"\n{scenario}: {method}")
        print(
            f"  wall {wall:8.2f} s   WAL {wal / 2**20:9.1f} MB"
            + (f"   size after {size / 2**30:6.2f} GB" if size is not None else "")
        )
        print(f"  writer idle:   {percentiles(baseline)}")
        print(f"  writer during: {percentiles(during)}")
        for key, value in extra.items():
            print(f"  {key}: {value}")
        return result


def prepare(conn) -> None:
    """A plain (non-partitioned) copy of audit_log for batched retention, and trades after a day of churn: 30% of
    its rows deleted here and there, so that its indexes carry the bloat the daily reindex is for."""
    conn.execute("CREATE TABLE audit_log_plain (LIKE audit_log INCLUDING DEFAULTS)")
    conn.execute("INSERT INTO audit_log_plain SELECT * FROM audit_log")
    conn.execute("ALTER TABLE audit_log_plain ADD PRIMARY KEY (id, created_at)")
    conn.execute("ALTER TABLE audit_log_plain ALTER id ADD GENERATED BY DEFAULT AS IDENTITY")
    conn.execute("SELECT setval(pg_get_serial_sequence('audit_log_plain', 'id'), max(id)) FROM audit_log_plain")
    conn.execute("CREATE INDEX audit_log_plain_created_at_idx ON audit_log_plain (created_at)")
    conn.execute("VACUUM ANALYZE audit_log_plain")
    conn.execute("DELETE FROM trades WHERE id % 10 < 3")
    conn.execute("VACUUM ANALYZE trades")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--rate", type=float, default=200, help="writer inserts per second")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle baseline before each step")
    args = parser.parse_args()

    state = REPO / ".run" / "bench-db"  # under .run/, which the PostgreSQL OS user can reach
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    try:
        server = PostgresServer(state, free_port())
        server.start()
        role = Role("tradeops", "bench-only-password")
        server.ensure_role(role, createdb=True)
        try:
            server.recreate_database("bench_template", role)
            started = time.monotonic()
            counts = platform_db.create_and_seed(dsn(server.host, server.port, role, "bench_template"), rows=args.rows)
            with psycopg.connect(dsn(server.host, server.port, role, "bench_template"), autocommit=True) as conn:
                prepare(conn)
            print(
                f"Seeded {counts['audit_log']:,} audit_log rows ({counts['trades']:,} trades) "
                f"in {time.monotonic() - started:.0f} s; writer at {args.rate:.0f} inserts/s"
            )
            run(Bench(server, role, "bench_template", args.rate, args.idle))
        finally:
            server.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


def run(bench: Bench) -> None:
    now = datetime.now(UTC)
    settings = Maintenance(batch_rows=10_000, batch_pause_ms=50, reindex_min_bloat_pct=20, reindex_min_size_mb=0)

    def naive(table: str):
        return lambda target: _autocommit(target, SEED_DELETE.format(table)) and {}

    naive_partitioned = bench.measure(
        "Retention, partitioned audit_log (90 days of 180)",
        "seeds: one DELETE",
        "b_ret_naive",
        "audit_log",
        naive("audit_log"),
        size_of="audit_log",
    )

    def drop_partitions(target: str) -> dict:
        with connect(target, settings, application_name="bench") as conn:
            result = retention.apply_retention(conn, AUDIT, settings, now=now)
        return {"partitions dropped": len(result.dropped_partitions)}

    drop = bench.measure(
        "Retention, partitioned audit_log (90 days of 180)",
        "TradeOps: drop expired partitions",
        "b_ret_drop",
        "audit_log",
        drop_partitions,
        size_of="audit_log",
    )

    naive_plain = bench.measure(
        "Retention, plain table (a non-partitioned copy of audit_log)",
        "seeds: one DELETE",
        "b_plain_naive",
        "audit_log_plain",
        naive("audit_log_plain"),
        size_of="audit_log_plain",
    )

    def batches(target: str) -> dict:
        with connect(target, settings, application_name="bench") as conn:
            result = retention.apply_retention(conn, AUDIT_PLAIN, settings, now=now, budget=timedelta(hours=1))
        return {"rows deleted": result.deleted_rows, "batches": result.batches, "slowest_batch": result.slowest_batch_s}

    batched = bench.measure(
        "Retention, plain table (a non-partitioned copy of audit_log)",
        "TradeOps: batches of 10k, paused >= 50 ms and >= the batch",
        "b_plain_batch",
        "audit_log_plain",
        batches,
        size_of="audit_log_plain",
    )

    plain_reindex = bench.measure(
        "Reindex trades (4 indexes)",
        "seeds: REINDEX TABLE trades",
        "b_rx_naive",
        "trades",
        lambda target: _autocommit(target, "REINDEX TABLE trades") and {},
    )

    def concurrently(target: str) -> dict:
        with connect(target, settings, application_name="bench") as conn:
            report = upkeep.reindex_bloated(conn, "trades", settings)
        return {
            "indexes rebuilt": f"{len(report['reindexed'])} of {len(report['indexes'])} (the rest under "
            f"the bloat threshold)"
        }

    concurrent = bench.measure(
        "Reindex trades (4 indexes)", "TradeOps: REINDEX INDEX CONCURRENTLY each", "b_rx_conc", "trades", concurrently
    )
    backups = compare_backups(bench)

    print("\nTargets")
    check(
        "partition retention writes >= 100x less WAL than the DELETE",
        naive_partitioned["wal"] >= 100 * max(drop["wal"], 1),
        f"{naive_partitioned['wal'] / 2**20:.0f} MB vs {drop['wal'] / 2**20:.1f} MB",
    )
    check(
        "partition retention returns the space at once",
        drop["size"] < naive_partitioned["size"] * 0.7,
        f"{drop['size'] / 2**30:.2f} GB vs {naive_partitioned['size'] / 2**30:.2f} GB after the DELETE",
    )
    check(
        "batched retention: every transaction under 1 s",
        batched["slowest_batch"] < 1.0,
        f"longest {batched['slowest_batch']:.3f} s (the DELETE: one of {naive_plain['wall']:.1f} s)",
    )
    check(
        "batched retention: writer p99 under 2x its idle baseline",
        p99(batched["during"]) < 2 * max(p99(batched["baseline"]), 1e-3),
        f"{p99(batched['during']) * 1000:.1f} ms vs baseline {p99(batched['baseline']) * 1000:.1f} ms",
    )
    check(
        "concurrent reindex: writer p99 under 100 ms",
        p99(concurrent["during"]) < 0.1,
        f"{p99(concurrent['during']) * 1000:.1f} ms (plain REINDEX: {p99(plain_reindex['during']) * 1000:.0f} ms)",
    )
    print("\n" + backups)


def check(what: str, ok: bool, detail: str) -> None:
    print(f"  [{'ok' if ok else 'MISSED'}] {what}: {detail}")


def _autocommit(target: str, statement: str) -> bool:
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(statement)
    return True


def compare_backups(bench: Bench) -> str:
    source = bench.copy("b_backup_src")
    lines = ["Backups (dump, size, restore into an empty database)"]
    try:
        with tempfile.TemporaryDirectory(dir=REPO / ".run") as folder:  # our own files: pg_dump runs as us
            plain = Path(folder) / "plain.sql"
            with psycopg.connect(source) as conn:
                major = conn.info.server_version // 10000
            env = backup.libpq_env(source)
            started = time.monotonic()
            subprocess.run([backup.pg_tool("pg_dump", major), "--no-password", "-f", str(plain)], env=env, check=True)
            dump_s = time.monotonic() - started
            restore_dsn = bench.copy_empty("b_restore_plain")
            started = time.monotonic()
            subprocess.run(
                [
                    str(Path(backup.pg_tool("pg_dump", major)).with_name("psql")),
                    "--quiet",
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-f",
                    str(plain),
                ],
                env=backup.libpq_env(restore_dsn),
                check=True,
                stdout=subprocess.DEVNULL,
            )
            restore_s = time.monotonic() - started
            bench.drop("b_restore_plain")
            lines.append(
                f"  seeds: plain SQL dump   dump {dump_s:6.1f} s  size {plain.stat().st_size / 2**20:7.0f} MB"
                f"  restore (psql, serial) {restore_s:6.1f} s  total {dump_s + restore_s:6.1f} s"
            )

            settings = Backup(directory=folder, format="directory", jobs=2, compression=1, keep=1)
            os.environ["TRADEOPS_BACKUP_DIR"] = folder
            partial, manifest = backup.take_backup(source, settings)
            restore_dsn = bench.copy_empty("b_restore_dir")
            checked = backup.restore(partial, restore_dsn, 2)
            bench.drop("b_restore_dir")
            total = manifest["seconds"] + checked["restore_seconds"]
            lines.append(
                f"  TradeOps: -Fd -j2 -Z1   dump {manifest['seconds']:6.1f} s  size "
                f"{manifest['bytes'] / 2**20:7.0f} MB  restore (pg_restore -j2) "
                f"{checked['restore_seconds']:6.1f} s  total {total:6.1f} s  "
                f"(row counts compared: {checked['rows']:,} rows match)"
            )
    finally:
        bench.drop("b_backup_src")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
