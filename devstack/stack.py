"""The sandbox plus real Airflow, started together and stopped together (``make up``, ``make demo``, e2e tests)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from devstack.airflow import CELERY_WORKERS, REPO, AirflowStack, Ports
from devstack.client import AirflowClient, SandboxClient
from devstack.processes import Child, MemorySampler
from sandbox.launcher import SETTINGS_FILE, read_settings
from sandbox.platform_db import DEFAULT_ROWS
from tradeops.config import default_config_path, load_config

DEMO_CONFIG = REPO / "include" / "config" / "tradeops.demo.yaml"  # the production config, escalation in seconds


def start_sandbox(
    state_dir: Path,
    log_path: Path,
    *args: str,
    timeout: float = 300,
    on_start=lambda pid: None,
    extra_env: dict[str, str] | None = None,
) -> tuple[Child, dict]:
    """``python -m sandbox --state-dir STATE_DIR up ARGS`` as a child process; returns it and its settings once
    every service answers (it is stopped again if it never gets there)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]), **(extra_env or {})}
    (state_dir / SETTINGS_FILE).unlink(missing_ok=True)
    child = Child(
        "sandbox",
        [sys.executable, "-m", "sandbox", "--state-dir", str(state_dir), "up", *args],
        env,
        log_path,
        cwd=REPO,
    )
    on_start(child.pid)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not child.alive():
                last_line = (child.tail(1) or "no output").strip()
                raise RuntimeError(f"the sandbox exited during start-up ({last_line}); its log: {log_path}")
            try:
                return child, read_settings(state_dir)
            except FileNotFoundError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    except BaseException:
        child.stop()
        raise


class LocalStack:
    def __init__(
        self,
        run_dir: Path,
        *,
        auto_ports: bool = False,
        rows: int = DEFAULT_ROWS,
        config_path: Path | None = None,
        extra_env: dict[str, str] | None = None,
        extra_dag_files: list[Path] = (),
        log=lambda message: print(message, flush=True),
        on_child_started=lambda pid: None,
        sample_memory: bool = True,
        celery: bool = False,
    ):
        self.run_dir = run_dir.resolve()
        self.auto_ports = auto_ports
        self.rows = rows
        self.config_path = (config_path or default_config_path()).resolve()
        self.config = load_config(self.config_path)
        # The calendar and template caches are this stack's own unless the caller shares one (tests: one per session).
        cache_dir = os.environ.get("TRADEOPS_CACHE_DIR") or str(self.run_dir / "cache")
        self.extra_env = {"TRADEOPS_CACHE_DIR": cache_dir, **(extra_env or {})}
        self.on_child_started = on_child_started
        self.extra_dag_files = list(extra_dag_files)
        self.log = log
        self.sandbox_child: Child | None = None
        self.settings: dict = {}
        self.airflow: AirflowStack | None = None
        self.client: AirflowClient | None = None
        self.memory = MemorySampler()
        # Reading every process's smaps twice a second cost an idle `make up` ~15% of a core here.
        self.sample_memory = sample_memory
        self.celery_workers = CELERY_WORKERS if celery else ()

    @property
    def sandbox(self) -> SandboxClient:
        return SandboxClient(self.settings)

    def start(self) -> LocalStack:
        started = time.monotonic()
        shutil.rmtree(self.run_dir / "airflow", ignore_errors=True)
        args = ["--rows", str(self.rows), "--config", str(self.config_path)]
        if self.auto_ports:
            args.append("--auto-ports")
        self.log("Starting the sandbox (PostgreSQL, Redis, platform API, Alertmanager, Slack)...")
        if self.sample_memory:
            self.memory.start()
        self.sandbox_child, self.settings = start_sandbox(
            self.run_dir / "sandbox",
            self.run_dir / "sandbox.log",
            *args,
            on_start=self._child_started,
            extra_env={"TRADEOPS_CACHE_DIR": self.extra_env["TRADEOPS_CACHE_DIR"]},
        )
        self.log(f"  sandbox ready in {time.monotonic() - started:.1f}s")

        self.airflow = AirflowStack(
            self.run_dir / "airflow",
            self.settings,
            self.config,
            self.config_path,
            ports=Ports.auto() if self.auto_ports else Ports(),
            extra_env=self.extra_env,
            dags_folder=self._dags_folder(),
            celery_workers=self.celery_workers,
        )
        self.log("Migrating the Airflow metadata database...")
        self.airflow.migrate()
        workers = "".join(f", Celery worker {w.name} ({','.join(w.queues)})" for w in self.celery_workers)
        self.log(
            f"Starting Airflow: scheduler, dag-processor, triggerer, api-server{workers} ({self.airflow.executor})..."
        )
        self.airflow.start()
        for pid in self.airflow.pids():
            self._child_started(pid)
        self.client = self.airflow.wait_healthy()
        if self.celery_workers:
            self.airflow.wait_workers()
        # The Slack app's buttons post to the TradeOps app on the api-server, as a real Slack app's would.
        self.sandbox.set_interactivity(f"{self.airflow.url}/tradeops/slack/actions")
        # Alertmanager's receiver is the TradeOps app's webhook, as a production alertmanager.yml names it.
        self.sandbox.set_alert_receiver(self.alert_webhook_url)
        self.log(f"  Airflow healthy at {self.airflow.url} ({time.monotonic() - started:.1f}s since start)")
        return self

    @property
    def alert_webhook_url(self) -> str:
        return f"{self.airflow.url}/tradeops/alertmanager/webhook"

    def _child_started(self, pid: int) -> None:
        self.memory.roots.append(pid)
        self.on_child_started(pid)

    @property
    def dags_folder(self) -> Path:
        return self.run_dir / "dags" if self.extra_dag_files else REPO / "dags"

    def _dags_folder(self) -> Path:
        """The repository's DAGs, plus extra files (tests' probe DAGs) in a folder of this run's own."""
        if not self.extra_dag_files:
            return self.dags_folder
        shutil.rmtree(self.dags_folder, ignore_errors=True)
        self.dags_folder.mkdir(parents=True)
        for path in [*sorted((REPO / "dags").glob("*.py")), *self.extra_dag_files]:
            shutil.copy(path, self.dags_folder / path.name)
        return self.dags_folder

    def stop(self) -> None:
        if self.airflow:
            self.log("Stopping Airflow...")
            self.airflow.stop()
        if self.sandbox_child:
            self.log("Stopping the sandbox...")
            self.sandbox_child.stop()
        self.memory.stop()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
