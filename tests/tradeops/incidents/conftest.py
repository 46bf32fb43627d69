"""Incidents against the sandbox's real PostgreSQL (TradeOps' own database) and its Slack, with the demo config's
seconds-scale escalation policy."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta

import pytest

from devstack.stack import DEMO_CONFIG
from tests.serving import served
from tradeops.config import load_config
from tradeops.incidents import store
from tradeops.incidents.app import create_app
from tradeops.incidents.service import IncidentService


@pytest.fixture(scope="session")
def demo_config():
    return load_config(DEMO_CONFIG)


@pytest.fixture
def incidents(demo_config, state_dsn, airflow_connections) -> IncidentService:
    return IncidentService(demo_config, state_dsn)


@pytest.fixture
def key() -> str:
    """A dedup key of this test's own (tests share one database)."""
    return f"test:{uuid.uuid4().hex[:12]}"


@pytest.fixture
def past_incidents(state_dsn):
    """``add(severity, opened_at, acknowledged_after=None, resolved_after=None)``: an incident of the past as the state
    database holds it (a row, without its audit trail or any page), for the response times; deleted after the test."""
    prefix = f"test-past:{uuid.uuid4().hex[:12]}:"
    numbers = itertools.count(1)

    def add(
        severity: str,
        opened_at: datetime,
        acknowledged_after: timedelta | None = None,
        resolved_after: timedelta | None = None,
    ) -> int:
        acknowledged = opened_at + acknowledged_after if acknowledged_after is not None else None
        resolved = opened_at + resolved_after if resolved_after is not None else None
        with store.connect(state_dsn) as conn:
            row = conn.execute(
                "INSERT INTO tradeops.incidents (dedup_key, source, severity, title, status, opened_at, "
                "escalation_anchor, last_seen_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by) "
                "VALUES (%s, 'manual', %s, 'an incident of the past', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    f"{prefix}{next(numbers)}",
                    severity,
                    "resolved" if resolved else "acknowledged" if acknowledged else "open",
                    opened_at,
                    opened_at,
                    opened_at,
                    acknowledged,
                    "oncall-alice" if acknowledged else None,
                    resolved,
                    "oncall-alice" if resolved else None,
                ),
            ).fetchone()
        return row["id"]

    yield add
    with store.connect(state_dsn) as conn:
        conn.execute("DELETE FROM tradeops.incidents WHERE starts_with(dedup_key, %s)", (prefix,))


@pytest.fixture
def messages_of(sandbox):
    """Slack messages about one incident (its number is in every message's text)."""

    def read(incident_id: int, channel: str | None = None) -> list[dict]:
        return [m for m in sandbox.slack_messages(channel) if f"#{incident_id} " in m["text"]]

    return read


@pytest.fixture(autouse=True)
def _resolve_what_the_test_left_open(request):
    """Each test starts with no active incident, so the engine only sees the test's own."""
    yield
    if "incidents" in request.fixturenames or "state_dsn" in request.fixturenames:
        dsn = request.getfixturevalue("state_dsn")
        with store.connect(dsn) as conn:
            conn.execute(
                "UPDATE tradeops.incidents SET status = 'resolved', resolved_at = now(), "
                "resolved_by = 'tests (cleanup)' WHERE status <> 'resolved'"
            )
            conn.execute("UPDATE tradeops.outbox SET delivered_at = now() WHERE delivered_at IS NULL")


@pytest.fixture(scope="module")
def app_url(airflow_connections):
    """The TradeOps app served over real HTTP, as the api-server mounts it."""
    with served(create_app()) as url:
        yield url
