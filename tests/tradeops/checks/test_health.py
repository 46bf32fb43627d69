"""The health checks' verdicts on fixed data (no I/O; the clock is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradeops.checks import health
from tradeops.checks.base import CheckResult, Status, worst

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
GIB = 1024**3


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def component(name, status="healthy", used=0.5, limit=2 * GIB):
    return {"name": name, "status": status, "memory_used_bytes": int(limit * used), "memory_limit_bytes": limit}


def test_system_status(config):
    ok = health.evaluate_system_status({"components": [component("a"), component("b")]}, config)
    assert (ok.status, ok.summary) == (Status.OK, "2/2 components healthy")
    bad = health.evaluate_system_status(
        {"components": [component("a"), component("redis", "unhealthy"), component("b", "degraded")]}, config)
    assert bad.status is Status.FAIL
    assert bad.summary == "2 of 3 components unhealthy: redis, b"
    assert bad.details["unhealthy"] == ["redis", "b"]


def agents_payload(*agents):
    return {"agents": [{"name": n, "status": s, "last_heartbeat": iso(NOW - timedelta(seconds=age))}
                       for n, s, age in agents]}


def test_agents_healthy_stale_and_missing(config):
    fresh = agents_payload(("strategic-marl", "healthy", 2), ("tactical-marl", "healthy", 1),
                           ("risk-management", "healthy", 3))
    assert health.evaluate_agents(fresh, config, now=NOW).status is Status.OK

    stale = agents_payload(("strategic-marl", "healthy", 61), ("tactical-marl", "unhealthy", 1))
    result = health.evaluate_agents(stale, config, now=NOW)
    assert result.status is Status.FAIL
    assert "strategic-marl last heartbeat 61s ago" in result.summary
    assert "tactical-marl is unhealthy" in result.summary
    assert "risk-management is not reporting" in result.summary


def test_memory_thresholds(config):
    # thresholds: warn 70 %, fail 90 %
    payload = {"components": [component("a", used=0.69), component("b", used=0.5)]}
    assert health.evaluate_memory(payload, config).status is Status.OK
    payload["components"].append(component("c", used=0.70))
    warn = health.evaluate_memory(payload, config)
    assert (warn.status, warn.summary) == (Status.WARN, "memory ≥ 70% of limit: c 70.0%")
    payload["components"].append(component("d", used=0.95))
    fail = health.evaluate_memory(payload, config)
    assert fail.status is Status.FAIL and "d 95.0%" in fail.summary
    # infrastructure entries without limits are ignored
    payload["components"].append({"name": "postgres", "status": "healthy"})
    assert "postgres" not in health.evaluate_memory(payload, config).details["usage_pct"]


@pytest.mark.parametrize(("total", "status"), [(100, Status.OK), (158, Status.WARN), (188, Status.FAIL)])
def test_database_connections(config, total, status):
    data = {"total": total, "active": 3, "idle_in_transaction": 0, "max_connections": 200, "reserved": 3}
    result = health.evaluate_db_connections(data, config)
    assert result.status is status
    assert f"{total}/197 connections" in result.summary


def test_redis(config):
    info = {"redis_version": "7.2.4", "role": "master", "connected_clients": 12, "used_memory": 10 * 2**20,
            "maxmemory": 100 * 2**20, "rejected_connections": 0}
    assert health.evaluate_redis(info, config).status is Status.OK
    pressured = health.evaluate_redis({**info, "used_memory": 80 * 2**20}, config)
    assert pressured.status is Status.WARN and "memory 80.0% of maxmemory" in pressured.summary
    rejecting = health.evaluate_redis({**info, "rejected_connections": 4}, config)
    assert rejecting.status is Status.WARN and "4 rejected connections" in rejecting.summary
    unlimited = health.evaluate_redis({**info, "maxmemory": 0, "used_memory": 10 * 2**30}, config)
    assert unlimited.status is Status.OK


def feeds(*entries):
    return {"feeds": [{"name": n, "status": s, "lag_ms": lag} for n, s, lag in entries]}


def test_data_feeds(config):
    assert health.evaluate_data_feeds(feeds(("a", "connected", 100), ("b", "connected", 4999)), config).status is Status.OK
    lagging = health.evaluate_data_feeds(feeds(("a", "connected", 100), ("b", "connected", 6000)), config)
    assert (lagging.status, lagging.summary) == (Status.WARN, "lagging over 5000ms: b 6000ms")
    down = health.evaluate_data_feeds(feeds(("a", "disconnected", 45000), ("b", "connected", 6000)), config)
    assert (down.status, down.summary) == (Status.FAIL, "disconnected: a")


def metrics(**overrides):
    return {"response_time_p95_ms": 42.0, "error_rate_pct": 0.02, "availability_pct": 99.97,
            "throughput_rps": 12400, **overrides}


def test_performance(config):
    assert health.evaluate_performance(metrics(), config).status is Status.OK
    slow = health.evaluate_performance(metrics(response_time_p95_ms=640.0, error_rate_pct=2.4), config)
    assert slow.status is Status.WARN
    assert slow.summary == "p95 640ms > 100ms; error rate 2.4% > 0.1%"
    down = health.evaluate_performance(metrics(availability_pct=99.1), config)
    assert down.status is Status.FAIL and "availability 99.1% < 99.9%" in down.summary


def alert(name, severity, service=None):
    labels = {"alertname": name, "severity": severity}
    if service:
        labels["service"] = service
    return {"labels": labels}


def test_active_alerts(config):
    assert health.evaluate_alerts([alert("Info", "info")], config).status is Status.OK
    warn = health.evaluate_alerts([alert("HighCPUUsage", "warning", "tactical-marl")], config)
    assert (warn.status, warn.summary) == (Status.WARN, "1 warning: HighCPUUsage (tactical-marl)")
    fail = health.evaluate_alerts([alert("HighCPUUsage", "warning"), alert("RiskLimitBreach", "critical")], config)
    assert (fail.status, fail.summary) == (Status.FAIL, "1 critical: RiskLimitBreach")


def account(balance, margin_pct):
    return {"balance": {"balance": balance, "currency": "USD"}, "margin": {"margin_available_pct": margin_pct}}


def test_account_balance_range_and_margin(config):
    # range 5,000,000..50,000,000; margin available at least 25 %
    assert health.evaluate_account(account(12_500_000, 75.2), config).status is Status.OK
    low = health.evaluate_account(account(4_999_999.99, 75.2), config)
    assert low.status is Status.FAIL and "balance 4,999,999.99 outside 5,000,000..50,000,000" in low.summary
    thin = health.evaluate_account(account(12_500_000, 20.0), config)
    assert thin.status is Status.FAIL and "margin available 20.0% < 25%" in thin.summary
    assert health.evaluate_account(account(50_000_000, 25), config).status is Status.OK


def test_results_round_trip_through_xcom_form():
    result = CheckResult("redis", "Redis", Status.WARN, "memory 80%", {"memory_pct": 80.0})
    assert CheckResult.from_dict(result.to_dict()) == result
    assert result.to_dict()["status"] == "warn"


def test_worst_status():
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARN]) is Status.WARN
    assert worst([Status.WARN, Status.FAIL, Status.OK]) is Status.FAIL


def test_every_check_is_registered_once():
    assert list(health.HEALTH_CHECKS) == ["system_status", "agents", "data_feeds", "database_connections", "redis",
                                          "memory", "performance", "active_alerts", "account_balance"]
