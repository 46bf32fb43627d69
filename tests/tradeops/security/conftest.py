"""What the security tests share."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


@pytest.fixture
def replicas_for_now(config, kubectl):
    """The sandbox seeds off-hours replicas; when the test runs in market hours, the scaled deployments are brought
    to their market-hours count first, as pre_market_startup would have, so replicas are as declared at any hour."""
    from tradeops.security.drift import profile_at

    scaled = [d for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]
    if profile_at(config, datetime.now(UTC)) is not True:
        yield
        return
    for d in scaled:
        kubectl.ok("-n", d.namespace, "scale", f"deployment/{d.name}", f"--replicas={d.replicas.market_hours}")
    yield
    for d in scaled:
        kubectl.ok("-n", d.namespace, "scale", f"deployment/{d.name}", f"--replicas={d.replicas.off_hours}")
