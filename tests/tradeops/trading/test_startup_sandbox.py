"""The sandbox's platform API as pre_market_startup reads it (real HTTP): the margin knob, agent communication
under the ``unhealthy`` knob, and the monitoring mode set once per Idempotency-Key and read back."""

from __future__ import annotations

import pytest

from tradeops.checks.base import Status
from tradeops.exceptions import PlatformApiError
from tradeops.trading.checks import AccountReady, AgentCommunication


@pytest.fixture
def platform(airflow_connections, sandbox, config):
    from tradeops.platform.hooks import TradingPlatformHook

    hook = TradingPlatformHook(config.connections.platform_api)
    yield hook
    hook.request("PUT", "/v1/monitoring/mode", json={"mode": "off-hours", "reason": "test teardown"})


def test_the_margin_knob_sets_the_available_margin(platform, sandbox, config):
    assert AccountReady().run(config).status is Status.OK
    sandbox.set_faults("platform_api", margin_available_pct=10.0)
    assert platform.get("/v1/account/margin")["margin_available_pct"] == 10.0
    result = AccountReady().run(config)
    assert (result.status, result.summary) == (Status.FAIL, "margin available 10% (minimum 25%)")


def test_an_unhealthy_agent_is_unreachable_from_its_peers(platform, sandbox, config):
    assert AgentCommunication().run(config).status is Status.OK
    sandbox.set_faults("platform_api", unhealthy=["risk-management"])
    result = AgentCommunication().run(config)
    assert result.status is Status.FAIL
    failing = {f.id for f in result.findings if f.status is Status.FAIL}
    agents = {d.name for d in config.kubernetes.deployments if d.role in ("agent", "execution")}
    assert failing == {f"agent:{name}" for name in agents}, "it reaches nobody, and nobody reaches it"


def test_the_monitoring_mode_is_set_once_per_idempotency_key_and_read_back(platform):
    assert platform.get("/v1/monitoring/mode")["mode"] == "off-hours"
    body = {"mode": "trading-hours", "reason": "test"}
    first = platform.request("PUT", "/v1/monitoring/mode", json=body, idempotency_key="test-mode-1")
    assert (first["previous"], first["changed"]) == ("off-hours", True)
    replay = platform.request("PUT", "/v1/monitoring/mode", json=body, idempotency_key="test-mode-1")
    assert replay == first
    assert platform.get("/v1/monitoring/mode")["mode"] == "trading-hours"
    with pytest.raises(PlatformApiError, match="HTTP 422"):
        platform.request("PUT", "/v1/monitoring/mode", json={"mode": "panic", "reason": "test"})
