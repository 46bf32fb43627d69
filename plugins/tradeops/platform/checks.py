"""The platform's checks (seed: "Daily System Health Check", 08:00 ET): system status, agents, data feeds, Redis,
memory, performance, active alerts and the trading account.

Each one collects through the platform's hooks (I/O only) and evaluates what it read against the config's
thresholds (pure, unit-tested on fixed data). DAG files import this module at parse time: the hooks are imported
when a check collects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.platform.hooks import TradingPlatformHook

HEARTBEAT_STALE_S = 60
AVAILABILITY_TARGET_PCT = 99.9
ALERT_STATUS = {"critical": Status.FAIL, "warning": Status.WARN}  # other severities are informational
REDIS_INFO_KEYS = (
    "redis_version",
    "role",
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "maxmemory",
    "rejected_connections",
    "evicted_keys",
    "uptime_in_seconds",
)
Payload = dict[str, Any]


def _platform(config: TradeOpsConfig) -> TradingPlatformHook:
    from tradeops.platform.hooks import TradingPlatformHook

    return TradingPlatformHook(config.connections.platform_api)


def _pct(part: float, whole: float) -> float:
    return round(part / whole * 100, 1) if whole else 0.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SystemStatus(Check[Payload]):
    """Every platform component reports healthy (``/v1/system/status``)."""

    name = "system_status"
    title = "System status"
    dependency = "platform_api"
    action = "Inspect the unhealthy components (pods, logs, recent deploys); restart or roll back before the open."

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/system/status")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        components = data["components"]
        findings = [
            Finding(
                f"component:{c['name']}",
                Status.OK if c["status"] == "healthy" else Status.FAIL,
                f"{c['name']} is {c['status']}",
            )
            for c in components
        ]
        unhealthy = [c["name"] for c in components if c["status"] != "healthy"]
        if unhealthy:
            return self.result(
                Status.FAIL,
                f"{len(unhealthy)} of {len(components)} components unhealthy: {', '.join(unhealthy)}",
                findings=findings,
                unhealthy=unhealthy,
            )
        return self.result(Status.OK, f"{len(components)}/{len(components)} components healthy", findings=findings)


@dataclass(frozen=True)
class AgentHeartbeats:
    """The agents as ``/v1/agents/status`` listed them, and when they were read (heartbeat ages count from then)."""

    agents: list[Payload]
    read_at: datetime


class Agents(Check[AgentHeartbeats]):
    """Every agent the config declares reports healthy, with a heartbeat under a minute old.

    :param clock: the current time, read when the agents are (frozen in tests).
    """

    name = "agents"
    title = "Trading agents"
    dependency = "platform_api"
    action = "Check the silent or unhealthy agents' pods and logs; restart them before the open."

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self.clock = clock

    def collect(self, config: TradeOpsConfig) -> AgentHeartbeats:
        agents = _platform(config).get("/v1/agents/status")["agents"]
        return AgentHeartbeats(agents, self.clock())

    def evaluate(self, data: AgentHeartbeats, config: TradeOpsConfig) -> CheckResult:
        problems: list[str] = []
        findings: list[Finding] = []
        ages: dict[str, float] = {}
        for agent in data.agents:
            name = agent["name"]
            heartbeat = datetime.fromisoformat(agent["last_heartbeat"].replace("Z", "+00:00"))
            age = (data.read_at - heartbeat).total_seconds()
            ages[name] = round(age, 1)
            if agent["status"] != "healthy":
                problem = f"{name} is {agent['status']}"
            elif age > HEARTBEAT_STALE_S:
                problem = f"{name} last heartbeat {int(age)}s ago"
            else:
                findings.append(Finding(f"agent:{name}", Status.OK, f"{name} heartbeat {int(age)}s ago"))
                continue
            problems.append(problem)
            findings.append(Finding(f"agent:{name}", Status.FAIL, problem))
        expected = {d.name for d in config.kubernetes.deployments if d.role == "agent"}
        missing = sorted(expected - set(ages))
        for name in missing:
            problems.append(f"{name} is not reporting")
            findings.append(Finding(f"agent:{name}", Status.FAIL, f"{name} is not reporting"))
        if problems:
            return self.result(
                Status.FAIL, "; ".join(problems), findings=findings, heartbeat_age_s=ages, missing=missing
            )
        summary = f"{len(ages)}/{len(ages)} agents healthy, heartbeats within {int(max(ages.values(), default=0))}s"
        return self.result(Status.OK, summary, findings=findings, heartbeat_age_s=ages)


class DataFeeds(Check[Payload]):
    """Every market-data feed is connected (fails) and within the configured lag (warns)."""

    name = "data_feeds"
    title = "Data feeds"
    dependency = "platform_api"
    action = "Reconnect the disconnected feeds (or fail over to their backup); check the lagging feeds' network path."

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/data-feeds/status")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        max_lag_ms = config.thresholds.data_feed_max_lag_s * 1000
        feeds = data["feeds"]
        findings = []
        for feed in feeds:
            if feed["status"] != "connected":
                status, message = Status.FAIL, f"{feed['name']} is {feed['status']}"
            else:
                status = Status.WARN if feed["lag_ms"] > max_lag_ms else Status.OK
                message = f"{feed['name']} lag {feed['lag_ms']}ms"
            findings.append(Finding(f"feed:{feed['name']}", status, message, {"lag_ms": feed["lag_ms"]}))
        down = [f["name"] for f in feeds if f["status"] != "connected"]
        lagging = [
            f"{f['name']} {f['lag_ms']}ms" for f in feeds if f["status"] == "connected" and f["lag_ms"] > max_lag_ms
        ]
        lags = {f["name"]: f["lag_ms"] for f in feeds}
        if down:
            return self.result(Status.FAIL, f"disconnected: {', '.join(down)}", findings=findings, lag_ms=lags)
        if lagging:
            summary = f"lagging over {max_lag_ms:g}ms: {', '.join(lagging)}"
            return self.result(Status.WARN, summary, findings=findings, lag_ms=lags)
        summary = f"{len(lags)}/{len(lags)} feeds connected, max lag {max(lags.values())}ms"
        return self.result(Status.OK, summary, findings=findings, lag_ms=lags)


class Redis(Check[Payload]):
    """Redis answers ``PING``; warns on memory pressure and rejected connections (``INFO``)."""

    name = "redis"
    title = "Redis"
    dependency = "redis"
    action = "Look at Redis' memory (big keys, eviction policy) and client count before the open."

    def collect(self, config: TradeOpsConfig) -> Payload:
        from airflow.providers.redis.hooks.redis import RedisHook

        client = RedisHook(redis_conn_id=config.connections.redis).get_conn()
        client.ping()
        info = client.info()
        return {key: info.get(key) for key in REDIS_INFO_KEYS}

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        details = dict(data)
        problems: list[str] = []
        findings = []
        if data.get("maxmemory"):
            pct = _pct(data["used_memory"], data["maxmemory"])
            details["memory_pct"] = pct
            status = Status.WARN if pct >= config.thresholds.redis_memory_warn_pct else Status.OK
            if status is Status.WARN:
                problems.append(f"memory {pct}% of maxmemory")
            findings.append(Finding("redis:memory", status, f"memory {pct}% of maxmemory", {"memory_pct": pct}))
        rejected = data.get("rejected_connections") or 0
        if rejected:
            problems.append(f"{rejected} rejected connections")
        status = Status.WARN if rejected else Status.OK
        findings.append(Finding("redis:rejected_connections", status, f"{rejected} rejected connections"))
        server = f"Redis {data.get('redis_version')} ({data.get('role')})"
        summary = f"PONG from {server}, {data.get('connected_clients')} clients"
        if problems:
            summary += "; " + "; ".join(problems)
        return self.result(Status.WARN if problems else Status.OK, summary, findings=findings, **details)


class Memory(Check[Payload]):
    """Every component's memory against its limit (``/v1/system/status``): warns, then fails, past the thresholds."""

    name = "memory"
    title = "Memory"
    dependency = "platform_api"
    action = "Find what grows in the components near their memory limit (leak, load); raise the limit or restart."

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/system/status")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        thresholds = config.thresholds
        usage = {
            c["name"]: _pct(c["memory_used_bytes"], c["memory_limit_bytes"])
            for c in data["components"]
            if c.get("memory_limit_bytes")
        }

        def status_of(pct: float) -> Status:
            if pct >= thresholds.memory_fail_pct:
                return Status.FAIL
            return Status.WARN if pct >= thresholds.memory_warn_pct else Status.OK

        grades = {name: status_of(pct) for name, pct in usage.items()}
        findings = [Finding(f"component:{n}", grades[n], f"{n} {pct}% of its memory limit") for n, pct in usage.items()]
        status = worst(grades.values())
        if status is Status.OK:
            highest = max(usage.items(), key=lambda item: item[1], default=("-", 0.0))
            summary = f"all under {thresholds.memory_warn_pct:g}% of limit (highest {highest[0]} {highest[1]}%)"
        else:
            limit = thresholds.memory_fail_pct if status is Status.FAIL else thresholds.memory_warn_pct
            over = sorted(name for name, grade in grades.items() if grade is status)
            summary = f"memory ≥ {limit:g}% of limit: " + ", ".join(f"{n} {usage[n]}%" for n in over)
        return self.result(status, summary, findings=findings, usage_pct=usage)


