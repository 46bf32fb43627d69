"""The day's numbers for the daily operations report: what the platform, its database and TradeOps' own incident
records say about one trading session.

The window of the report runs from the previous session's close to the report's moment: overnight and pre-market
incidents (the startup's) belong to the day they prepared, and consecutive reports leave no gap (a weekend's
incidents are in Monday's). Trading numbers are the session's own (open to close).

Collecting (I/O: the platform API, the platform database, the state database) is :func:`collect_day`; everything
after it (MTTA/MTTR from the audit trail, recommendations) is pure, for the unit tests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean
from typing import TYPE_CHECKING, Any

from tradeops.incidents.models import EventKind, Incident, IncidentEvent, IncidentSource, IncidentStatus

if TYPE_CHECKING:
    from tradeops.calendar.sessions import Session, SessionTable
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.service import IncidentService
    from tradeops.incidents.timeline import TimelineEntry

INCIDENTS_READ = 500  # the newest incidents read to find the window's (a day has far fewer)


@dataclass(frozen=True)
class ReportWindow:
    session: Session
    start: datetime  # the previous session's close
    end: datetime  # the report's moment


def report_window(table: SessionTable, moment: datetime) -> ReportWindow:
    """The session a report at ``moment`` closes out, and the window its incidents and logins are read from."""
    session = table.current_or_previous(moment)
    previous = table.previous_event("close", timedelta(0), session.open)
    start = previous[1] if previous else session.open - timedelta(days=1)
    return ReportWindow(session, start, moment)


@dataclass(frozen=True)
class Trading:
    trades: int
    buys: int
    sells: int
    contracts: float
    notional: float
    by_strategy: dict[str, int]
    open_positions: int
    unrealized_pnl: float
    balance: float | None
    currency: str


@dataclass(frozen=True)
class Performance:
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_rps: float
    error_rate_pct: float
    availability_pct: float
    p95_by_hour: list[tuple[str, float]]  # ("14:00", ms) in exchange time, from the platform's system_metrics


@dataclass(frozen=True)
class Component:
    name: str
    status: str
    cpu_pct: float | None
    memory_pct: float | None


@dataclass(frozen=True)
class Security:
    logins: int
    failed: int
    failed_peak_per_minute: int
    failing_sources: int  # distinct source IPs with a failed login
    by_reason: dict[str, int]
    top_users: list[tuple[str, int]]  # most failed logins first


@dataclass(frozen=True)
class IncidentTimes:
    """One incident of the day with its times from the audit trail (None: not yet)."""

    incident: Incident
    acknowledged_at: datetime | None  # the first acknowledgement (or the resolution, if nobody acknowledged)
    resolved_at: datetime | None
    ack_target: timedelta | None  # the severity's initial_response
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return self.acknowledged_at - self.incident.opened_at if self.acknowledged_at else None

    @property
    def time_to_resolve(self) -> timedelta | None:
        return self.resolved_at - self.incident.opened_at if self.resolved_at else None

    @property
    def acknowledged_late(self) -> bool:
        tta, target = self.time_to_acknowledge, self.ack_target
        return tta is not None and target is not None and tta > target


def incident_times(
    incident: Incident, events: list[IncidentEvent], ack_target: timedelta | None, timeline: list[TimelineEntry]
) -> IncidentTimes:
    """Time to acknowledge and to resolve from the append-only audit trail: the first ``acknowledged`` event (a
    resolution without one counts as the first response), the last ``resolved`` event."""
    acks = [e.at for e in events if e.kind is EventKind.ACKNOWLEDGED]
    resolutions = [e.at for e in events if e.kind is EventKind.RESOLVED]
    resolved = max(resolutions) if resolutions else None
    first_response = min(acks + resolutions) if acks or resolutions else None
    return IncidentTimes(incident, first_response, resolved, ack_target, timeline)


def mean_time(values: list[timedelta | None]) -> timedelta | None:
    """The mean of the times that exist (MTTA, MTTR); None when none does."""
    seconds = [v.total_seconds() for v in values if v is not None]
    return timedelta(seconds=round(fmean(seconds))) if seconds else None


@dataclass(frozen=True)
class RunbookEvent:
    """A runbook's trouble of the day from TradeOps' records: a deadline missed or a failed run."""

    dag_id: str
    what: str  # "deadline 'late' missed", "failed at <task>"
    run_id: str | None
    at: datetime
    severity: str
    incident_id: int


def runbook_events(incidents: list[Incident]) -> list[RunbookEvent]:
    """The deadline misses and runbook failures among the day's incidents, oldest first."""
    found = []
    for incident in incidents:
        if not incident.dag_id:
            continue
        if incident.source is IncidentSource.DEADLINE:
            what = f"deadline '{incident.details.get('tier', '?')}' missed"
        elif incident.source is IncidentSource.TASK_FAILURE:
            task = incident.task_id or incident.details.get("task_id")
            what = f"failed at {task}" if task else "failed"
        else:
            continue
        event = RunbookEvent(incident.dag_id, what, incident.run_id, incident.opened_at, incident.severity, incident.id)
        found.append(event)
    return sorted(found, key=lambda event: event.at)


