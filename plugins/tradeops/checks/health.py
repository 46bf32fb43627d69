"""The daily health check's checks (seed: "Daily System Health Check", 08:00 ET).

Each check is two functions: ``collect`` reads the platform through hooks (I/O only) and ``evaluate`` turns
what was read into a :class:`CheckResult` against the config's thresholds (pure, unit-tested with fixed data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tradeops.checks.base import CheckResult, Status
from tradeops.config import TradeOpsConfig

HEARTBEAT_STALE_S = 60


@dataclass(frozen=True)
class HealthCheck:
    name: str
    title: str
    collect: Callable[[TradeOpsConfig], Any]
    evaluate: Callable[[Any, TradeOpsConfig], CheckResult]

    def result(self, status: Status, summary: str, **details) -> CheckResult:
        return CheckResult(self.name, self.title, status, summary, details)


def _platform(config: TradeOpsConfig):
    from tradeops.hooks.platform import TradingPlatformHook

    return TradingPlatformHook(config.connections.platform_api)


def _pct(part: float, whole: float) -> float:
    return round(part / whole * 100, 1) if whole else 0.0


# --- system status ----------------------------------------------------------------------------------------------

def evaluate_system_status(payload: dict, config: TradeOpsConfig) -> CheckResult:
    components = payload["components"]
    unhealthy = [c["name"] for c in components if c["status"] != "healthy"]
    if unhealthy:
        return SYSTEM_STATUS.result(
            Status.FAIL, f"{len(unhealthy)} of {len(components)} components unhealthy: {', '.join(unhealthy)}",
            unhealthy=unhealthy,
        )
    return SYSTEM_STATUS.result(Status.OK, f"{len(components)}/{len(components)} components healthy")


SYSTEM_STATUS = HealthCheck(
    "system_status", "System status", lambda config: _platform(config).get("/v1/system/status"),
    evaluate_system_status,
)


# --- agents ---------------------------------------------------------------------------------------------------

def evaluate_agents(payload: dict, config: TradeOpsConfig, now: datetime | None = None) -> CheckResult:
    now = now or datetime.now(UTC)
    problems, ages = [], {}
    for agent in payload["agents"]:
        age = (now - datetime.fromisoformat(agent["last_heartbeat"].replace("Z", "+00:00"))).total_seconds()
        ages[agent["name"]] = round(age, 1)
        if agent["status"] != "healthy":
            problems.append(f"{agent['name']} is {agent['status']}")
        elif age > HEARTBEAT_STALE_S:
            problems.append(f"{agent['name']} last heartbeat {int(age)}s ago")
    expected = {d.name for d in config.kubernetes.deployments if d.role == "agent"}
    missing = sorted(expected - set(ages))
    problems += [f"{name} is not reporting" for name in missing]
    if problems:
        return AGENTS.result(Status.FAIL, "; ".join(problems), heartbeat_age_s=ages, missing=missing)
    return AGENTS.result(
        Status.OK, f"{len(ages)}/{len(ages)} agents healthy, heartbeats within {int(max(ages.values(), default=0))}s",
        heartbeat_age_s=ages,
    )


AGENTS = HealthCheck(
    "agents", "Trading agents", lambda config: _platform(config).get("/v1/agents/status"),
    lambda payload, config: evaluate_agents(payload, config),
)


# --- memory ---------------------------------------------------------------------------------------------------

def evaluate_memory(payload: dict, config: TradeOpsConfig) -> CheckResult:
    thresholds = config.thresholds
    usage = {
        c["name"]: _pct(c["memory_used_bytes"], c["memory_limit_bytes"])
        for c in payload["components"]
        if c.get("memory_limit_bytes")
    }
    over_fail = sorted(n for n, pct in usage.items() if pct >= thresholds.memory_fail_pct)
    over_warn = sorted(n for n, pct in usage.items() if thresholds.memory_warn_pct <= pct < thresholds.memory_fail_pct)
    highest = max(usage.items(), key=lambda item: item[1], default=("-", 0.0))
    if over_fail:
        status, summary = Status.FAIL, f"memory ≥ {thresholds.memory_fail_pct:g}% of limit: " + ", ".join(
            f"{n} {usage[n]}%" for n in over_fail)
    elif over_warn:
        status, summary = Status.WARN, f"memory ≥ {thresholds.memory_warn_pct:g}% of limit: " + ", ".join(
            f"{n} {usage[n]}%" for n in over_warn)
    else:
        status, summary = Status.OK, f"all under {thresholds.memory_warn_pct:g}% of limit (highest {highest[0]} {highest[1]}%)"
    return MEMORY.result(status, summary, usage_pct=usage)


MEMORY = HealthCheck(
    "memory", "Memory", lambda config: _platform(config).get("/v1/system/status"), evaluate_memory,
)


# --- database connections -------------------------------------------------------------------------------------

CONNECTIONS_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state = 'idle in transaction') AS idle_in_transaction,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
FROM pg_stat_activity
WHERE backend_type = 'client backend'
"""