class Performance(Check[Payload]):
    """The last day's p95 response time and error rate (warn) and availability (fails under 99.9 %)."""

    name = "performance"
    title = "Performance (1d)"
    dependency = "platform_api"
    action = "Look at the slowest and failing endpoints on the platform's dashboards; find what changed yesterday."

    def collect(self, config: TradeOpsConfig) -> Payload:
        return _platform(config).get("/v1/performance/metrics", timeframe="1d")

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        thresholds = config.thresholds
        p95, errors, availability = data["response_time_p95_ms"], data["error_rate_pct"], data["availability_pct"]
        slow, erring, down = (
            p95 > thresholds.response_time_p95_ms,
            errors > thresholds.error_rate_pct,
            availability < AVAILABILITY_TARGET_PCT,
        )
        problems = []
        if slow:
            problems.append(f"p95 {p95:g}ms > {thresholds.response_time_p95_ms:g}ms")
        if erring:
            problems.append(f"error rate {errors:g}% > {thresholds.error_rate_pct:g}%")
        if down:
            problems.append(f"availability {availability:g}% < {AVAILABILITY_TARGET_PCT}%")
        findings = [
            Finding("metric:response_time_p95", Status.WARN if slow else Status.OK, f"p95 {p95:g}ms"),
            Finding("metric:error_rate", Status.WARN if erring else Status.OK, f"error rate {errors:g}%"),
            Finding("metric:availability", Status.FAIL if down else Status.OK, f"availability {availability:g}%"),
        ]
        status = Status.FAIL if down else Status.WARN if problems else Status.OK
        summary = "; ".join(problems) or (
            f"p95 {p95:g}ms, {data['throughput_rps']:,} rps, errors {errors:g}%, availability {availability:g}%"
        )
        return self.result(status, summary, findings=findings, **data)


