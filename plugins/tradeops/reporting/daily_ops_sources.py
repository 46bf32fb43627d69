"""Where the daily operations report's numbers come from: the platform API, the platform database (read only),
TradeOps' state database (incidents and their audit trail) and Airflow's REST API (the day's runs: a task cannot read
Airflow's metadata database). Everything read here becomes the records of :mod:`tradeops.reporting.daily_ops`."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from tradeops.reporting.daily_ops import (
    Component,
    DayReport,
    IncidentTimes,
    Performance,
    ReportWindow,
    RunbookEvent,
    RunbookRun,
    Security,
    Trading,
    incident_times,
    runbook_events,
    runbook_runs,
)

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.models import Incident
    from tradeops.incidents.service import IncidentService

log = logging.getLogger("airflow.task.tradeops.reporting")
INCIDENTS_READ = 500  # the newest incidents read to find the window's (a day has far fewer)


def collect_day(config: TradeOpsConfig, window: ReportWindow, incidents: IncidentService) -> DayReport:
    """Everything the report shows, read from the platform API, the platform database and the state database."""
    from tradeops.connections import postgres_dsn
    from tradeops.platform.hooks import TradingPlatformHook

    api = TradingPlatformHook(config.connections.platform_api)
    metrics = api.get("/v1/performance/metrics", timeframe="1d")
    status = api.get("/v1/system/status")
    positions = api.get("/v1/positions")
    balance = api.get("/v1/account/balance")
    with _platform_db(postgres_dsn(config.connections.platform_db)) as conn:
        trading = _trading(conn, window, positions, balance)
        p95_by_hour = _p95_by_hour(conn, window, config)
        security = _security(conn, window)
    rules = {rule.metric: rule.above for rule in config.market_watch.rules}
    day_incidents = _incidents(config, window, incidents)
    events = runbook_events([i.incident for i in day_incidents])
    runs, runs_note = _runs(config, window, events)
    return DayReport(
        window=window,
        trading=trading,
        performance=Performance(
            p50_ms=float(metrics["response_time_p50_ms"]),
            p95_ms=float(metrics["response_time_p95_ms"]),
            p99_ms=float(metrics["response_time_p99_ms"]),
            throughput_rps=float(metrics["throughput_rps"]),
            error_rate_pct=float(metrics["error_rate_pct"]),
            availability_pct=float(metrics["availability_pct"]),
            p95_by_hour=p95_by_hour,
        ),
        components=[_component(c) for c in status.get("components", [])],
        incidents=day_incidents,
        runbooks=events,
        runs=runs,
        runs_note=runs_note,
        security=security,
        p95_target_ms=float(config.thresholds.response_time_p95_ms),
        error_rate_target_pct=float(config.thresholds.error_rate_pct),
        cpu_limit_pct=float(rules.get("cpu_pct", 80)),
        memory_limit_pct=float(rules.get("memory_pct", 85)),
        failed_logins_per_minute_limit=rules.get("failed_logins_per_min"),
    )


def _platform_db(dsn: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, connect_timeout=10, options="-c timezone=UTC -c default_transaction_read_only=on")


def _component(raw: dict[str, Any]) -> Component:
    limit = raw.get("memory_limit_bytes")
    memory = round(100 * raw["memory_used_bytes"] / limit, 1) if limit and "memory_used_bytes" in raw else None
    cpu = raw.get("cpu_pct")
    return Component(raw["name"], raw.get("status", "unknown"), float(cpu) if cpu is not None else None, memory)


def _trading(conn: Any, window: ReportWindow, positions: dict, balance: dict) -> Trading:
    session = window.session
    rows = conn.execute(
        "SELECT side, strategy, count(*), coalesce(sum(qty), 0), coalesce(sum(qty * price), 0) FROM trades "
        "WHERE trade_ts >= %s AND trade_ts < %s GROUP BY side, strategy",
        (session.open, min(session.close, window.end)),
    ).fetchall()
    by_side: Counter[str] = Counter()
    by_strategy: Counter[str] = Counter()
    for side, strategy, count, _qty, _notional in rows:
        by_side[side] += count
        by_strategy[strategy] += count
    open_positions = positions.get("positions", [])
    return Trading(
        trades=sum(by_side.values()),
        buys=by_side["buy"],
        sells=by_side["sell"],
        contracts=float(sum(row[3] for row in rows)),
        notional=float(sum(row[4] for row in rows)),
        by_strategy=dict(sorted(by_strategy.items())),
        open_positions=len(open_positions),
        unrealized_pnl=round(sum(float(p.get("unrealized_pnl", 0)) for p in open_positions), 2),
        balance=float(balance["balance"]) if "balance" in balance else None,
        currency=str(balance.get("currency", "USD")),
    )


def _p95_by_hour(conn: Any, window: ReportWindow, config: TradeOpsConfig) -> list[tuple[str, float]]:
    """The platform's recorded latency (``system_metrics``, metric ``latency_ms``) as a p95 per hour of the session,
    labelled in the exchange's time."""
    from zoneinfo import ZoneInfo

    session = window.session
    rows = conn.execute(
        "SELECT date_trunc('hour', ts) AS hour, percentile_cont(0.95) WITHIN GROUP (ORDER BY value) "
        "FROM system_metrics WHERE metric = 'latency_ms' AND ts >= %s AND ts < %s GROUP BY 1 ORDER BY 1",
        (session.open, min(session.close, window.end)),
    ).fetchall()
    tz = ZoneInfo(_exchange_tz(config))
    return [(hour.astimezone(tz).strftime("%H:%M"), round(float(p95), 1)) for hour, p95 in rows]


