"""The escalation engine's starts of ``incident_response``: a P1 incident that needs its runbook and has none gets it,
once, from the engine's loop in the triggerer (which cannot create runs through Airflow's ORM): through the
api-server's REST API (``connections.airflow_api``), as a person's trigger would, the form validated.

- Which incidents (:func:`due_start`, pure): P1, not resolved, opened within :data:`MAX_AGE` (older ones are in
  people's hands), with an ``alerts.runbooks`` entry (an alert's labels, or a non-alert incident's dedup key exactly
  an entry's ``key``), and no run yet: no ``runbook_start`` that started it, found it started or found the DAG paused
  (pausing it switches automatic starts off), and no runbook step on its trail (a person started one).
- An alert's incident gets :data:`WEBHOOK_GRACE` for the webhook's own start first, and the same run id
  (``incident_<id>__alert``), so a racing webhook and engine make one run; the others run ``incident_<id>__engine``.
  An existing run (HTTP 409) is "already started".
- Not a dry run, as the webhook's: the destructive steps wait at ``approve`` unless the entry allows them.
- Every try is one ``runbook_start`` entry by the escalation engine; a failure (the api-server down, no connection,
  the form refused) never stops the engine's loop: it is tried again later and later (15 s more each time, at most
  every 15 min), as the incident reports are.
- Two engines at once: each incident's start is taken under a transaction-level advisory lock, and what is due is
  read again under it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tradeops.incident_response.starts import (
    ALREADY_STARTED,
    DAG_ID,
    FAILED,
    PAUSED,
    STARTED,
    run_id_for,
    runbook_entry,
)
from tradeops.incidents import store
from tradeops.incidents.models import EventKind, Incident, IncidentEvent, IncidentSource, IncidentStatus
from tradeops.incidents.report_files import retry_after

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.config.alerts import RunbookEntry
    from tradeops.incidents.service import IncidentService
    from tradeops.reporting.hooks import AirflowApiHook

log = logging.getLogger("airflow.task.tradeops.incidents")

ACTOR = "escalation engine"
SEVERITY = "P1"
MAX_AGE = timedelta(hours=1)
WEBHOOK_GRACE = timedelta(seconds=60)
FINAL = (STARTED, ALREADY_STARTED, PAUSED)
LOCK_CLASS = 17_001  # pg_try_advisory_xact_lock(LOCK_CLASS, incident id): one starter per incident at a time


@dataclass(frozen=True)
class DueStart:
    """A start the engine owes: the incident, its table entry, the run id, and which try this is (1 = the first)."""

    incident_id: int
    entry: RunbookEntry
    run_id: str
    attempt: int


def engine_run_id(incident: Incident) -> str:
    """The webhook's run id for an alert's incident (one run whichever starts it), else ``incident_<id>__engine``."""
    return run_id_for(incident.id) if incident.source is IncidentSource.ALERT else f"incident_{incident.id}__engine"


def due_start(
    incident: Incident, events: list[IncidentEvent], config: TradeOpsConfig, now: datetime
) -> DueStart | None:
    """The start the engine owes ``incident`` now, given its trail, if any (pure)."""
    if incident.severity != SEVERITY or incident.status is IncidentStatus.RESOLVED:
        return None
    if now - incident.opened_at > MAX_AGE:
        return None
    entry = runbook_entry(incident, config)
    if entry is None or any(e.kind is EventKind.RUNBOOK_STEP for e in events):
        return None
    starts = [e for e in events if e.kind is EventKind.RUNBOOK_START]
    if any(e.detail.get("result") in FINAL for e in starts):
        return None
    failed = [e for e in starts if e.actor == ACTOR and e.detail.get("result") == FAILED]
    if failed:
        due_at = failed[-1].at + retry_after(len(failed))
    else:
        due_at = incident.opened_at + (WEBHOOK_GRACE if incident.source is IncidentSource.ALERT else timedelta(0))
    if due_at > now:
        return None
    return DueStart(incident.id, entry, engine_run_id(incident), len(failed) + 1)


def start_due(incidents: IncidentService, now: datetime | None = None) -> int:
    """Start the runbook of every incident that is owed one; how many were started. A database error is raised
    (the engine's loop retries); anything else is recorded on the incident's trail and tried again later."""
    from tradeops.reporting.hooks import AirflowApiHook

    now = now or datetime.now(UTC)
    with store.connect(incidents.dsn) as conn:
        rows = conn.execute(
            "SELECT * FROM tradeops.incidents WHERE severity = %s AND status <> 'resolved' AND opened_at >= %s "
            "ORDER BY id",
            (SEVERITY, now - MAX_AGE),
        ).fetchall()
        candidates = [Incident.from_row(row) for row in rows]
        trails = store.timelines(conn, [i.id for i in candidates]) if candidates else {}
    due = [i.id for i in candidates if due_start(i, trails[i.id], incidents.config, now)]
    if not due:
        return 0
    # No HTTP retries in the hook: its backoff would sleep in the engine's loop; a failed start is recorded and this
    # loop tries it again later (retry_after), without holding the outbox or the escalations meanwhile.
    api = AirflowApiHook(incidents.config.connections.airflow_api, retries=0)
    with store.connect(incidents.dsn) as conn:
        return sum(_start_one(conn, incidents.config, api, incident_id, now) == STARTED for incident_id in due)


def _start_one(
    conn: store.Connection, config: TradeOpsConfig, api: AirflowApiHook, incident_id: int, now: datetime
) -> str | None:
    with conn.transaction():
        lock = store.one(conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s) AS got", (LOCK_CLASS, incident_id)))
        if not lock["got"]:
            return None  # another engine is starting it
        incident = store.get(conn, incident_id)
        due = due_start(incident, store.timeline(conn, incident_id), config, now)
        if due is None:
            return None
        detail: dict[str, Any] = {
            "dag_id": DAG_ID,
            "run_id": due.run_id,
            "type": due.entry.type,
            **({"match": due.entry.match} if due.entry.match else {"key": due.entry.key}),
            "act_without_approval": due.entry.act_without_approval,
            "attempt": due.attempt,
        }
        try:
            detail["result"] = _trigger(api, incident, due)
        except Exception as err:  # never the engine's failure: recorded, tried again later
            retry_in = retry_after(due.attempt)
            error = f"{type(err).__name__}: {err}"[:500]
            detail.update(result=FAILED, error=error, retry_in_s=int(retry_in.total_seconds()))
            log.warning("incident #%s: %s not started (%s); retrying in %s", incident_id, DAG_ID, err, retry_in)
        else:
            log.info("incident #%s: %s run %s %s", incident_id, DAG_ID, due.run_id, detail["result"])
        store.event(conn, incident_id, EventKind.RUNBOOK_START, actor=ACTOR, detail=detail)
        return str(detail["result"])


def _trigger(api: AirflowApiHook, incident: Incident, due: DueStart) -> str:
    if api.is_paused(DAG_ID):
        return PAUSED
    reason = f"P1 incident #{incident.id} (automatic start by the escalation engine)"
    conf = {"incident_id": incident.id, "type": due.entry.type, "dry_run": False, "reason": reason}
    return STARTED if api.trigger_run(DAG_ID, due.run_id, conf, note=reason) else ALREADY_STARTED