class ActiveAlerts(Check[list[Payload]]):
    """No critical alert firing in Alertmanager (warns on warning alerts); silenced and inhibited ones don't count."""

    name = "active_alerts"
    title = "Active alerts"
    dependency = "alertmanager"
    action = "Work the firing alerts (their runbook links); silence only what is understood and tracked."

    def collect(self, config: TradeOpsConfig) -> list[Payload]:
        from tradeops.platform.hooks import AlertmanagerHook

        return AlertmanagerHook(config.connections.alertmanager).active_alerts()

    def evaluate(self, data: list[Payload], config: TradeOpsConfig) -> CheckResult:
        by_severity: dict[str, list[str]] = {}
        findings: dict[str, Finding] = {}
        for alert in data:
            labels = alert["labels"]
            alertname, service = labels.get("alertname", "?"), labels.get("service")
            name = alertname if service is None else f"{alertname} ({service})"
            finding_id = f"alert:{alertname}" if service is None else f"alert:{alertname}:{service}"
            severity = labels.get("severity", "none")
            by_severity.setdefault(severity, []).append(name)
            status = ALERT_STATUS.get(severity, Status.OK)
            known = findings.get(finding_id)
            if known is None or worst([known.status, status]) is not known.status:  # one per id, the worst
                findings[finding_id] = Finding(finding_id, status, f"{name} firing ({severity})")
        critical, warning = by_severity.get("critical", []), by_severity.get("warning", [])
        if critical:
            status, summary = Status.FAIL, f"{len(critical)} critical: {', '.join(critical)}"
        elif warning:
            status, summary = Status.WARN, f"{len(warning)} warning: {', '.join(warning)}"
        else:
            status, summary = Status.OK, "no critical or warning alerts firing"
        return self.result(status, summary, findings=findings.values(), alerts=by_severity)


class AccountBalance(Check[Payload]):
    """The account's balance is inside the configured range and enough margin is available."""

    name = "account_balance"
    title = "Trading account"
    dependency = "platform_api"
    action = "Tell the trading desk and risk before the open: funding, transfers, or positions to reduce."

    def collect(self, config: TradeOpsConfig) -> Payload:
        platform = _platform(config)
        return {"balance": platform.get("/v1/account/balance"), "margin": platform.get("/v1/account/margin")}

    def evaluate(self, data: Payload, config: TradeOpsConfig) -> CheckResult:
        account = config.account
        balance = data["balance"]["balance"]
        margin_pct = data["margin"]["margin_available_pct"]
        details = {"balance": balance, "currency": data["balance"]["currency"], "margin_available_pct": margin_pct}
        problems = []
        balance_ok = account.balance_min <= balance <= account.balance_max
        if not balance_ok:
            problems.append(f"balance {balance:,.2f} outside {account.balance_min:,.0f}..{account.balance_max:,.0f}")
        margin_ok = margin_pct >= account.margin_available_min_pct
        if not margin_ok:
            problems.append(f"margin available {margin_pct}% < {account.margin_available_min_pct:g}%")
        findings = [
            Finding("account:balance", Status.OK if balance_ok else Status.FAIL, f"balance {balance:,.2f}"),
            Finding("account:margin", Status.OK if margin_ok else Status.FAIL, f"margin available {margin_pct}%"),
        ]
        if problems:
            return self.result(Status.FAIL, "; ".join(problems), findings=findings, **details)
        summary = f"balance {balance:,.2f} {details['currency']} in range, margin available {margin_pct}%"
        return self.result(Status.OK, summary, findings=findings, **details)