def _exchange_tz(config: TradeOpsConfig) -> str:
    from tradeops.calendar.sessions import sessions_for

    return sessions_for(config.platform.exchange).tz


def _security(conn: Any, window: ReportWindow) -> Security:
    span = (window.start, window.end)
    logins, failed, sources = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT success), count(DISTINCT source_ip) FILTER (WHERE NOT success) "
        "FROM login_events WHERE occurred_at >= %s AND occurred_at < %s",
        span,
    ).fetchone()
    peak = conn.execute(
        "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM login_events WHERE NOT success "
        "AND occurred_at >= %s AND occurred_at < %s GROUP BY date_trunc('minute', occurred_at)) AS per_minute",
        span,
    ).fetchone()[0]
    reasons = conn.execute(
        "SELECT coalesce(failure_reason, 'unknown'), count(*) FROM login_events WHERE NOT success "
        "AND occurred_at >= %s AND occurred_at < %s GROUP BY 1 ORDER BY 2 DESC",
        span,
    ).fetchall()
    users = conn.execute(
        "SELECT username, count(*) FROM login_events WHERE NOT success AND occurred_at >= %s AND occurred_at < %s "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
        span,
    ).fetchall()
    return Security(logins, failed, peak, sources, dict(reasons), [(u, n) for u, n in users])


def _incidents(config: TradeOpsConfig, window: ReportWindow, service: IncidentService) -> list[IncidentTimes]:
    """The incidents opened in the window, and those opened before it that were still active in it."""
    from tradeops.incidents.timeline import timeline

    def in_window(incident: Incident) -> bool:
        if incident.opened_at >= window.end:
            return False
        return (
            incident.opened_at >= window.start or incident.resolved_at is None or (incident.resolved_at >= window.start)
        )

    day = [i for i in service.recent(INCIDENTS_READ) if in_window(i)]
    trails = service.timelines([i.id for i in day]) if day else {}
    levels = {level.level: level.name for level in config.escalation.levels}
    targets = {str(name): policy.initial_response for name, policy in config.escalation.severities.items()}
    result = []
    for incident in sorted(day, key=lambda i: i.opened_at):
        events = trails.get(incident.id, [])
        lines = [e for e in timeline(incident, events, levels) if e.tone != "minor"]
        result.append(incident_times(incident, events, targets.get(incident.severity), lines))
    return result


def _runs(
    config: TradeOpsConfig, window: ReportWindow, events: list[RunbookEvent]
) -> tuple[list[RunbookRun] | None, str]:
    """The window's runs from Airflow's REST API, or None and why not: the report still goes out without them."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from tradeops.exceptions import PlatformApiError
    from tradeops.reporting.hooks import AirflowApiHook

    conn_id = config.connections.airflow_api
    try:
        raw = AirflowApiHook(conn_id).dag_runs(window.start, window.end)
    except AirflowNotFoundException:
        return None, f"no Airflow API connection ({conn_id}): run durations are in the Airflow UI"
    except PlatformApiError as err:
        log.warning("The day's runs could not be read: %s", err)
        return None, f"Airflow's API could not be read ({err}): run durations are in the Airflow UI"
    return runbook_runs(raw, events), f"{len(raw)} runs from Airflow's REST API"
