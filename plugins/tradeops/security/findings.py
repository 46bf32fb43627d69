"""Findings tracked from run to run (``tradeops.security_findings``, migration 007): each run's findings become
new, still open or fixed, and each failed finding is one incident (``security:<finding id>``) for as long as it
lasts, resolved by the first run that no longer finds it.

A check that could not read what it checks (its dependency down) fixes nothing: its open findings stay open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from tradeops.checks.base import CheckResult, Status
from tradeops.incidents import store

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.service import IncidentService

NEW, OPEN, FIXED = "new", "still open", "fixed"


def incident_key(finding_id: str) -> str:
    return f"security:{finding_id}"


@dataclass(frozen=True)
class Tracked:
    """A finding as this run sees it: ``state`` is new, still open or fixed."""

    id: str
    check: str
    state: str
    status: str  # warn | fail ("fixed" findings keep their last level)
    message: str
    critical: bool = False
    first_seen_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    incident_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["first_seen_at"] = self.first_seen_at.isoformat() if self.first_seen_at else None
        return data


def classify(results: dict[str, CheckResult], previous: dict[str, dict[str, Any]], now: datetime) -> list[Tracked]:
    """This run's findings (not ok) against the open ones of earlier runs (``previous``, by id): pure."""
    out = []
    seen = set()
    for check, result in results.items():
        for finding in result.findings:
            if finding.status is Status.OK:
                continue
            seen.add(finding.id)
            before = previous.get(finding.id)
            out.append(
                Tracked(
                    finding.id,
                    check,
                    OPEN if before else NEW,
                    finding.status.value,
                    finding.message,
                    finding.critical,
                    before["first_seen_at"] if before else now,
                    finding.details,
                    before.get("incident_id") if before else None,
                )
            )
    looked = {check for check, result in results.items() if result.reachable}
    for finding_id, before in previous.items():
        if finding_id not in seen and before["check_name"] in looked:
            out.append(
                Tracked(
                    finding_id,
                    before["check_name"],
                    FIXED,
                    before["level"],
                    before["message"],
                    before["critical"],
                    before["first_seen_at"],
                    {},
                    before.get("incident_id"),
                )
            )
    return out


def open_findings(dsn: str) -> dict[str, dict[str, Any]]:
    with store.connect(dsn) as conn:
        rows = conn.execute("SELECT * FROM tradeops.security_findings WHERE status = 'open'").fetchall()
    return {row["finding_id"]: row for row in rows}


def record(dsn: str, tracked: list[Tracked], run_id: str, now: datetime) -> None:
    """Write this run's view: seen findings open (reopened when they were fixed), the fixed ones fixed."""
    with store.connect(dsn) as conn, conn.transaction():
        for t in tracked:
            if t.state == FIXED:
                conn.execute(
                    "UPDATE tradeops.security_findings SET status = 'fixed', fixed_at = %s, fixed_run = %s "
                    "WHERE finding_id = %s",
                    (now, run_id, t.id),
                )
                continue
            conn.execute(
                """
                INSERT INTO tradeops.security_findings AS f (finding_id, check_name, status, level, critical, message,
                    details, first_seen_at, first_seen_run, last_seen_at, last_seen_run, incident_id)
                VALUES (%(id)s, %(check)s, 'open', %(status)s, %(critical)s, %(message)s, %(details)s, %(now)s,
                    %(run)s, %(now)s, %(run)s, %(incident)s)
                ON CONFLICT (finding_id) DO UPDATE SET
                    check_name = EXCLUDED.check_name, level = EXCLUDED.level, critical = EXCLUDED.critical,
                    message = EXCLUDED.message, details = EXCLUDED.details, last_seen_at = EXCLUDED.last_seen_at,
                    last_seen_run = EXCLUDED.last_seen_run, incident_id = EXCLUDED.incident_id,
                    status = 'open', fixed_at = NULL, fixed_run = NULL,
                    first_seen_at = CASE WHEN f.status = 'fixed' THEN EXCLUDED.first_seen_at ELSE f.first_seen_at END,
                    first_seen_run = CASE WHEN f.status = 'fixed' THEN EXCLUDED.first_seen_run
                                          ELSE f.first_seen_run END
                """,
                {
                    "id": t.id,
                    "check": t.check,
                    "status": t.status,
                    "critical": t.critical,
                    "message": t.message,
                    "details": Jsonb(t.details),
                    "now": now,
                    "run": run_id,
                    "incident": t.incident_id,
                },
            )


def raise_incidents(
    incidents: IncidentService, config: TradeOpsConfig, tracked: list[Tracked], dag_id: str, run_id: str
) -> list[Tracked]:
    """One incident per failed finding (opened, or one more occurrence of its open one); the fixed ones' resolved.
    Returns ``tracked`` with each finding's incident id."""
    from dataclasses import replace

    from tradeops.incidents.models import IncidentSource, NewIncident

    out = []
    for t in tracked:
        if t.state != FIXED and t.status == Status.FAIL.value:
            severity = config.security.critical_severity if t.critical else config.security.high_severity
            opened = incidents.open(
                NewIncident(
                    dedup_key=incident_key(t.id),
                    source=IncidentSource.CHECK,
                    severity=severity,
                    title=f"Security: {t.message}"[:200],
                    summary=f"{t.message} ({t.state}; finding `{t.id}`)"[:2000],
                    dag_id=dag_id,
                    run_id=run_id,
                    task_id=t.check,
                    details={"finding": t.id, "check": t.check, "state": t.state},
                )
            )
            t = replace(t, incident_id=opened.incident.id)
        out.append(t)
    fixed = {incident_key(t.id): t for t in tracked if t.state == FIXED}
    for key, incident in incidents.active_by_key(list(fixed)).items():
        incidents.resolve(incident.id, "tradeops (the security check no longer finds it)", note=fixed[key].message)
    return out


def from_results(pushed: dict[str, dict[str, Any] | None]) -> dict[str, CheckResult]:
    return {task_id: CheckResult.from_dict(data) for task_id, data in pushed.items() if data}