@dataclass(frozen=True)
class Recommendation:
    level: str  # "action" (do something) or "watch"
    text: str


@dataclass(frozen=True)
class DayReport:
    window: ReportWindow
    trading: Trading
    performance: Performance
    components: list[Component]
    incidents: list[IncidentTimes]
    runbooks: list[RunbookEvent]
    security: Security
    p95_target_ms: float
    error_rate_target_pct: float
    cpu_limit_pct: float
    memory_limit_pct: float
    failed_logins_per_minute_limit: float | None

    @property
    def mtta(self) -> timedelta | None:
        return mean_time([i.time_to_acknowledge for i in self.incidents])

    @property
    def mttr(self) -> timedelta | None:
        return mean_time([i.time_to_resolve for i in self.incidents])

    @property
    def by_severity(self) -> Counter[str]:
        return Counter(i.incident.severity for i in self.incidents)


def recommendations(day: DayReport) -> list[Recommendation]:
    """What the numbers ask for, most pressing first; one "watch" line when nothing does."""
    found: list[Recommendation] = []

    def act(text: str) -> None:
        found.append(Recommendation("action", text))

    perf = day.performance
    if perf.p95_ms > day.p95_target_ms:
        act(
            f"Response time p95 was {perf.p95_ms:g} ms, over the {day.p95_target_ms:g} ms target: profile the "
            "slowest path before the next open."
        )
    if perf.error_rate_pct > day.error_rate_target_pct:
        act(
            f"Error rate {perf.error_rate_pct:g} % is over {day.error_rate_target_pct:g} %: review the platform's "
            "error logs."
        )
    if perf.availability_pct < 99.9:
        act(f"Availability {perf.availability_pct:g} % is under 99.9 %.")
    for comp in day.components:
        if comp.status != "healthy":
            act(f"{comp.name} is {comp.status}.")
        if comp.cpu_pct is not None and comp.cpu_pct > day.cpu_limit_pct:
            act(f"{comp.name} CPU at {comp.cpu_pct:g} % (limit {day.cpu_limit_pct:g} %): raise its CPU or replicas.")
        if comp.memory_pct is not None and comp.memory_pct > day.memory_limit_pct:
            act(f"{comp.name} memory at {comp.memory_pct:g} % (limit {day.memory_limit_pct:g} %): raise its limit.")
    late = [i for i in day.incidents if i.acknowledged_late]
    if late:
        names = ", ".join(f"#{i.incident.id} ({i.incident.severity})" for i in late)
        act(
            f"{len(late)} incident(s) acknowledged after their severity's initial response time: {names}. "
            "Review the on-call rota."
        )
    active = [f"#{i.incident.id}" for i in day.incidents if i.incident.status is not IncidentStatus.RESOLVED]
    if active:
        act(f"{len(active)} incident(s) still not resolved: {', '.join(active)}.")
    missed = sorted({r.dag_id for r in day.runbooks if r.what.startswith("deadline")})
    if missed:
        act(f"Deadlines missed by {', '.join(missed)}: check their durations and schedules.")
    sec, limit = day.security, day.failed_logins_per_minute_limit
    if limit is not None and sec.failed_peak_per_minute > limit:
        act(
            f"Failed logins peaked at {sec.failed_peak_per_minute} a minute (rule: {limit:g}): review the sources "
            "with security."
        )
    elif sec.logins and sec.failed / sec.logins > 0.1:
        found.append(
            Recommendation("watch", f"{sec.failed} of {sec.logins} logins failed: check the users most affected.")
        )
    return found or [Recommendation("watch", "Nothing needs action: every number is within its target.")]


# --- collecting ------------------------------------------------------------------------------------------------


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
        runbooks=runbook_events([i.incident for i in day_incidents]),
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
