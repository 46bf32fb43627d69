"""One stack per run directory: ``make demo`` while ``make up`` runs says so instead of fighting over ports.

The lock is an ``flock`` on ``<run dir>/stack.lock``, so the kernel releases it when its owner dies, however it dies.
The file names the owner (pid, command, start time) for the message, and the stack's child processes, so the next
owner can stop what a killed launcher left behind before starting its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import psutil

LOCK_FILE = "stack.lock"


class StackBusy(RuntimeError):
    pass


class RunLock:
    def __init__(self, run_dir: Path, command: str):
        self.path = run_dir / LOCK_FILE
        self.command = command
        self.children: list[dict] = []
        self._file = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(self.path, "a+")  # noqa: SIM115  # held until release()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StackBusy(self._busy_message()) from None
        self._file = lock
        stop_leftovers(self._read().get("children", []))
        self._write()
        return self

    def add_child(self, pid: int) -> None:
        try:
            self.children.append({"pid": pid, "started": psutil.Process(pid).create_time()})
        except psutil.NoSuchProcess:  # already gone: nothing to stop later
            return
        self._write()

    def release(self) -> None:
        if self._file is not None:
            self._file.truncate(0)
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _write(self) -> None:
        owner = {"pid": os.getpid(), "command": self.command, "since": time.time(), "children": self.children}
        self._file.seek(0)
        self._file.truncate(0)
        self._file.write(json.dumps(owner))
        self._file.flush()

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _busy_message(self) -> str:
        owner = self._read()
        pid, command = owner.get("pid", "?"), owner.get("command", "another stack")
        since = datetime.fromtimestamp(owner["since"]).strftime("%H:%M:%S") if "since" in owner else "?"
        return (
            f"`make {command}` is already running from this checkout (pid {pid}, since {since}, run directory "
            f"{self.path.parent}): stop it first (Ctrl-C in its terminal, or `kill {pid}`), then run `make "
            f"{self.command}` again"
        )


def stop_leftovers(children: list[dict], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL, the process groups of a dead launcher's children that are still running (matched by
    pid and start time, so a reused pid is left alone)."""
    groups = []
    for child in children:
        try:
            if psutil.Process(child["pid"]).create_time() == child["started"]:
                groups.append(child["pid"])
        except (psutil.NoSuchProcess, KeyError):
            continue
    _signal_groups(groups, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while groups and time.monotonic() < deadline:
        groups = [pid for pid in groups if _running(pid)]
        time.sleep(0.2)
    _signal_groups(groups, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_groups(groups: list[int], sig: int) -> None:
    for pid in groups:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
