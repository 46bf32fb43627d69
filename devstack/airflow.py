"""Run the real Airflow components against the sandbox: migrate, then scheduler, dag-processor, triggerer and
api-server as children of this process (LocalExecutor, parallelism sized for 2 cores), and stop them cleanly.

With Celery workers (``make up-celery``) the same components run the CeleryExecutor instead, with the sandbox's Redis
as the broker and its PostgreSQL (the metadata database) as the result backend, and each worker serves its queues:
the DAG kit puts cluster changes on ``kubernetes`` and maintenance and backups on ``database``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.client import AirflowClient
from devstack.processes import Child
from sandbox.connections import airflow_connection_env
from sandbox.launcher import free_port
from tradeops.config import CONFIG_ENV, TradeOpsConfig
from tradeops.workers import WORKER_NAME_ENV

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
# Longer than the longest task (the weekly window's 2 h, its rollout waits included): a task still running when it
# passes would be handed to a second worker.
VISIBILITY_TIMEOUT_S = 6 * 3600


@dataclass(frozen=True)
class CeleryWorker:
    """One ``airflow celery worker``: its name (on its task instances' ``hostname``), queues and slots."""

    name: str
    queues: tuple[str, ...]
    concurrency: int = 2

    @property
    def component(self) -> str:
        return f"worker-{self.name}"


# Two workers, each with its own kind of work and both with the rest, so either can take over what the other
# dropped: the cluster work on one host, the database work on another.
CELERY_WORKERS = (CeleryWorker("cluster", ("default", "kubernetes")), CeleryWorker("data", ("default", "database")))


@dataclass(frozen=True)
class Ports:
    api: int = 8080
    scheduler_health: int = 8974
    worker_logs: int = 8793
    triggerer_logs: int = 8794

    @classmethod
    def auto(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


class AirflowStack:
    def __init__(
        self,
        home: Path,
        sandbox_settings: dict,
        config: TradeOpsConfig,
        config_path: Path,
        ports: Ports = Ports(),
        parallelism: int = 4,
        extra_env: dict[str, str] | None = None,
        dags_folder: Path = REPO / "dags",
        celery_workers: tuple[CeleryWorker, ...] = (),
    ):
        self.home = home.resolve()
        self.sandbox = sandbox_settings
        self.config = config
        self.config_path = config_path.resolve()
        self.ports = ports
        self.parallelism = parallelism
        self.extra_env = extra_env or {}
        self.dags_folder = dags_folder
        self.celery_workers = celery_workers
        self.children: list[Child] = []

    @property
    def executor(self) -> str:
        return "CeleryExecutor" if self.celery_workers else "LocalExecutor"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    def env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        self.home.mkdir(parents=True, exist_ok=True)
        secret_file = self.home / "secrets.env"
        if not secret_file.exists():
            secret_file.write_text(f"{Fernet.generate_key().decode()}\n{secrets.token_urlsafe(32)}\n")
            secret_file.chmod(0o600)
        fernet_key, jwt_secret = secret_file.read_text().split()
        metadata = self.sandbox["postgres"]["airflow_dsn"].replace("postgresql://", "postgresql+psycopg://", 1)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": fernet_key,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports.api),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports.scheduler_health),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.triggerer_logs),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            CONFIG_ENV: str(self.config_path),
            "TRADEOPS_REPORTS_DIR": str(self.reports_dir),
            "TRADEOPS_BACKUP_DIR": str(self.home / "backups"),
            **airflow_connection_env(self.sandbox, self.config),
            # The daily ops report reads the day's runs from this api-server, and the escalation engine starts P1
            # incidents' runbooks through it (simple auth: every user is an admin).
            f"AIRFLOW_CONN_{self.config.connections.airflow_api.upper()}": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": self.ports.api, "schema": "http"}
            ),
            **(self._celery_env(metadata) if self.celery_workers else {}),
            **self.extra_env,
        }
        # The components find `tradeops` through Airflow's plugins folder, as in production; a PYTHONPATH
        # inherited from the launcher would hide a packaging mistake.
        env.pop("PYTHONPATH", None)
        return env

    def _celery_env(self, metadata_dsn: str) -> dict[str, str]:
        broker = urlsplit(self.sandbox["redis"]["url"])  # its own Redis database, apart from the platform's data
        return {
            "AIRFLOW__CELERY__BROKER_URL": urlunsplit(broker._replace(path="/1")),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_dsn,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tradeops.workers.worker_hostname",
        }

    def _airflow(self) -> str:
        return str(Path(sys.executable).with_name("airflow"))

    def migrate(self) -> None:
        result = subprocess.run(
            [self._airflow(), "db", "migrate"], env=self.env(), capture_output=True, text=True, cwd=self.home
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

    def start(self, components: tuple[str, ...] | None = None) -> None:
        env = self.env()
        if components is None:
            components = (*COMPONENTS, *(worker.component for worker in self.celery_workers))
        workers = {worker.component: worker for worker in self.celery_workers}
        for component in components:
            if component in workers:
                self.children.append(self._celery_worker(workers[component], env))
                continue
            # One machine, one log folder: the api-server reads task and trigger logs from disk, so the
            # scheduler's and triggerer's log-serving processes (~150 MB) are not needed.
            flags = ["--skip-serve-logs"] if component in ("scheduler", "triggerer") else []
            self.children.append(
                Child(
                    component,
                    [self._airflow(), component, *flags],
                    env,
                    self.home / "logs" / f"{component}.log",
                    cwd=self.home,
                )
            )

    def _celery_worker(self, worker: CeleryWorker, env: dict[str, str]) -> Child:
        # --skip-serve-logs: workers on one host would fight over the log port; the api-server reads the files.
        argv = [self._airflow(), "celery", "worker", "--queues", ",".join(worker.queues)]
        argv += [
            "--concurrency",
            str(worker.concurrency),
            "--celery-hostname",
            f"{worker.name}@%h",
            "--skip-serve-logs",
        ]
        return Child(
            worker.component,
            argv,
            {**env, WORKER_NAME_ENV: worker.name},
            self.home / "logs" / f"{worker.component}.log",
            cwd=self.home,
        )

    def wait_workers(self, timeout: float = 120) -> list[str]:
        """Wait until every Celery worker answers a ping on the broker; return their Celery names."""
        expected = {f"{worker.name}@" for worker in self.celery_workers}
        ping = (
            "from airflow.providers.celery.executors.celery_executor import app;"
            "print(' '.join(sorted(name for reply in app.control.ping(timeout=2) for name in reply)))"
        )
        deadline = time.monotonic() + timeout
        answered: list[str] = []
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    raise RuntimeError(
                        f"airflow {child.name} exited with code {child.process.returncode}:\n{child.tail()}"
                    )
            result = subprocess.run([sys.executable, "-c", ping], env=self.env(), capture_output=True, text=True)
            answered = result.stdout.split()
            if all(any(name.startswith(prefix) for name in answered) for prefix in expected):
                return answered
        raise TimeoutError(f"Celery workers not all answering after {timeout:.0f}s: {answered}")

    def kill(self, components: tuple[str, ...]) -> None:
        """SIGKILL these components (and their workers), as a crash would: no clean shutdown."""
        for child in [c for c in self.children if c.name in components]:
            child.kill()
            self.children.remove(child)

    def restart(self, components: tuple[str, ...]) -> AirflowClient:
        """Kill these components (as a crash would), start them again, and wait until Airflow reports healthy."""
        self.kill(components)
        self.start(components)
        return self.wait_healthy()

    def wait_healthy(self, timeout: float = 180) -> AirflowClient:
        """Wait until the api-server answers and reports every component healthy; return a logged-in client."""
        deadline = time.monotonic() + timeout
        client = AirflowClient(self.url)
        last = "api-server not answering yet"
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    raise RuntimeError(
                        f"airflow {child.name} exited with code {child.process.returncode}:\n{child.tail()}"
                    )
            health = client.health()
            if health is not None:
                unhealthy = [
                    name for name, part in health.items() if isinstance(part, dict) and part.get("status") != "healthy"
                ]
                if not unhealthy:
                    client.login()
                    return client
                last = f"waiting for {', '.join(unhealthy)}"
            time.sleep(0.5)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s: {last}")

    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def stop(self) -> None:
        # The api-server goes last: tasks finishing during shutdown still report their state through it.
        for child in sorted(self.children, key=lambda c: c.name == "api-server"):
            child.stop()
        self.children.clear()
