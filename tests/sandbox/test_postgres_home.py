"""The embedded PostgreSQL runs wherever the checkout is (as root: as another OS user) without loosening the
permissions of the user's directories, and each sandbox's files are its own and go away with it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from sandbox import servers
from sandbox.launcher import free_port
from sandbox.postgres_home import POSTGRES_OS_USER, PREFIX, remove_abandoned
from sandbox.servers import PostgresServer


def test_postgres_starts_from_a_0700_directory_with_a_space_and_leaves_its_permissions(tmp_path, monkeypatch):
    private = tmp_path / "private dir"
    private.mkdir(mode=0o700)
    installed = _package_copy(private)  # pgserver's files inside the private directory, as in a checkout's .venv
    monkeypatch.setattr(servers, "_pgserver_bin_dir", lambda: installed)
    state_dir = private / "state"
    state_dir.mkdir()
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path, private, state_dir)}

    server = PostgresServer(state_dir, free_port())
    try:
        server.start()
        with server.admin_connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        home = server.home.root
        assert home.parent in (Path("/dev/shm"), Path(tempfile.gettempdir()))
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        if os.geteuid() == 0:
            assert home.owner() == POSTGRES_OS_USER and server.home.server_bin.is_relative_to(home)
    finally:
        server.stop()
    assert not home.exists()
    assert {path: stat.S_IMODE(path.stat().st_mode) for path in modes} == modes


def test_a_sandbox_removes_the_homes_of_dead_sandboxes_only(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / f"{PREFIX}{finished.pid}-abc"
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{PREFIX}c04f6ffdb361"  # not a name the sandbox makes
    for path in (dead, alive, other):
        (path / "pgdata").mkdir(parents=True)
    remove_abandoned(tmp_path)
    assert not dead.exists() and alive.exists() and other.exists()


def _package_copy(target: Path) -> Path:
    site = servers._pgserver_bin_dir().parents[2]
    for package in ("pgserver", "pgserver.libs"):
        shutil.copytree(site / package, target / package, symlinks=True)
    return target / "pgserver" / "pginstall" / "bin"
