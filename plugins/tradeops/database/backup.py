"""Backups of the platform database that are known to restore.

``pg_dump`` writes directory format with parallel jobs (or custom format) into ``<id>.partial/``, which
:func:`publish` renames to ``<id>/`` only once it has been verified: an interrupted or unverified backup is never
listed, restored or counted as one of the backups to keep. The manifest records every
file's SHA-256 and size, the duration, and each table's exact row count taken in the dump's own snapshot
(``pg_dump --snapshot`` with an exported snapshot), so a restore can be compared exactly while writers keep writing.

Verification reads the archive's table of contents (``pg_restore --list``) and checks every checksum; on the
configured cadence it restores into a scratch database and compares row counts. A failed verification is a failed
backup. Passwords go to the tools through ``PGPASSWORD`` in their environment, never on a command line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from tradeops.config.database import Backup
from tradeops.exceptions import BackupError
from tradeops.reporting.files import sha256_of

log = logging.getLogger("airflow.task.tradeops.database")
MANIFEST = "manifest.json"
PARTIAL = ".partial"

ROOT_TABLES = """
SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1
"""


def _candidates(name: str) -> list[str]:
    found = []
    if os.environ.get("TRADEOPS_PG_BIN_DIR"):
        found.append(str(Path(os.environ["TRADEOPS_PG_BIN_DIR"]) / name))
    on_path = shutil.which(name)
    if on_path:
        found.append(on_path)
    try:
        import pgserver
    except ImportError:
        pass
    else:
        found.append(str(Path(pgserver.__file__).parent / "pginstall" / "bin" / name))
    return found


@functools.cache
def _major_version(tool: str) -> int | None:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"\) (\d+)", out)
    return int(match.group(1)) if match else None


def pg_tool(name: str, server_major: int) -> str:
    """``pg_dump``/``pg_restore`` able to handle a server of major version ``server_major`` (a client must be at
    least as new as the server): from ``$TRADEOPS_PG_BIN_DIR``, else ``PATH``, else the embedded server's wheel."""
    tried = []
    for tool in _candidates(name):
        major = _major_version(tool)
        if major is not None and major >= server_major:
            return tool
        tried.append(f"{tool} ({major or 'not runnable'})")
    raise BackupError(
        f"no {name} of version {server_major} or newer (tried: {', '.join(tried) or 'none'}); install "
        f"the PostgreSQL {server_major} client or set TRADEOPS_PG_BIN_DIR"
    )


def backup_root(settings: Backup) -> Path:
    return Path(os.environ.get("TRADEOPS_BACKUP_DIR") or settings.directory)


def libpq_env(dsn: str, dbname: str | None = None) -> dict[str, str]:
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "dbname": "PGDATABASE"}
    env = {**os.environ, **{var: str(params[key]) for key, var in names.items() if params.get(key)}}
    if dbname:
        env["PGDATABASE"] = dbname
    return env


def _run(args: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-1500:]}")
    return result


def _files(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): {"sha256": sha256_of(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def row_counts(conn: psycopg.Connection[DictRow]) -> dict[str, int]:
    counts = {}
    for table in conn.execute(ROOT_TABLES).fetchall():
        [row] = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table["name"]))).fetchall()
        counts[table["name"]] = row["n"]
    return counts


