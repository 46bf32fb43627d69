"""A private home for the embedded PostgreSQL: its data, its sockets and, when it runs as another OS user, its
server binaries.

PostgreSQL refuses to run as root, so as root the sandbox runs it as the unprivileged ``pgserver`` user. That user
cannot enter a checkout under a 0700 directory (root's home, what ``mktemp -d`` makes), so nothing it needs may live
there, and the user's directories keep their permissions. Each sandbox gets a fresh directory of its own instead, in
RAM (``/dev/shm``; the system temp dir without it), made by ``mkdtemp`` (mode 0700, an unguessable name) and owned by
the user PostgreSQL runs as. It holds the data directory, the socket directory and, when privileges drop, a copy of
the part of pgserver's installation the server runs (~15 MB; PostgreSQL finds its libraries and shared files relative
to the real path of its binary, so a symlink would not do).

The name carries the sandbox's pid, so a later sandbox removes the homes of sandboxes that were killed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "tradeops-sandbox-"
POSTGRES_OS_USER = "pgserver"
IN_RAM_ENV = "TRADEOPS_SANDBOX_PGDATA_IN_RAM"


@dataclass(frozen=True)
class PostgresHome:
    root: Path
    run_as: str | None  # the OS user PostgreSQL runs as; None: this process's user
    server_bin: Path  # where initdb and postgres are

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sockets"

    @classmethod
    def create(cls, installed_bin: Path) -> PostgresHome:
        run_as = postgres_os_user()
        base = _base_dir()
        remove_abandoned(base)
        root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
        home = cls(root, run_as, _copy_server(installed_bin, root / "install") if run_as else installed_bin)
        home.socket_dir.mkdir()
        home.hand_over(root)
        return home

    def hand_over(self, path: Path) -> None:
        """Give ``path`` (and everything under it) to the user PostgreSQL runs as."""
        if self.run_as:
            subprocess.run(["chown", "-R", f"{self.run_as}:{self.run_as}", str(path)], check=True, timeout=60)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root; as root, run it as the unprivileged user pgserver uses (created once)."""
    if os.geteuid() != 0:
        return None
    for _ in range(5):
        try:
            pwd.getpwnam(POSTGRES_OS_USER)
            return POSTGRES_OS_USER
        except KeyError:
            # Two sandboxes starting together may both try; the loser's useradd fails and the lookup then succeeds.
            subprocess.run(
                ["useradd", "--system", "--no-create-home", POSTGRES_OS_USER], capture_output=True, timeout=30
            )
            time.sleep(0.2)
    raise RuntimeError(f"could not create the OS user {POSTGRES_OS_USER!r} PostgreSQL runs as when started by root")


def remove_abandoned(base: Path) -> None:
    """Remove the homes of sandboxes that died without cleaning up (SIGKILL, a crash)."""
    owners = {os.geteuid()}
    if os.geteuid() == 0:
        try:
            owners.add(pwd.getpwnam(POSTGRES_OS_USER).pw_uid)
        except KeyError:
            pass
    for path in base.glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        stat = path.lstat()
        if path.is_dir() and not path.is_symlink() and stat.st_uid in owners:
            shutil.rmtree(path, ignore_errors=True)


def _base_dir() -> Path:
    """In RAM when the machine has it: the sandbox's data is disposable, and a cluster of a few thousand files copies
    ten times faster there than on a virtual disk."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and os.environ.get(IN_RAM_ENV, "1") == "1":
        return shm
    return Path(tempfile.gettempdir())


def _copy_server(installed_bin: Path, target: Path) -> Path:
    """Copy what initdb and postgres load, in pgserver's layout (initdb finds libpq in ``../../../pgserver.libs``)."""
    install = installed_bin.parent  # site-packages/pgserver/pginstall
    site = install.parent.parent
    copied = target / "pgserver" / "pginstall"
    (copied / "bin").mkdir(parents=True)
    for program in ("initdb", "postgres"):
        shutil.copy2(installed_bin / program, copied / "bin" / program)
    shutil.copytree(install / "lib" / "postgresql", copied / "lib" / "postgresql")
    shutil.copytree(install / "share", copied / "share")
    shutil.copytree(site / "pgserver.libs", target / "pgserver.libs")
    return copied / "bin"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
