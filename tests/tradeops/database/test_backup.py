"""Backups against real PostgreSQL with the real pg_dump/pg_restore: dump, verify, restore into a scratch database,
compare row counts (exactly, even with a writer running during the dump); corruption is caught by verification."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.tradeops.database.conftest import Writer
from tradeops.config.database import Backup
from tradeops.database import backup
from tradeops.exceptions import BackupError


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Backup:
    monkeypatch.setenv("TRADEOPS_BACKUP_DIR", str(tmp_path / "backups"))
    return Backup(directory="/nonexistent/overridden-by-env", jobs=2, compression=1, keep=2)


def databases(db) -> set[str]:
    return {r["datname"] for r in db.execute("SELECT datname FROM pg_database")}


def test_dump_verify_restore_and_compare_while_a_writer_writes(platform_copy, db, settings):
    writer = Writer(platform_copy)
    writer.start()
    folder, manifest = backup.take_backup(platform_copy, settings)
    writer.finish()
    assert folder.name == manifest["id"] + ".partial"
    assert backup.backups(backup.backup_root(settings)) == [], "nothing is a backup before it is verified"
    assert manifest["row_counts"]["audit_log"] > 0 and manifest["row_counts"]["trades"] > 0
    assert all(len(meta["sha256"]) == 64 for meta in manifest["files"].values())
    assert manifest["bytes"] == sum(
        p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != backup.MANIFEST
    )
    live = db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]
    assert live > manifest["row_counts"]["audit_log"], "the writer kept writing after the dump's snapshot"

    verified = backup.verify(folder)
    assert verified["toc_entries"] > 20
    before = databases(db)
    restored = backup.restore_check(folder, platform_copy, settings.jobs)
    assert restored["rows"] == sum(manifest["row_counts"].values())
    assert databases(db) == before, "the scratch database is dropped afterwards"
    assert json.loads((folder / backup.MANIFEST).read_text())["restore_check"]["rows"] == restored["rows"]
    published = backup.publish(folder)
    assert [m["id"] for _, m in backup.backups(backup.backup_root(settings))] == [manifest["id"]]
    assert published.name == manifest["id"] and not folder.exists()
    assert not backup.restore_check_due(backup.backup_root(settings), timedelta(days=7))


def test_custom_format_round_trips_too(platform_copy, settings):
    custom = settings.model_copy(update={"format": "custom"})
    folder, manifest = backup.take_backup(platform_copy, custom)
    assert list(manifest["files"]) == ["data.dump"]
    backup.verify(folder)
    assert backup.restore_check(folder, platform_copy, 2)["rows"] == sum(manifest["row_counts"].values())


def test_a_corrupted_backup_file_fails_verification(platform_copy, settings):
    folder, manifest = backup.take_backup(platform_copy, settings)
    biggest = max((p for p in (folder / "data").iterdir() if p.suffix == ".gz"), key=lambda p: p.stat().st_size)
    with biggest.open("r+b") as handle:  # one flipped byte in the middle of a table's data
        handle.seek(biggest.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BackupError, match=f"corrupt: data/{biggest.name}: checksum mismatch"):
        backup.verify(folder)
    (folder / "data" / "toc.dat").unlink()
    with pytest.raises(BackupError, match="data/toc.dat: missing"):
        backup.verify(folder)


def test_a_restore_that_differs_from_the_manifest_fails(platform_copy, settings):
    folder, manifest = backup.take_backup(platform_copy, settings)
    edited = {**manifest, "row_counts": {**manifest["row_counts"], "trades": manifest["row_counts"]["trades"] + 1}}
    (folder / backup.MANIFEST).write_text(json.dumps(edited))
    with pytest.raises(BackupError, match="restored row counts differ.*trades"):
        backup.restore_check(folder, platform_copy, 2)


def test_a_restore_into_a_new_database_drops_it_when_it_fails(platform_copy, db, settings):
    folder, manifest = backup.take_backup(platform_copy, settings)
    folder = backup.publish(folder)
    assert backup.find_backup(backup.backup_root(settings), "latest") == (folder, manifest)
    assert backup.find_backup(backup.backup_root(settings), manifest["id"]) == (folder, manifest)
    with pytest.raises(BackupError, match="no backup 'grandmodel-20200101T000000Z'; have: "):
        backup.find_backup(backup.backup_root(settings), "grandmodel-20200101T000000Z")

    target = f"restored_{uuid.uuid4().hex[:8]}"
    try:
        restored = backup.restore_into_new_database(folder, platform_copy, target, 2)
        assert restored["rows"] == sum(manifest["row_counts"].values())
        assert backup.database_exists(platform_copy, target)
    finally:
        backup.drop_database(platform_copy, target)
    assert not backup.database_exists(platform_copy, target)

    edited = {**manifest, "row_counts": {**manifest["row_counts"], "trades": manifest["row_counts"]["trades"] + 1}}
    (folder / backup.MANIFEST).write_text(json.dumps(edited))
    before = databases(db)
    with pytest.raises(BackupError, match="restored row counts differ"):
        backup.restore_into_new_database(folder, platform_copy, target, 2)
    assert databases(db) == before, "the half-restored copy is dropped, so that a retry starts clean"


def test_no_backup_to_find_under_an_empty_root(tmp_path):
    with pytest.raises(BackupError, match="no complete backup under"):
        backup.find_backup(tmp_path, "latest")


def test_the_newest_backups_and_the_last_restore_checked_one_are_kept(platform_copy, settings):
    now = datetime.now(UTC)
    root = backup.backup_root(settings)
    ids = []
    for hours in (4, 3, 2, 1):
        folder, manifest = backup.take_backup(platform_copy, settings, now=now - timedelta(hours=hours))
        if hours == 4:  # the oldest is the only one restored and compared
            backup.restore_check(folder, platform_copy, 2)
        backup.publish(folder)
        ids.append(manifest["id"])
    failed, _ = backup.take_backup(platform_copy, settings, now=now)  # never verified: stays partial
    stale = root / "grandmodel-20200101T000000Z.partial"
    stale.mkdir()
    os.utime(stale, (0, 0))

    deleted = backup.prune(root, settings.keep)

    assert sorted(deleted) == sorted([ids[1], stale.name])
    assert [m["id"] for _, m in backup.backups(root)] == [ids[3], ids[2], ids[0]]
    assert failed.is_dir(), "a recent partial backup may still be in progress: left alone"


def test_pg_dump_older_than_the_server_is_never_used():
    with pytest.raises(BackupError, match="no pg_dump of version 99 or newer"):
        backup.pg_tool("pg_dump", 99)


def test_the_password_reaches_pg_dump_through_its_environment_only(platform_copy):
    env = backup.libpq_env(platform_copy)
    password = psycopg.conninfo.conninfo_to_dict(platform_copy)["password"]
    assert env["PGPASSWORD"] == password and env["PGDATABASE"].startswith("platform_test_")


@pytest.fixture
def eager_autovacuum(sandbox_settings):
    """Autovacuum looking for work every second (60 s by default) for the test's duration; needs the embedded
    server's superuser."""
    pg = sandbox_settings["postgres"]
    if not pg["admin_socket_dir"]:
        pytest.skip("needs the embedded PostgreSQL's superuser to change autovacuum_naptime")
    with psycopg.connect(
        host=pg["admin_socket_dir"], port=pg["port"], user="postgres", dbname="postgres", autocommit=True
    ) as admin:
        admin.execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        admin.execute("SELECT pg_reload_conf()")
        try:
            yield
        finally:
            admin.execute("ALTER SYSTEM RESET autovacuum_naptime")
            admin.execute("SELECT pg_reload_conf()")