def take_backup(dsn: str, settings: Backup, *, now: datetime | None = None) -> tuple[Path, dict]:
    """Dump the database ``dsn`` names into ``<id>.partial/`` under the backup root; returns that folder and the
    manifest. Verify it, then :func:`publish` it."""
    now = now or datetime.now(UTC)
    database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    backup_id = f"{database}-{now:%Y%m%dT%H%M%SZ}"
    root = backup_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    if (root / backup_id).exists():
        raise BackupError(f"backup {backup_id} already exists")
    partial = root / (backup_id + PARTIAL)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    target = partial / ("data" if settings.format == "directory" else "data.dump")
    started = time.monotonic()
    # The snapshot's own session waits for table locks no longer than pg_dump does.
    with psycopg.connect(
        dsn,
        row_factory=dict_row,
        connect_timeout=10,
        autocommit=True,
        application_name="tradeops-backup",
        options=f"-c lock_timeout={settings.lock_wait_timeout_s * 1000}",
    ) as conn:
        server_major = conn.info.server_version // 10000
        pg_dump = pg_tool("pg_dump", server_major)
        args = [
            pg_dump,
            "--no-password",
            f"--compress={settings.compression}",
            f"--lock-wait-timeout={settings.lock_wait_timeout_s}s",
            "-f",
            str(target),
        ]
        args += (
            ["--format=directory", f"--jobs={settings.jobs}"] if settings.format == "directory" else ["--format=custom"]
        )
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        [snapshot] = conn.execute("SELECT pg_export_snapshot() AS id").fetchall()
        try:
            counts = row_counts(conn)
        except psycopg.errors.LockNotAvailable as err:
            raise BackupError(
                f"a table stayed locked longer than lock_wait_timeout_s "
                f"({settings.lock_wait_timeout_s} s) while counting rows for the manifest: "
                f"{err.diag.message_primary}"
            ) from None
        # The snapshot stays importable while this transaction is open, i.e. until pg_dump has finished.
        _run(args + [f"--snapshot={snapshot['id']}"], libpq_env(dsn), "pg_dump")
        conn.execute("ROLLBACK")
    manifest: dict[str, Any] = {
        "id": backup_id,
        "database": database,
        "format": settings.format,
        "jobs": settings.jobs,
        "compression": settings.compression,
        "started_at": now.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.monotonic() - started, 2),
        "server_major": server_major,
        "pg_dump_major": _major_version(pg_dump),
        "row_counts": counts,
        "files": _files(partial),
    }
    manifest["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    _write_manifest(partial, manifest)
    log.info(
        "Backup %s: %s files, %.1f MB in %.1f s",
        backup_id,
        len(manifest["files"]),
        manifest["bytes"] / 2**20,
        manifest["seconds"],
    )
    return partial, manifest


def publish(partial: Path) -> Path:
    """Make a verified backup one of the backups (listed, restorable, kept)."""
    final = partial.with_name(partial.name.removesuffix(PARTIAL))
    partial.rename(final)
    return final


def _write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(folder / MANIFEST)


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise BackupError(f"{folder.name}: no readable manifest ({err})") from None


def archive(folder: Path, manifest: dict) -> Path:
    return folder / ("data" if manifest["format"] == "directory" else "data.dump")


def verify(folder: Path) -> dict:
    """Every file present with its recorded checksum, and a table of contents ``pg_restore`` can read."""
    manifest = read_manifest(folder)
    actual = _files(folder)
    problems = [f"{name}: missing" for name in manifest["files"] if name not in actual]
    problems += [
        f"{name}: checksum mismatch"
        for name, meta in manifest["files"].items()
        if name in actual and actual[name]["sha256"] != meta["sha256"]
    ]
    problems += [f"{name}: not in the manifest" for name in actual if name not in manifest["files"]]
    if problems:
        raise BackupError(f"backup {manifest['id']} is corrupt: {'; '.join(problems[:10])}")
    pg_restore = pg_tool("pg_restore", manifest["pg_dump_major"])
    toc = _run([pg_restore, "--list", str(archive(folder, manifest))], dict(os.environ), "pg_restore --list").stdout
    entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
    return {"id": manifest["id"], "files": len(actual), "toc_entries": entries}


def database_exists(dsn: str, name: str) -> bool:
    """Whether the server ``dsn`` points at has a database ``name``."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def create_database(dsn: str, name: str) -> str:
    """A new, empty database ``name`` on the server ``dsn`` points at; its DSN."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


def drop_database(dsn: str, name: str, *, attempts: int = 4) -> None:
    """Drop database ``name`` (ending this role's sessions in it) if it exists.

    ``WITH (FORCE)`` refuses a role without superuser when an autovacuum worker is in the database (before
    PostgreSQL 18 only superusers may end one), and a freshly restored scratch database is just what autovacuum
    analyses. A plain ``DROP DATABASE`` asks autovacuum to stop by itself, so that is the fallback, once this role's
    own sessions are ended; a session of another role still makes it fail, as it should.
    """
    drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        try:
            conn.execute(drop + sql.SQL(" WITH (FORCE)"))
            return
        except psycopg.errors.InsufficientPrivilege:
            log.info("Database %s: an autovacuum worker is in it; dropping without FORCE, which stops it", name)
        for attempt in range(1, attempts + 1):
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND usename = current_user AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                conn.execute(drop)
                return
            except psycopg.errors.ObjectInUse:
                if attempt == attempts:
                    raise
                time.sleep(0.5 * attempt)


@contextmanager
def scratch_database(dsn: str, name: str) -> Iterator[str]:
    """A new, empty database ``name`` on the same server, dropped afterwards whatever happens."""
    scratch_dsn = create_database(dsn, name)
    try:
        yield scratch_dsn
    finally:
        drop_database(dsn, name)


def restore(folder: Path, target_dsn: str, jobs: int) -> dict:
    """``pg_restore`` the backup into the (empty) database ``target_dsn`` names, then compare its row counts with
    the manifest's. Raises :class:`BackupError` on any difference."""
    manifest = read_manifest(folder)
    started = time.monotonic()
    _run(
        [
            pg_tool("pg_restore", manifest["pg_dump_major"]),
            "--no-password",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            f"--jobs={jobs}",
            "--dbname",
            str(psycopg.conninfo.conninfo_to_dict(target_dsn)["dbname"]),
            str(archive(folder, manifest)),
        ],
        libpq_env(target_dsn),
        "pg_restore",
    )
    seconds = round(time.monotonic() - started, 2)
    with psycopg.connect(target_dsn, row_factory=dict_row, connect_timeout=10) as conn:
        restored = row_counts(conn)
    expected = manifest["row_counts"]
    differences = {
        table: {"backup": expected.get(table), "restored": restored.get(table)}
        for table in sorted(set(expected) | set(restored))
        if expected.get(table) != restored.get(table)
    }
    if differences:
        raise BackupError(f"backup {manifest['id']}: restored row counts differ: {json.dumps(differences)}")
    return {"id": manifest["id"], "restore_seconds": seconds, "tables": len(restored), "rows": sum(restored.values())}


def restore_into_new_database(folder: Path, dsn: str, name: str, jobs: int) -> dict:
    """Create database ``name`` on the server ``dsn`` points at and :func:`restore` the backup into it; a restore
    that fails drops the half-restored copy (this call's own creation), so that a retry starts clean."""
    target_dsn = create_database(dsn, name)
    try:
        return restore(folder, target_dsn, jobs)
    except Exception:
        drop_database(dsn, name)
        raise


def restore_check(folder: Path, dsn: str, jobs: int) -> dict:
    """Restore into a throwaway scratch database, compare, drop it; the result is recorded in the manifest."""
    manifest = read_manifest(folder)
    name = f"{manifest['database']}_restorecheck_{datetime.now(UTC):%Y%m%d%H%M%S}"
    with scratch_database(dsn, name) as scratch_dsn:
        result = restore(folder, scratch_dsn, jobs)
    manifest["restore_check"] = {**result, "at": datetime.now(UTC).isoformat(), "database": name}
    _write_manifest(folder, manifest)
    return manifest["restore_check"]


def backups(root: Path) -> list[tuple[Path, dict]]:
    """Complete backups (those with a manifest), newest first."""
    found = []
    for folder in root.iterdir() if root.is_dir() else []:
        if folder.is_dir() and not folder.name.endswith(PARTIAL) and (folder / MANIFEST).exists():
            found.append((folder, read_manifest(folder)))
    return sorted(found, key=lambda item: item[1]["started_at"], reverse=True)


def find_backup(root: Path, backup_id: str) -> tuple[Path, dict]:
    """The complete backup ``backup_id`` (``latest``: the newest one) under ``root``, and its manifest."""
    found = backups(root)
    if not found:
        raise BackupError(f"no complete backup under {root}")
    for folder, manifest in found:
        if backup_id in ("latest", manifest["id"]):
            return folder, manifest
    raise BackupError(f"no backup {backup_id!r}; have: {[manifest['id'] for _, manifest in found[:10]]}")


def restore_check_due(root: Path, every: timedelta, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    checked = [datetime.fromisoformat(m["restore_check"]["at"]) for _, m in backups(root) if m.get("restore_check")]
    return not checked or now - max(checked) >= every


def prune(root: Path, keep: int, *, now: datetime | None = None) -> list[str]:
    """Keep the ``keep`` newest backups and the newest restore-checked one (whatever its age); delete the others,
    and partial (unverified or failed) ones older than a day."""
    now = now or datetime.now(UTC)
    found = backups(root)
    restore_checked = next((folder.name for folder, manifest in found if manifest.get("restore_check")), None)
    deleted = [folder.name for folder, _ in found[keep:] if folder.name != restore_checked]
    for name in deleted:
        shutil.rmtree(root / name)
    for folder in root.glob("*" + PARTIAL):
        if now - datetime.fromtimestamp(folder.stat().st_mtime, UTC) > timedelta(days=1):
            shutil.rmtree(folder)
            deleted.append(folder.name)
    return deleted
