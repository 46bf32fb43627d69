"""Child processes that cannot outlive the launcher, and a memory sampler over the whole process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from sandbox.servers import die_with_parent


class Child:
    """A named child process in its own session (Ctrl-C reaches only the launcher, which stops children in order)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115  # open as long as the process runs
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM the child's whole process group, wait, then SIGKILL whatever is left."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.process.wait()
        # Workers a component forked into its group must not survive it.
        _signal_group(self.pid, signal.SIGKILL)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash or an OOM kill would."""
        _signal_group(self.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class MemorySampler:
    """Samples the RSS and PSS of a set of root processes and all their descendants; keeps the peaks."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.roots: list[int] = []
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> tuple[int, int, int]:
        import psutil

        seen: dict[int, psutil.Process] = {}
        for pid in list(self.roots):
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    seen[proc.pid] = proc
            except psutil.NoSuchProcess:
                continue
        rss = pss = 0
        for proc in seen.values():
            try:
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return rss, pss, len(seen)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss, count = self.sample()
            if rss > self.peak_rss:
                self.peak_rss, self.peak_processes = rss, count
            self.peak_pss = max(self.peak_pss, pss)
            time.sleep(self.interval)
