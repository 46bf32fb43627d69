"""Run ``python -m devstack`` and ``python -m sandbox`` as a user's shell would, and find what they leave running.

Every process a launched command starts inherits a marker in its environment (PostgreSQL too, though it runs as
another OS user), so "nothing left running" is checked over the whole tree, whoever reparented it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
MARK_ENV = "TRADEOPS_TEST_STACK_MARK"
# What the test session sets for itself; a user's shell has none of it (make exports only PYTHONPATH).
SESSION_ONLY = ("AIRFLOW_HOME", "TRADEOPS_REPORTS_DIR", "TRADEOPS_CACHE_DIR", "PYTHONPATH")


class Launched:
    """A command started in its own session with its output in files, and the marker its processes carry."""

    def __init__(self, argv: list[str], log_dir: Path, name: str, cwd: Path = REPO, python: str = sys.executable):
        self.mark = uuid.uuid4().hex
        self.stdout_path, self.stderr_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                argv if argv[0] == "make" else [python, "-m", *argv],
                cwd=cwd,
                env=user_env(self.mark, cwd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            if self.process.poll() is not None:
                pytest.fail(f"exited ({self.process.returncode}) before {text!r}:\n{self.stdout}{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout:.0f}s:\n{self.stdout}{self.stderr}")
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
            pytest.fail(f"still running after {timeout:.0f}s:\n{self.stdout}{self.stderr}")

    def leftovers(self, timeout: float = 30) -> list[str]:
        """The processes of this command still running after ``timeout`` seconds (killed, so none leaks)."""
        deadline = time.monotonic() + timeout
        while (left := marked_processes(self.mark)) and time.monotonic() < deadline:
            time.sleep(0.5)
        described = []
        for proc in left:
            try:
                described.append(f"{proc.pid} {proc.username()} {' '.join(proc.cmdline())[:150]}")
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        return described


def user_env(mark: str, repo: Path = REPO) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SESSION_ONLY and not name.startswith("AIRFLOW__") and not name.startswith("AIRFLOW_CONN_")
    }
    return {**env, "PYTHONPATH": f"{repo / 'plugins'}:{repo}", "PYTHONUNBUFFERED": "1", MARK_ENV: mark}


def marked_processes(mark: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK_ENV) == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@contextmanager
def port_taken(port: int):
    """Listen on 127.0.0.1:``port`` for the block; if another program already does, it is taken all the same."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            pass
        yield


@pytest.fixture
def launch(tmp_path):
    """``launch(argv, name)``; whatever the test leaves running is killed at teardown (a failed test leaks nothing)."""
    launched: list[Launched] = []

    def start(argv: list[str], name: str, **kwargs) -> Launched:
        launched.append(Launched(argv, tmp_path, name, **kwargs))
        return launched[-1]

    yield start
    for command in launched:
        if command.process.poll() is None:
            os.killpg(command.process.pid, 9)
            command.process.wait()
        command.leftovers(timeout=0)
