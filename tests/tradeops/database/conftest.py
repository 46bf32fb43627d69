"""Each test gets its own copy of the sandbox's seeded platform database (``CREATE DATABASE ... TEMPLATE``), on the
sandbox's real PostgreSQL server, so tests can delete, lock and break things without touching each other."""

from __future__ import annotations

import json
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from sandbox import platform_db
from tradeops.database.backup import drop_database

TEMPLATE_ROWS = 20_000


def _on(dsn: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(dsn, dbname=dbname)


@pytest.fixture(scope="session")
def server_dsn(sandbox_settings) -> str:
    """The TradeOps maintenance role (owner of the platform's tables, CREATEDB, pg_monitor) on the sandbox server."""
    return sandbox_settings["postgres"]["platform_dsn"]


@pytest.fixture(scope="session")
def platform_template(server_dsn) -> str:
    name = f"platform_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    platform_db.create_and_seed(_on(server_dsn, name), rows=TEMPLATE_ROWS)
    yield name
    drop_database(server_dsn, name)


@pytest.fixture
def platform_copy(server_dsn, platform_template) -> str:
    """A fresh copy of the seeded platform database; its DSN."""
    name = f"platform_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(platform_template))
        )
    yield _on(server_dsn, name)
    drop_database(server_dsn, name)


@pytest.fixture
def platform_connection(platform_copy, config, monkeypatch) -> str:
    """The config's platform database connection (``connections.platform_db``, as ``AIRFLOW_CONN_*``) pointed at the
    test's copy, so checks and operators reach it as they would in a task; the copy's DSN."""
    params = psycopg.conninfo.conninfo_to_dict(platform_copy)
    monkeypatch.setenv(
        "AIRFLOW_CONN_" + config.connections.platform_db.upper(),
        json.dumps(
            {
                "conn_type": "postgres",
                "host": params["host"],
                "port": int(params["port"]),
                "login": params["user"],
                "password": params["password"],
                "schema": params["dbname"],
            }
        ),
    )
    return platform_copy


@pytest.fixture
def db(platform_copy):
    """An autocommit connection to the test's copy (for setting up and checking)."""
    with psycopg.connect(platform_copy, autocommit=True, row_factory=dict_row) as conn:
        yield conn


class Writer(threading.Thread):
    """A fixed-rate writer (an insert into ``audit_log`` every ``interval`` seconds) recording each latency."""

    def __init__(self, dsn: str, interval: float = 0.02):
        super().__init__(daemon=True)
        self.dsn, self.interval = dsn, interval
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.monotonic()
                conn.execute(
                    "INSERT INTO audit_log (created_at, actor, action, entity) "
                    "VALUES (now(), 'test-writer', 'order.submit', 'order/x')"
                )
                self.latencies.append(time.monotonic() - started)
                time.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def finish(self) -> list[float]:
        self.stop.set()
        self.join(10)
        return self.latencies