def collect_db_connections(config: TradeOpsConfig) -> dict:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=config.connections.platform_db)
    total, active, idle_tx, max_connections, reserved = hook.get_first(CONNECTIONS_SQL)
    return {"total": total, "active": active, "idle_in_transaction": idle_tx,
            "max_connections": max_connections, "reserved": reserved}


def evaluate_db_connections(data: dict, config: TradeOpsConfig) -> CheckResult:
    usable = data["max_connections"] - data["reserved"]
    pct = _pct(data["total"], usable)
    thresholds = config.thresholds
    status = (Status.FAIL if pct >= thresholds.db_connections_fail_pct
              else Status.WARN if pct >= thresholds.db_connections_warn_pct else Status.OK)
    return DB_CONNECTIONS.result(
        status, f"{data['total']}/{usable} connections in use ({pct}%, {data['active']} active)",
        usage_pct=pct, **data,
    )


DB_CONNECTIONS = HealthCheck("database_connections", "Database connections", collect_db_connections,
                             evaluate_db_connections)


# --- redis ----------------------------------------------------------------------------------------------------

def collect_redis(config: TradeOpsConfig) -> dict:
    from airflow.providers.redis.hooks.redis import RedisHook

    client = RedisHook(redis_conn_id=config.connections.redis).get_conn()
    client.ping()
    info = client.info()
    keys = ("redis_version", "role", "connected_clients", "blocked_clients", "used_memory", "maxmemory",
            "rejected_connections", "evicted_keys", "uptime_in_seconds")
    return {key: info.get(key) for key in keys}


def evaluate_redis(info: dict, config: TradeOpsConfig) -> CheckResult:
    details = dict(info)
    problems, status = [], Status.OK
    if info.get("maxmemory"):
        pct = _pct(info["used_memory"], info["maxmemory"])
        details["memory_pct"] = pct
        if pct >= config.thresholds.redis_memory_warn_pct:
            status = Status.WARN
            problems.append(f"memory {pct}% of maxmemory")
    if info.get("rejected_connections"):
        status = Status.WARN
        problems.append(f"{info['rejected_connections']} rejected connections")
    summary = (f"PONG from Redis {info.get('redis_version')} ({info.get('role')}), "
               f"{info.get('connected_clients')} clients")
    if problems:
        summary += "; " + "; ".join(problems)
    return REDIS.result(status, summary, **details)


REDIS = HealthCheck("redis", "Redis", collect_redis, evaluate_redis)


# --- data feeds -----------------------------------------------------------------------------------------------

def evaluate_data_feeds(payload: dict, config: TradeOpsConfig) -> CheckResult:
    max_lag_ms = config.thresholds.data_feed_max_lag_s * 1000
    down = [f["name"] for f in payload["feeds"] if f["status"] != "connected"]
    lagging = [f"{f['name']} {f['lag_ms']}ms" for f in payload["feeds"]
               if f["status"] == "connected" and f["lag_ms"] > max_lag_ms]
    lags = {f["name"]: f["lag_ms"] for f in payload["feeds"]}
    if down:
        return DATA_FEEDS.result(Status.FAIL, f"disconnected: {', '.join(down)}", lag_ms=lags)
    if lagging:
        return DATA_FEEDS.result(Status.WARN, f"lagging over {max_lag_ms:g}ms: {', '.join(lagging)}", lag_ms=lags)
    return DATA_FEEDS.result(Status.OK, f"{len(lags)}/{len(lags)} feeds connected, max lag {max(lags.values())}ms",
                             lag_ms=lags)


DATA_FEEDS = HealthCheck(
    "data_feeds", "Data feeds", lambda config: _platform(config).get("/v1/data-feeds/status"), evaluate_data_feeds,
)


