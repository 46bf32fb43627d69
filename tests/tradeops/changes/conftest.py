"""Change safety against the sandbox's real PostgreSQL (TradeOps' state database)."""

from __future__ import annotations

import uuid

import pytest

from tradeops.changes.locks import ChangeLocks
from tradeops.incidents import store


@pytest.fixture
def locks(state_dsn) -> ChangeLocks:
    return ChangeLocks(state_dsn)


@pytest.fixture
def namespace(locks) -> str:
    """A namespace of this test's own (tests share one database); its leases are dropped afterwards."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    with store.connect(locks.dsn) as conn:
        conn.execute("DELETE FROM tradeops.change_locks WHERE namespace = %s", (name,))