def test_a_scratch_database_is_dropped_while_autovacuum_analyses_it(platform_copy, db, eager_autovacuum):
    """The CI failure this guards against: ``DROP DATABASE ... WITH (FORCE)`` as the maintenance role raised
    "permission denied to terminate process" because an autovacuum worker was analysing the database."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    scratch = backup.create_database(platform_copy, name)
    with psycopg.connect(scratch, autocommit=True) as conn:
        # An expression index whose function sleeps only inside autovacuum holds a worker in the database.
        conn.execute(
            "CREATE FUNCTION held(x int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN "
            "IF (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid()) = 'autovacuum worker' "
            "THEN PERFORM pg_sleep(60); END IF; RETURN x; END $$"
        )
        conn.execute(
            "CREATE TABLE t (x int) WITH (autovacuum_analyze_threshold = 0, autovacuum_analyze_scale_factor = 0)"
        )
        conn.execute("CREATE INDEX ON t (held(x))")
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")

    worker = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = %s AND backend_type = 'autovacuum worker'"
    deadline = time.monotonic() + 30
    while db.execute(worker, (name,)).fetchone()["n"] == 0:
        assert time.monotonic() < deadline, "autovacuum never started on the scratch database"
        time.sleep(0.1)
    with (
        psycopg.connect(platform_copy, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="terminate"),
    ):
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))

    backup.drop_database(platform_copy, name)
    assert not backup.database_exists(platform_copy, name)
