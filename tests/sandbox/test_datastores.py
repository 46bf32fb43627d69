"""The sandbox's PostgreSQL and Redis are real servers, seeded deterministically, and protected like production."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
import redis
from psycopg import sql

from sandbox import platform_db
from sandbox.launcher import Sandbox
from sandbox.servers import PostgresServer, Role

TABLES = ("accounts", "users", "login_events", "trades", "positions", "market_data", "audit_log", "system_metrics")


def admin(settings, database="postgres"):
    pg = settings["postgres"]
    return psycopg.connect(
        host=pg["admin_socket_dir"], port=pg["port"], user="postgres", dbname=database, autocommit=True
    )


def test_postgres_is_a_real_server_with_the_platform_schema(sandbox_settings):
    pg = sandbox_settings["postgres"]
    with psycopg.connect(pg["platform_dsn"]) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        partitioned = dict(
            conn.execute(
                "SELECT c.relname, count(i.inhrelid) FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid "
                "LEFT JOIN pg_inherits i ON i.inhparent = c.oid GROUP BY c.relname"
            ).fetchall()
        )
        default_partitions = conn.execute("SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0").fetchone()[
            0
        ]
    assert int(version) >= 150000
    assert {k: v for k, v in counts.items() if k != "seconds"} == {
        k: v for k, v in pg["seeded_rows"].items() if k != "seconds"
    }
    assert counts["audit_log"] == platform_db.DEFAULT_ROWS
    assert partitioned == {
        "audit_log": platform_db.AUDIT_DAYS + 1 + platform_db.DAYS_AHEAD,
        "system_metrics": platform_db.METRICS_DAYS + 1 + platform_db.DAYS_AHEAD,
    }
    assert default_partitions == 0, "a DEFAULT partition would block DETACH PARTITION ... CONCURRENTLY"


def test_half_the_audit_log_is_past_its_90_day_retention(sandbox_settings):
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        old, total = conn.execute(
            "SELECT count(*) FILTER (WHERE created_at < now() - interval '90 days'), count(*) FROM audit_log"
        ).fetchone()
    assert 0.45 < old / total < 0.55


def test_roles_are_least_privileged(sandbox_settings):
    with psycopg.connect(sandbox_settings["postgres"]["platform_app_dsn"]) as conn:
        assert conn.execute("SELECT count(*) FROM positions").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
    assert superuser is False


def test_tcp_connections_need_the_password(sandbox_settings):
    pg = sandbox_settings["postgres"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=pg["host"], port=pg["port"], user="tradeops", password="wrong", dbname="grandmodel")


def test_redis_is_real_seeded_and_password_protected(sandbox_settings):
    url = sandbox_settings["redis"]["url"]
    client = redis.Redis.from_url(url)
    assert client.ping()
    assert client.hget("grandmodel:md:last:ES", "px") == b"100.0"
    assert 0 < client.ttl("grandmodel:session:user01") <= 8 * 3600
    anonymous = redis.Redis(host="127.0.0.1", port=int(url.rsplit(":", 1)[1].split("/")[0]))
    with pytest.raises(redis.AuthenticationError):
        anonymous.get("grandmodel:flags")


def test_seeding_is_deterministic(sandbox_settings):
    """The same size knob and clock give byte-identical tables."""
    now = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    digests = []
    with admin(sandbox_settings) as conn:
        for name in ("seed_a", "seed_b"):
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name} OWNER tradeops")
    pg = sandbox_settings["postgres"]
    base = pg["platform_dsn"].rsplit("/", 1)[0]
    try:
        for name in ("seed_a", "seed_b"):
            platform_db.create_and_seed(f"{base}/{name}", rows=3000, now=now)
            with psycopg.connect(f"{base}/{name}") as conn:
                digests.append(
                    conn.execute(
                        "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM "
                        "(SELECT created_at, actor, action, entity FROM audit_log) t"
                    ).fetchone()[0]
                )
    finally:
        with admin(sandbox_settings) as conn:
            for name in ("seed_a", "seed_b"):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert digests[0] == digests[1]


def test_partitions_cover_a_week_ahead(sandbox_settings):
    tomorrow_plus_6 = (datetime.now(UTC) + timedelta(days=7)).date()
    with psycopg.connect(sandbox_settings["postgres"]["platform_dsn"]) as conn:
        names = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'audit_log_p%'")}
    assert platform_db.partition_name("audit_log", tomorrow_plus_6) in names


def test_an_existing_server_is_used_and_foreign_databases_are_never_dropped(
    sandbox_settings, config, monkeypatch, tmp_path
):
    """TRADEOPS_PG_DSN / TRADEOPS_REDIS_URL point the sandbox at existing servers instead of embedded ones."""
    pg = sandbox_settings["postgres"]
    password = secrets.token_urlsafe(12)
    with admin(sandbox_settings) as conn:
        conn.execute("DROP ROLE IF EXISTS ext_admin")
        conn.execute(f"CREATE ROLE ext_admin SUPERUSER LOGIN PASSWORD '{password}'")
        conn.execute("DROP DATABASE IF EXISTS not_ours")
        conn.execute("CREATE DATABASE not_ours")
    external = f"postgresql://ext_admin:{password}@{pg['host']}:{pg['port']}/postgres"
    monkeypatch.setenv("TRADEOPS_PG_DSN", external)
    monkeypatch.setenv("TRADEOPS_REDIS_URL", sandbox_settings["redis"]["url"])

    server = PostgresServer(tmp_path, port=0, admin_dsn=external)
    server.start()
    with pytest.raises(RuntimeError, match="was not created by the TradeOps sandbox; refusing to drop it"):
        server.recreate_database("not_ours", Role("tradeops", "x"))

    renamed = config.model_copy(update={"database": config.database.model_copy(update={"name": "grandmodel_ext"})})
    try:
        settings = Sandbox(
            tmp_path, config=renamed, auto_ports=True, rows=500, airflow_database="airflow_ext"
        ).start_datastores()
        assert settings["postgres"]["embedded"] is False
        assert settings["postgres"]["port"] == pg["port"]
        assert settings["redis"]["url"] == sandbox_settings["redis"]["url"]
        with psycopg.connect(settings["postgres"]["platform_dsn"]) as conn:
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 500
        # A second start drops and recreates the databases it made itself.
        again = Sandbox(
            tmp_path, config=renamed, auto_ports=True, rows=200, airflow_database="airflow_ext"
        ).start_datastores()
        with psycopg.connect(again["postgres"]["platform_dsn"]) as conn:
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 200
    finally:
        with admin(sandbox_settings) as conn:
            for name in ("grandmodel_ext", "airflow_ext", "not_ours"):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute("DROP ROLE IF EXISTS ext_admin")
            # Roles are cluster-wide: give the session sandbox its passwords back.
            for key in ("platform_dsn", "platform_app_dsn", "airflow_dsn"):
                parts = urlsplit(pg[key])
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(unquote(parts.username)), sql.Literal(unquote(parts.password))
                    )
                )