# --- performance ----------------------------------------------------------------------------------------------

AVAILABILITY_TARGET_PCT = 99.9


def evaluate_performance(metrics: dict, config: TradeOpsConfig) -> CheckResult:
    thresholds = config.thresholds
    problems = []
    if metrics["response_time_p95_ms"] > thresholds.response_time_p95_ms:
        problems.append(f"p95 {metrics['response_time_p95_ms']:g}ms > {thresholds.response_time_p95_ms:g}ms")
    if metrics["error_rate_pct"] > thresholds.error_rate_pct:
        problems.append(f"error rate {metrics['error_rate_pct']:g}% > {thresholds.error_rate_pct:g}%")
    if metrics["availability_pct"] < AVAILABILITY_TARGET_PCT:
        problems.append(f"availability {metrics['availability_pct']:g}% < {AVAILABILITY_TARGET_PCT}%")
        status = Status.FAIL
    else:
        status = Status.WARN if problems else Status.OK
    summary = "; ".join(problems) or (
        f"p95 {metrics['response_time_p95_ms']:g}ms, {metrics['throughput_rps']:,} rps, "
        f"errors {metrics['error_rate_pct']:g}%, availability {metrics['availability_pct']:g}%"
    )
    return PERFORMANCE.result(status, summary, **metrics)


PERFORMANCE = HealthCheck(
    "performance", "Performance (1d)",
    lambda config: _platform(config).get("/v1/performance/metrics", timeframe="1d"), evaluate_performance,
)


# --- active alerts --------------------------------------------------------------------------------------------

def collect_alerts(config: TradeOpsConfig) -> list[dict]:
    from tradeops.hooks.platform import AlertmanagerHook

    return AlertmanagerHook(config.connections.alertmanager).active_alerts()


def evaluate_alerts(alerts: list[dict], config: TradeOpsConfig) -> CheckResult:
    by_severity: dict[str, list[str]] = {}
    for alert in alerts:
        labels = alert["labels"]
        name = labels.get("alertname", "?") + (f" ({labels['service']})" if "service" in labels else "")
        by_severity.setdefault(labels.get("severity", "none"), []).append(name)
    critical, warning = by_severity.get("critical", []), by_severity.get("warning", [])
    if critical:
        return ALERTS.result(Status.FAIL, f"{len(critical)} critical: {', '.join(critical)}", alerts=by_severity)
    if warning:
        return ALERTS.result(Status.WARN, f"{len(warning)} warning: {', '.join(warning)}", alerts=by_severity)
    return ALERTS.result(Status.OK, "no critical or warning alerts firing", alerts=by_severity)


ALERTS = HealthCheck("active_alerts", "Active alerts", collect_alerts, evaluate_alerts)


# --- trading account ------------------------------------------------------------------------------------------

def collect_account(config: TradeOpsConfig) -> dict:
    platform = _platform(config)
    return {"balance": platform.get("/v1/account/balance"), "margin": platform.get("/v1/account/margin")}


def evaluate_account(data: dict, config: TradeOpsConfig) -> CheckResult:
    account = config.account
    balance = data["balance"]["balance"]
    margin_pct = data["margin"]["margin_available_pct"]
    problems = []
    if not account.balance_min <= balance <= account.balance_max:
        problems.append(f"balance {balance:,.2f} outside {account.balance_min:,.0f}..{account.balance_max:,.0f}")
    if margin_pct < account.margin_available_min_pct:
        problems.append(f"margin available {margin_pct}% < {account.margin_available_min_pct:g}%")
    details = {"balance": balance, "currency": data["balance"]["currency"], "margin_available_pct": margin_pct}
    if problems:
        return ACCOUNT.result(Status.FAIL, "; ".join(problems), **details)
    return ACCOUNT.result(
        Status.OK, f"balance {balance:,.2f} {details['currency']} in range, margin available {margin_pct}%", **details
    )


ACCOUNT = HealthCheck("account_balance", "Trading account", collect_account, evaluate_account)


HEALTH_CHECKS: dict[str, HealthCheck] = {
    check.name: check
    for check in (SYSTEM_STATUS, AGENTS, DATA_FEEDS, DB_CONNECTIONS, REDIS, MEMORY, PERFORMANCE, ALERTS, ACCOUNT)
}
