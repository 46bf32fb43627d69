"""Start the whole sandbox platform in one process and describe it in ``settings.json``.

One process owns everything: PostgreSQL and Redis run as its children; the HTTP services (the trading
platform API, Alertmanager, Slack; the Kubernetes API joins through :data:`HTTP_SERVICES`) run as uvicorn
servers on one event loop. SIGTERM/SIGINT stops all of it. ``settings.json`` (mode 0600: it holds the
generated secrets) appears only once every service answers, so its presence means "ready".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from psycopg import sql

from sandbox import alertmanager, platform_api, platform_db, slack
from sandbox.connections import write_private_json
from sandbox.kubernetes.service import KubernetesSandbox
from sandbox.servers import PG_DSN_ENV, REDIS_URL_ENV, PostgresServer, RedisServer, Role, dsn
from sandbox.template_cache import cache_dir, forget_old_templates, templates_locked
from tradeops.config import TradeOpsConfig, load_config
from tradeops.incidents import store as incidents_store

DEFAULT_PORTS = {
    "postgres": 15432,
    "redis": 16379,
    "platform_api": 18081,
    "slack": 18082,
    "alertmanager": 19093,
    "kubernetes": 16443,
}
SETTINGS_FILE = "settings.json"
CACHEABLE_ROWS = 200_000
STATE_DATABASE = "tradeops"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now (SO_REUSEADDR, as the servers set: TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def default_ports_in_use(bind_host: str = "127.0.0.1") -> dict[str, int]:
    """The default ports another program holds (PostgreSQL and Redis listen on 127.0.0.1, the rest on bind_host)."""
    return {
        name: port
        for name, port in DEFAULT_PORTS.items()
        if not port_is_free(port, "127.0.0.1" if name in ("postgres", "redis") else bind_host)
    }


@dataclass
class Secrets:
    platform_api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    slack_bot_token: str = field(default_factory=lambda: "xoxb-sandbox-" + secrets.token_hex(12))
    slack_webhook_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    slack_signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    alertmanager_webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    tradeops_db_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    platform_app_db_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    airflow_db_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))


class HttpServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the sandbox (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def http_services(sandbox: Sandbox) -> dict[str, Callable[[], object]]:
    """The HTTP services the sandbox serves, by port name (see DEFAULT_PORTS), in start order.

    A factory returns a FastAPI app, or a service object with ``app``, ``run(stop)`` (a background coroutine, such
    as the Kubernetes controllers) and ``settings()`` (merged into the sandbox's settings).
    """
    cfg, sec, s = sandbox.config, sandbox.secrets, sandbox.settings
    return {
        "kubernetes": sandbox.kubernetes,
        "platform_api": lambda: platform_api.create_app(
            platform_api.PlatformState(cfg, s["postgres"]["platform_app_dsn"], sec.platform_api_token)
        ),
        "alertmanager": lambda: alertmanager.create_app(alertmanager.AlertStore(sec.alertmanager_webhook_token)),
        "slack": lambda: slack.create_app(
            slack.SlackState(
                sec.slack_bot_token,
                sec.slack_webhook_secret,
                list(cfg.slack.channels.values()),
                cfg.slack.channels["ops"],
                signing_secret=sec.slack_signing_secret,
            )
        ),
    }


class Sandbox:
    def __init__(
        self,
        state_dir: Path,
        *,
        config: TradeOpsConfig | None = None,
        auto_ports: bool = False,
        rows: int = platform_db.DEFAULT_ROWS,
        airflow_database: str = "airflow",
        bind_host: str = "127.0.0.1",
        advertise_host: str = "127.0.0.1",
        anonymous_admin: bool = False,
    ):
        self.state_dir = state_dir.resolve()
        self.config = config or load_config()
        self.rows = rows
        self.airflow_database = airflow_database
        self.bind_host = bind_host
        self.advertise_host = advertise_host
        self.anonymous_admin = anonymous_admin
        self.secrets = Secrets()
        self.ports = {name: (free_port() if auto_ports else port) for name, port in DEFAULT_PORTS.items()}
        self.settings: dict = {}
        self.postgres = PostgresServer(self.state_dir, self.ports["postgres"], os.environ.get(PG_DSN_ENV))
        self.redis = RedisServer(
            self.state_dir, self.ports["redis"], self.secrets.redis_password, os.environ.get(REDIS_URL_ENV)
        )
        self._servers: list[HttpServer] = []

    def prepare_kubernetes(self) -> None:
        """Build the Kubernetes API (seeding, certificates) in a thread while the datastores start."""
        self._kubernetes = concurrent.futures.ThreadPoolExecutor(1, "kubernetes-seed").submit(
            KubernetesSandbox,
            self.config,
            self.state_dir,
            self.advertise_host,
            self.ports["kubernetes"],
            self.anonymous_admin,
        )

    def kubernetes(self) -> KubernetesSandbox:
        if getattr(self, "_kubernetes", None) is None:
            self.prepare_kubernetes()
        return self._kubernetes.result()

    @property
    def settings_path(self) -> Path:
        return self.state_dir / SETTINGS_FILE

    def _template(self) -> Path | None:
        """Where a seeded cluster for this size, schema and day is (or will be) cached; None when not cacheable."""
        if not self.postgres.embedded or self.rows > CACHEABLE_ROWS:
            return None
        source = Path(platform_db.__file__).read_bytes()
        key = hashlib.sha256(
            b"|".join(
                [
                    source,
                    str(self.rows).encode(),
                    self.config.database.name.encode(),
                    datetime.now(UTC).date().isoformat().encode(),
                ]
            )
        ).hexdigest()[:16]
        return cache_dir() / f"pgdata-{key}"

    def start_datastores(self) -> dict:
        """PostgreSQL and Redis up, roles with fresh passwords, the platform database seeded.

        A seeded cluster is cached per day and size (``$TRADEOPS_CACHE_DIR``), so after the first start of the day
        the platform database is a file copy instead of a seeding run.
        """
        started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.settings_path.unlink(missing_ok=True)
        self.redis.launch()
        template = self._template()
        counts = None
        if template is None:
            self.postgres.start()
        else:
            counts_file = template.parent / f"{template.name}.json"
            with templates_locked(exclusive=False):
                if (template / "PG_VERSION").exists() and counts_file.exists():
                    counts = json.loads(counts_file.read_text())
                self.postgres.start(template if counts else None)
        sec = self.secrets
        tradeops = Role("tradeops", sec.tradeops_db_password)
        platform_app = Role("platform_app", sec.platform_app_db_password)
        airflow = Role("airflow", sec.airflow_db_password)
        for role in (platform_app, airflow):
            self.postgres.ensure_role(role)
        # TradeOps' maintenance role: owns the platform's tables (retention, reindex, vacuum), reads every session's
        # activity (pg_monitor: long queries, lock chains) and creates the scratch databases backups restore into.
        self.postgres.ensure_role(tradeops, createdb=True)
        with self.postgres.admin_connection() as conn:
            conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(tradeops.name)))
        platform_name = self.config.database.name
        host, port = self.postgres.host, self.postgres.port
        platform_dsn = dsn(host, port, tradeops, platform_name)
        if counts is None:
            self.postgres.recreate_database(platform_name, tradeops)
            counts = platform_db.create_and_seed(platform_dsn, rows=self.rows)
            with self.postgres.admin_connection(platform_name) as conn:
                conn.execute(
                    "GRANT SELECT, INSERT, UPDATE ON accounts, positions, trades, market_data, audit_log "
                    "TO platform_app"
                )
                conn.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO platform_app")
            if template is not None:
                with templates_locked(exclusive=True):
                    forget_old_templates()
                    self.postgres.snapshot(template)
                    counts_file.write_text(json.dumps(counts))
        if self.airflow_database:
            self.postgres.recreate_database(self.airflow_database, airflow)
        self.postgres.recreate_database(STATE_DATABASE, tradeops)  # TradeOps' own incidents (empty)
        state_dsn = dsn(host, port, tradeops, STATE_DATABASE)
        incidents_store.migrate(state_dsn)  # its schema, as a deployment's init job applies it
        self.redis.wait_ready()
        _seed_redis(self.redis.url)
        self.settings = {
            "pid": os.getpid(),
            "state_dir": str(self.state_dir),
            "postgres": {
                "host": host,
                "port": port,
                "embedded": self.postgres.embedded,
                "bin_dir": str(self.postgres.bin_dir) if self.postgres.bin_dir else None,
                "platform_database": platform_name,
                "platform_dsn": platform_dsn,
                "platform_app_dsn": dsn(host, port, platform_app, platform_name),
                "airflow_dsn": dsn(host, port, airflow, self.airflow_database) if self.airflow_database else None,
                "state_dsn": state_dsn,
                "admin_socket_dir": str(self.postgres.socket_dir) if self.postgres.embedded else None,
                "seeded_rows": counts,
            },
            "redis": {"url": self.redis.url},
            "secrets": {
                "platform_api_token": sec.platform_api_token,
                "slack_bot_token": sec.slack_bot_token,
                "slack_signing_secret": sec.slack_signing_secret,
                "alertmanager_webhook_token": sec.alertmanager_webhook_token,
            },
        }
        self.settings["datastores_ready_s"] = round(time.monotonic() - started, 2)
        return self.settings

    async def serve(self, stop: asyncio.Event) -> None:
        background = []
        for name, factory in http_services(self).items():
            port = self.ports[name]
            service = factory()
            server = HttpServer(
                uvicorn.Config(
                    getattr(service, "app", service),
                    host=self.bind_host,
                    port=port,
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=2,
                    **getattr(service, "uvicorn_options", {}),
                )
            )
            self._servers.append(server)
            self.settings[name] = {"url": f"http://{self.advertise_host}:{port}"}
            if hasattr(service, "settings"):
                self.settings[name].update(service.settings())
            if hasattr(service, "run"):
                background.append(asyncio.create_task(service.run(stop)))
        self.settings["slack"]["api_url"] = self.settings["slack"]["url"] + "/api/"
        self.settings["slack"]["webhook_url"] = (
            f"{self.settings['slack']['url']}/services/{slack.TEAM_ID}/{slack.WEBHOOK_ID}/"
            f"{self.secrets.slack_webhook_secret}"
        )
        tasks = [asyncio.create_task(server.serve()) for server in self._servers]
        while not all(server.started for server in self._servers):
            if any(task.done() for task in tasks):
                for task in tasks:
                    if task.done() and task.exception():
                        raise task.exception()
                raise RuntimeError("a sandbox HTTP service failed to start (port in use?)")
            await asyncio.sleep(0.02)
        self._write_settings()
        await stop.wait()
        for server in self._servers:
            server.should_exit = True
        await asyncio.gather(*tasks, *background, return_exceptions=True)

    def _write_settings(self) -> None:
        write_private_json(self.settings_path, self.settings, default=str)

    def stop(self) -> None:
        self.settings_path.unlink(missing_ok=True)
        self.redis.stop()
        self.postgres.stop()

    def run(self, on_ready: Callable[[dict], None] = lambda settings: None) -> None:
        """Start everything, call ``on_ready``, serve until SIGTERM/SIGINT, then stop everything."""
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.prepare_kubernetes()
            self.start_datastores()

            async def main():
                serving = asyncio.create_task(self.serve(stop))
                while not self.settings_path.exists() and not serving.done():
                    await asyncio.sleep(0.02)
                if not serving.done():
                    on_ready(self.settings)
                await serving

            loop.run_until_complete(main())
        finally:
            self.stop()
            loop.close()


def read_settings(state_dir: Path, timeout: float = 0) -> dict:
    """The settings of a running sandbox; waits up to ``timeout`` seconds for it to become ready."""
    path = state_dir / SETTINGS_FILE
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            raise FileNotFoundError(f"no running sandbox in {state_dir} (start one with `python -m sandbox up`)")
        time.sleep(0.05)
    return json.loads(path.read_text())


def _seed_redis(url: str) -> None:
    """The platform's cache as the runbooks find it: last prices, sessions with TTLs, feature flags."""
    import redis

    client = redis.Redis.from_url(url)
    pipe = client.pipeline()
    for index, symbol in enumerate(platform_db.SYMBOLS):
        pipe.hset(f"grandmodel:md:last:{symbol}", mapping={"px": 100 + index * 37.5, "ts": int(time.time())})
    for n in range(1, 36):
        pipe.set(f"grandmodel:session:user{n:02d}", "active", ex=8 * 3600)
    pipe.hset("grandmodel:flags", mapping={"trading_enabled": 1, "risk_checks": 1})
    pipe.execute()
