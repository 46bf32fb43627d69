"""The state database's migrations are a deploy step (``python -m tradeops.incidents migrate``): idempotent, safe to
run concurrently, never a side effect of using incidents; on a database without them, every operation says what to
run."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlsplit

import psycopg
import pytest

from sandbox.connections import airflow_connection_env
from tradeops.database.backup import drop_database
from tradeops.exceptions import IncidentError
from tradeops.incidents import store
from tradeops.incidents.__main__ import main
from tradeops.incidents.models import NewIncident
from tradeops.incidents.service import IncidentService


def test_migrations_create_the_schema_once_and_are_idempotent(incidents, state_dsn):
    assert store.migrate(state_dsn) == []  # the state_dsn fixture (and the sandbox before it) applied them
    with store.connect(state_dsn) as conn:
        names = [r["name"] for r in conn.execute("SELECT name FROM tradeops.schema_migrations ORDER BY name")]
        tables = {
            r["table_name"]
            for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'tradeops'")
        }
    assert names == sorted(path.name for path in store.MIGRATIONS.glob("*.sql"))
    assert {"incidents", "incident_events", "silences", "outbox", "relation_sizes", "schema_migrations"} <= tables


def test_concurrent_migrators_do_not_race(state_dsn):
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: store.migrate(state_dsn), range(5)))
    assert results == [[]] * 5


@pytest.fixture
def empty_state_db(state_dsn):
    """A new, empty database on the sandbox's PostgreSQL (what a deployment has before its first migration)."""
    name = f"tradeops_empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(state_dsn, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    yield urlsplit(state_dsn)._replace(path=f"/{name}").geturl()
    drop_database(state_dsn, name)


def test_nothing_migrates_as_a_side_effect_and_a_missing_schema_says_what_to_run(
    empty_state_db, demo_config, airflow_connections
):
    incidents = IncidentService(demo_config, empty_state_db)
    assert incidents.engine and incidents.outbox  # built without touching the database

    with pytest.raises(IncidentError, match=r"not migrated .*run `python -m tradeops.incidents migrate`"):
        incidents.open(NewIncident(dedup_key="test:unmigrated", source="manual", severity="P3", title="no schema"))
    with pytest.raises(IncidentError, match="python -m tradeops.incidents migrate"):
        incidents.silence("test:", "@alice", "maintenance", timedelta(minutes=5))
    with pytest.raises(IncidentError, match="python -m tradeops.incidents migrate"):
        incidents.engine.process_due()
    with pytest.raises(IncidentError, match="python -m tradeops.incidents migrate"):
        incidents.outbox.deliver()
    with psycopg.connect(empty_state_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'tradeops'").fetchone() == (0,)


def test_the_migrate_entry_point_migrates_the_configured_state_database(
    empty_state_db, sandbox_settings, config, monkeypatch, capsys
):
    settings = {**sandbox_settings, "postgres": {**sandbox_settings["postgres"], "state_dsn": empty_state_db}}
    for name, value in airflow_connection_env(settings, config).items():
        monkeypatch.setenv(name, value)

    assert main(["migrate"]) == 0
    applied = sorted(path.name for path in store.MIGRATIONS.glob("*.sql"))
    assert capsys.readouterr().out.strip() == f"{config.connections.state_db}: applied {', '.join(applied)}"
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == f"{config.connections.state_db}: up to date"

    incidents = IncidentService(config, empty_state_db)
    with pytest.raises(IncidentError, match="no incident 1"):
        incidents.get(1)
    assert incidents.recent() == []
