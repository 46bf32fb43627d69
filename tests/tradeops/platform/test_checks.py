"""The platform checks' verdicts on fixed data (no I/O; the clock is passed in), and their findings' ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeops.checks.base import CheckResult, Status, worst
from tradeops.platform.checks import (
    AccountBalance,
    ActiveAlerts,
    AgentHeartbeats,
    Agents,
    DataFeeds,
    Memory,
    Performance,
    Redis,
    SystemStatus,
)

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
GIB = 1024**3


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def component(name, status="healthy", used=0.5, limit=2 * GIB):
    return {"name": name, "status": status, "memory_used_bytes": int(limit * used), "memory_limit_bytes": limit}


def test_system_status(config):
    ok = SystemStatus().evaluate({"components": [component("a"), component("b")]}, config)
    assert (ok.status, ok.summary) == (Status.OK, "2/2 components healthy")
    bad = SystemStatus().evaluate(
        {"components": [component("a"), component("redis", "unhealthy"), component("b", "degraded")]}, config
    )
    assert bad.status is Status.FAIL
    assert bad.summary == "2 of 3 components unhealthy: redis, b"
    assert bad.details["unhealthy"] == ["redis", "b"]


def heartbeats(*agents) -> AgentHeartbeats:
    return AgentHeartbeats(
        [{"name": n, "status": s, "last_heartbeat": iso(NOW - timedelta(seconds=age))} for n, s, age in agents],
        read_at=NOW,
    )


def test_agents_healthy_stale_and_missing(config):
    fresh = heartbeats(
        ("strategic-marl", "healthy", 2), ("tactical-marl", "healthy", 1), ("risk-management", "healthy", 3)
    )
    assert Agents().evaluate(fresh, config).status is Status.OK

    stale = heartbeats(("strategic-marl", "healthy", 61), ("tactical-marl", "unhealthy", 1))
    result = Agents().evaluate(stale, config)
    assert result.status is Status.FAIL
    assert "strategic-marl last heartbeat 61s ago" in result.summary
    assert "tactical-marl is unhealthy" in result.summary
    assert "risk-management is not reporting" in result.summary


def test_memory_thresholds(config):
    # thresholds: warn 70 %, fail 90 %
    payload = {"components": [component("a", used=0.69), component("b", used=0.5)]}
    assert Memory().evaluate(payload, config).status is Status.OK
    payload["components"].append(component("c", used=0.70))
    warn = Memory().evaluate(payload, config)
    assert (warn.status, warn.summary) == (Status.WARN, "memory ≥ 70% of limit: c 70.0%")
    payload["components"].append(component("d", used=0.95))
    fail = Memory().evaluate(payload, config)
    assert fail.status is Status.FAIL and "d 95.0%" in fail.summary
    # infrastructure entries without limits are ignored
    payload["components"].append({"name": "postgres", "status": "healthy"})
    assert "postgres" not in Memory().evaluate(payload, config).details["usage_pct"]


def test_redis(config):
    info = {
        "redis_version": "7.2.4",
        "role": "master",
        "connected_clients": 12,
        "used_memory": 10 * 2**20,
        "maxmemory": 100 * 2**20,
        "rejected_connections": 0,
    }
    assert Redis().evaluate(info, config).status is Status.OK
    pressured = Redis().evaluate({**info, "used_memory": 80 * 2**20}, config)
    assert pressured.status is Status.WARN and "memory 80.0% of maxmemory" in pressured.summary
    rejecting = Redis().evaluate({**info, "rejected_connections": 4}, config)
    assert rejecting.status is Status.WARN and "4 rejected connections" in rejecting.summary
    unlimited = Redis().evaluate({**info, "maxmemory": 0, "used_memory": 10 * 2**30}, config)
    assert unlimited.status is Status.OK


def feeds(*entries):
    return {"feeds": [{"name": n, "status": s, "lag_ms": lag} for n, s, lag in entries]}


def test_data_feeds(config):
    assert DataFeeds().evaluate(feeds(("a", "connected", 100), ("b", "connected", 4999)), config).status is Status.OK
    lagging = DataFeeds().evaluate(feeds(("a", "connected", 100), ("b", "connected", 6000)), config)
    assert (lagging.status, lagging.summary) == (Status.WARN, "lagging over 5000ms: b 6000ms")
    down = DataFeeds().evaluate(feeds(("a", "disconnected", 45000), ("b", "connected", 6000)), config)
    assert (down.status, down.summary) == (Status.FAIL, "disconnected: a")


def metrics(**overrides):
    return {
        "response_time_p95_ms": 42.0,
        "error_rate_pct": 0.02,
        "availability_pct": 99.97,
        "throughput_rps": 12400,
        **overrides,
    }


def test_performance(config):
    assert Performance().evaluate(metrics(), config).status is Status.OK
    slow = Performance().evaluate(metrics(response_time_p95_ms=640.0, error_rate_pct=2.4), config)
    assert slow.status is Status.WARN
    assert slow.summary == "p95 640ms > 100ms; error rate 2.4% > 0.1%"
    down = Performance().evaluate(metrics(availability_pct=99.1), config)
    assert down.status is Status.FAIL and "availability 99.1% < 99.9%" in down.summary


def alert(name, severity, service=None):
    labels = {"alertname": name, "severity": severity}
    if service:
        labels["service"] = service
    return {"labels": labels}


def test_active_alerts(config):
    assert ActiveAlerts().evaluate([alert("Info", "info")], config).status is Status.OK
    warn = ActiveAlerts().evaluate([alert("HighCPUUsage", "warning", "tactical-marl")], config)
    assert (warn.status, warn.summary) == (Status.WARN, "1 warning: HighCPUUsage (tactical-marl)")
    fail = ActiveAlerts().evaluate([alert("HighCPUUsage", "warning"), alert("RiskLimitBreach", "critical")], config)
    assert (fail.status, fail.summary) == (Status.FAIL, "1 critical: RiskLimitBreach")


def account(balance, margin_pct):
    return {"balance": {"balance": balance, "currency": "USD"}, "margin": {"margin_available_pct": margin_pct}}


def test_account_balance_range_and_margin(config):
    # range 5,000,000..50,000,000; margin available at least 25 %
    assert AccountBalance().evaluate(account(12_500_000, 75.2), config).status is Status.OK
    low = AccountBalance().evaluate(account(4_999_999.99, 75.2), config)
    assert low.status is Status.FAIL and "balance 4,999,999.99 outside 5,000,000..50,000,000" in low.summary
    thin = AccountBalance().evaluate(account(12_500_000, 20.0), config)
    assert thin.status is Status.FAIL and "margin available 20.0% < 25%" in thin.summary
    assert AccountBalance().evaluate(account(50_000_000, 25), config).status is Status.OK


def test_results_round_trip_through_xcom_form():
    result = CheckResult("redis", "Redis", Status.WARN, "memory 80%", {"memory_pct": 80.0})
    assert CheckResult.from_dict(result.to_dict()) == result
    assert result.to_dict()["status"] == "warn"


def test_worst_status():
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARN]) is Status.WARN
    assert worst([Status.WARN, Status.FAIL, Status.OK]) is Status.FAIL


def statuses(result: CheckResult) -> dict[str, Status]:
    return {finding.id: finding.status for finding in result.findings}


def test_findings_name_the_thing_so_the_next_run_finds_it_again(config):
    payload = {"components": [component("a"), component("redis", "unhealthy", used=0.95)]}
    assert statuses(SystemStatus().evaluate(payload, config)) == {
        "component:a": Status.OK,
        "component:redis": Status.FAIL,
    }
    assert statuses(Memory().evaluate(payload, config)) == {"component:a": Status.OK, "component:redis": Status.FAIL}
    stale = heartbeats(("strategic-marl", "healthy", 61), ("tactical-marl", "healthy", 1))
    assert statuses(Agents().evaluate(stale, config)) == {
        "agent:strategic-marl": Status.FAIL,
        "agent:tactical-marl": Status.OK,
        "agent:risk-management": Status.FAIL,
    }
    assert statuses(DataFeeds().evaluate(feeds(("a", "disconnected", 0), ("b", "connected", 6000)), config)) == {
        "feed:a": Status.FAIL,
        "feed:b": Status.WARN,
    }
    firing = [
        alert("HighCPUUsage", "warning", "tactical-marl"),
        alert("RiskLimitBreach", "critical"),
        alert("RiskLimitBreach", "warning"),
        alert("Info", "info"),
    ]
    assert statuses(ActiveAlerts().evaluate(firing, config)) == {
        "alert:HighCPUUsage:tactical-marl": Status.WARN,
        "alert:RiskLimitBreach": Status.FAIL,
        "alert:Info": Status.OK,
    }
    escalated = [alert("RiskLimitBreach", "warning"), alert("RiskLimitBreach", "critical")]
    assert statuses(ActiveAlerts().evaluate(escalated, config)) == {"alert:RiskLimitBreach": Status.FAIL}
    assert statuses(Performance().evaluate(metrics(availability_pct=99.1, error_rate_pct=2.4), config)) == {
        "metric:response_time_p95": Status.OK,
        "metric:error_rate": Status.WARN,
        "metric:availability": Status.FAIL,
    }
    assert statuses(AccountBalance().evaluate(account(12_500_000, 20.0), config)) == {
        "account:balance": Status.OK,
        "account:margin": Status.FAIL,
    }
    info = {
        "redis_version": "7.2.4",
        "role": "master",
        "connected_clients": 1,
        "used_memory": 80,
        "maxmemory": 100,
        "rejected_connections": 0,
    }
    assert statuses(Redis().evaluate(info, config)) == {
        "redis:memory": Status.WARN,
        "redis:rejected_connections": Status.OK,
    }
    assert Agents().evaluate(stale, config).findings == Agents().evaluate(stale, config).findings


def test_an_action_is_suggested_only_when_something_is_wrong(config):
    healthy = SystemStatus().evaluate({"components": [component("a")]}, config)
    assert healthy.action == ""
    for check, data in [
        (SystemStatus(), {"components": [component("a", "unhealthy")]}),
        (Agents(), heartbeats(("strategic-marl", "degraded", 1))),
        (DataFeeds(), feeds(("a", "connected", 6000))),
        (ActiveAlerts(), [alert("RiskLimitBreach", "critical")]),
        (AccountBalance(), account(1, 75.2)),
    ]:
        result = check.evaluate(data, config)
        assert result.status is not Status.OK and result.action == check.action != "", check.name


def test_results_with_findings_round_trip_through_xcom_form(config):
    result = DataFeeds().evaluate(feeds(("a", "connected", 100), ("b", "connected", 6000)), config)
    assert CheckResult.from_dict(result.to_dict()) == result


def test_collect_reads_the_sandbox_through_the_hooks_and_the_agents_clock_is_injectable(
    airflow_connections, sandbox, config
):
    checks = (SystemStatus(), Agents(), DataFeeds(), Redis(), Memory(), Performance(), ActiveAlerts(), AccountBalance())
    results = {check.name: check.run(config) for check in checks}
    assert all(result.status is not Status.FAIL for result in results.values()), results
    assert results["active_alerts"].status is Status.WARN  # the sandbox fires HighMemoryUsage (data-handler)
    later = Agents(clock=lambda: datetime.now(UTC) + timedelta(minutes=5)).run(config)
    assert later.status is Status.FAIL and "last heartbeat 3" in later.summary
