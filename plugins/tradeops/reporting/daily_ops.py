"""The day's numbers for the daily operations report: what the platform, its database and TradeOps' own incident
records say about one trading session.

The window of the report runs from the previous session's close to the report's moment: overnight and pre-market
incidents (the startup's) belong to the day they prepared, and consecutive reports leave no gap (a weekend's
incidents are in Monday's). Trading numbers are the session's own (open to close).

This module is the records and what follows from them (MTTA/MTTR from the audit trail, the runs' verdicts, the
recommendations): pure, for the unit tests. Collecting them (the platform API, the platform database, the state
database, Airflow's REST API) is :mod:`tradeops.reporting.daily_ops_sources`.
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
    from tradeops.incidents.timeline import TimelineEntry


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
class RunbookRun:
    """A DAG run of the window, as Airflow's REST API reports it, with its deadline misses from TradeOps' records."""

    dag_id: str
    run_id: str
    run_type: str
    state: str
    started: datetime | None
    duration: timedelta | None
    deadlines_missed: list[str]  # the tiers


def runbook_runs(raw: list[dict[str, Any]], events: list[RunbookEvent]) -> list[RunbookRun]:
    """The runs from the API's ``dag_runs`` entries, oldest first, each with the deadline tiers it missed."""
    missed: dict[tuple[str, str | None], list[str]] = {}
    for event in events:
        if event.what.startswith("deadline"):
            missed.setdefault((event.dag_id, event.run_id), []).append(event.what.split("'")[1])
    runs = []
    for run in raw:
        started = datetime.fromisoformat(run["start_date"]) if run.get("start_date") else None
        seconds = run.get("duration")
        if seconds is None and started and run.get("end_date"):
            seconds = (datetime.fromisoformat(run["end_date"]) - started).total_seconds()
        duration = timedelta(seconds=round(seconds)) if seconds is not None else None
        key = (run["dag_id"], run["dag_run_id"])
        runs.append(
            RunbookRun(*key, str(run.get("run_type", "")), str(run["state"]), started, duration, missed.get(key, []))
        )
    return runs


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
    runs: list[RunbookRun] | None  # None: Airflow's API could not be read (``runs_note`` says why)
    runs_note: str
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
    failed = sorted({r.dag_id for r in day.runs or [] if r.state == "failed"})
    if failed:
        act(f"Runs failed: {', '.join(failed)}. Their incidents say where; rerun once fixed.")
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
