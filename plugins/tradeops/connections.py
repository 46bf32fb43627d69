"""From an Airflow connection id to what a client library needs. Secrets stay in Airflow Connections: these read
them when a task, trigger or callback runs, never at parse time."""

from __future__ import annotations

from typing import Any


def postgres_dsn_of(conn: Any) -> str:
    """A libpq DSN from an Airflow Postgres connection (``host``, ``port``, ``login``, ``password``, ``schema``)."""
    import psycopg

    return psycopg.conninfo.make_conninfo(
        host=conn.host, port=conn.port or 5432, user=conn.login, password=conn.password, dbname=conn.schema
    )


def postgres_dsn(conn_id: str) -> str:
    """The libpq DSN of the Airflow Postgres connection ``conn_id``."""
    from airflow.sdk import BaseHook

    return postgres_dsn_of(BaseHook.get_connection(conn_id))


async def apostgres_dsn(conn_id: str) -> str:
    """:func:`postgres_dsn` for triggers and deadline callbacks, which run in the triggerer's event loop."""
    from airflow.sdk import BaseHook

    return postgres_dsn_of(await BaseHook.aget_connection(conn_id))
