"""pre_market_startup's checks, pure: a payload in, a result out (the session check on the real XNYS calendar,
at frozen moments)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import time_machine

from tradeops.checks.base import Status
from tradeops.trading.checks import (
    AccountReady,
    AgentCommunication,
    ClusterMatchesConfig,
    ModelFiles,
    RiskLimits,
    TradingSession,
)


def session_at(moment: datetime, config):
    check = TradingSession(moment)
    return check.evaluate(check.collect(config), config)


def test_a_scheduled_run_prepares_todays_session_with_its_open_and_close_in_new_york(config):
    with time_machine.travel(datetime(2026, 7, 15, 12, 30, tzinfo=UTC), tick=False):  # 08:30 EDT
        result = session_at(datetime.now(UTC), config)
    assert result.status is Status.OK
    assert (result.details["session"], result.details["open_local"], result.details["close_local"]) == (
        "2026-07-15",
        "09:30",
        "16:00",
    )
    assert result.summary == "XNYS session 2026-07-15: opens 09:30, closes 16:00 (America/New_York)"


def test_winter_time_keeps_the_open_at_0930_et(config):
    result = session_at(datetime(2026, 12, 1, 13, 30, tzinfo=UTC), config)  # 08:30 EST
    assert (result.details["open_local"], result.details["open"]) == ("09:30", "2026-12-01T14:30:00+00:00")


def test_an_early_close_is_announced(config):
    result = session_at(datetime(2026, 11, 27, 13, 30, tzinfo=UTC), config)  # the day after Thanksgiving
    assert result.status is Status.WARN
    assert "EARLY CLOSE at 13:00" in result.summary
    assert [f.id for f in result.findings if f.status is Status.WARN] == ["session:early-close"]


def test_a_manual_run_on_a_holiday_says_which_session_it_prepares(config):
    result = session_at(datetime(2026, 11, 26, 15, 0, tzinfo=UTC), config)  # Thanksgiving, 10:00 EST
    assert result.status is Status.WARN
    assert result.details["session"] == "2026-11-27"
    assert result.summary.startswith("no session on 2026-11-26; prepares the next one: XNYS session 2026-11-27")


def account(status="active", trading_enabled=True, pct=41.5):
    return {"status": {"status": status, "trading_enabled": trading_enabled}, "margin": {"margin_available_pct": pct}}


def test_account_ready_needs_an_active_account_and_enough_margin(config):
    check = AccountReady()
    assert check.evaluate(account(), config).status is Status.OK
    low = check.evaluate(account(pct=12.0), config)
    assert low.status is Status.FAIL
    assert low.summary == "margin available 12% (minimum 25%)"
    assert check.evaluate(account(pct=25.0), config).status is Status.OK, "the minimum itself is enough"
    restricted = check.evaluate(account(status="restricted", trading_enabled=False), config)
    assert restricted.status is Status.FAIL
    assert restricted.summary == "account restricted, trading disabled"


def models(config, **overrides):
    found = []
    for d in config.kubernetes.deployments:
        if d.role == "agent":
            version = d.image.rsplit(":", 1)[-1]
            model = {"name": d.name, "version": version, "path": f"/models/{d.name}.pt", "sha256": "a" * 64}
            found.append({**model, "expected_sha256": "a" * 64, **overrides.get(d.name, {})})
    return {"models": found}


def test_model_files_must_match_their_expected_sha256_and_pinned_version(config):
    check = ModelFiles()
    assert check.evaluate(models(config), config).status is Status.OK
    corrupted = check.evaluate(models(config, **{"tactical-marl": {"sha256": "b" * 64}}), config)
    assert corrupted.status is Status.FAIL
    assert [f.id for f in corrupted.findings if f.status is Status.FAIL] == ["model:tactical-marl"]
    old = check.evaluate(models(config, **{"risk-management": {"version": "3.0.9"}}), config)
    assert old.summary == "risk-management: model 3.0.9, image pins 3.1.0"
    payload = models(config)
    payload["models"] = [m for m in payload["models"] if m["name"] != "strategic-marl"]
    assert check.evaluate(payload, config).summary == "strategic-marl: no model file"


def limits(config, **changes):
    rows = [{"name": n, "limit": v, "current": 0.0} for n, v in config.trading_day.risk_limits.items()]
    rows = [{**row, **changes.get(row["name"], {})} for row in rows if changes.get(row["name"]) != "absent"]
    return {"limits": rows}


def test_risk_limits_must_be_exactly_the_configured_ones(config):
    check = RiskLimits()
    assert check.evaluate(limits(config), config).status is Status.OK
    different = check.evaluate(limits(config, max_position_contracts={"limit": 80}), config)
    assert different.status is Status.FAIL
    assert different.summary == "max_position_contracts: platform 80, config 50"
    missing = check.evaluate(limits(config, max_daily_drawdown_pct="absent"), config)
    assert missing.summary == "max_daily_drawdown_pct: not set on the platform (config: 5)"
    extra = limits(config)
    extra["limits"].append({"name": "max_orders_per_s", "limit": 100, "current": 1})
    assert check.evaluate(extra, config).summary == "max_orders_per_s: set on the platform (100), not in the config"
    over = check.evaluate(limits(config, max_daily_drawdown_pct={"current": 6.2}), config)
    assert over.summary == "max_daily_drawdown_pct: already at 6.2, over 5"


def cluster(config):
    return {
        d.name: {"spec": {"template": {"spec": {"containers": [{"name": d.container_name, "image": d.image}]}}}}
        for d in config.kubernetes.deployments
    }


def test_cluster_drift_is_reported_deployment_by_deployment(config):
    check = ClusterMatchesConfig()
    assert check.evaluate(cluster(config), config).status is Status.OK
    live = copy.deepcopy(cluster(config))
    drifted = "registry.quantnova.internal/grandmodel/tactical-marl:1.9.0"
    live["tactical-marl"]["spec"]["template"]["spec"]["containers"][0]["image"] = drifted
    live["data-handler"] = None
    live["prometheus"]["spec"]["template"]["spec"]["containers"][0]["image"] = "elsewhere/prometheus:3"
    result = check.evaluate(live, config)
    assert result.status is Status.FAIL
    assert result.details["drift"] == [
        {
            "deployment": "data-handler",
            "expected": "registry.quantnova.internal/grandmodel/data-handler:2.4.1",
            "live": None,
        },
        {
            "deployment": "tactical-marl",
            "expected": "registry.quantnova.internal/grandmodel/tactical-marl:1.8.2",
            "live": drifted,
        },
    ]
    # Only what the startup brings up gates it: monitoring's drift is the security check's finding.
    assert [f.id for f in result.findings if f.status is Status.FAIL] == [
        "deployment:grandmodel/data-handler",
        "deployment:grandmodel/tactical-marl",
    ]
    assert "deployment:grandmodel-monitoring/prometheus" not in {f.id for f in result.findings}


def test_agent_communication_fails_on_an_unreachable_peer_and_warns_on_a_slow_link(config):
    check = AgentCommunication()

    def report(reachable=True, ms=1.2):
        links = [{"peer": "execution-engine", "reachable": reachable, "round_trip_ms": ms if reachable else None}]
        return {"agents": [{"agent": "tactical-marl", "links": links}]}

    assert check.evaluate(report(), config).status is Status.OK
    assert check.evaluate(report(ms=80.0), config).status is Status.WARN
    down = check.evaluate(report(reachable=False), config)
    assert (down.status, down.summary) == (Status.FAIL, "tactical-marl cannot reach execution-engine")
    assert check.evaluate({"agents": []}, config).status is Status.FAIL
