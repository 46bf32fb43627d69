"""Automatic starts of ``incident_response``: a firing alert that opens a new incident and matches the config's
``alerts.runbooks`` table starts the runbook on it, from the api-server's webhook, through Airflow's own trigger
path (:func:`airflow.api.common.trigger_dag.trigger_dag`: the DAG's form validated as for any trigger).

- One run per incident: the run id is ``incident_<id>__alert``, so a retried or duplicated delivery finds the run
  already there ("already started", not an error).
- Not a dry run: the diagnostics, notify and plan steps run at once; the destructive ones wait at the ``approve``
  step unless the matching entry says ``act_without_approval`` (decided by that step, from the incident).
- The triggering user is ``Alertmanager``: every step the run writes on the trail is by Alertmanager.
- A paused ``incident_response`` starts nothing: its run would wait, queued, until someone unpaused it and then act
  on an old alert. Pausing it is how people switch automatic starts off; the trail says so. (The DAG itself is
  unpaused when Airflow first sees it: it has no schedule, so unpaused it only runs what is triggered.)
- Whatever happens (started, already started, paused, failed) is one ``runbook_start`` entry on the incident's trail
  and in the log; a failure never fails the webhook: the incident is committed before the start is tried.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tradeops.incidents import store
from tradeops.incidents.models import EventKind

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.config.alerts import RunbookEntry
    from tradeops.incidents.alerts import Notification
    from tradeops.incidents.models import Incident
    from tradeops.incidents.service import IncidentService

log = logging.getLogger("airflow.task.tradeops.incidents")

DAG_ID = "incident_response"
ACTOR = "Alertmanager"
STARTED, ALREADY_STARTED, PAUSED, FAILED = "started", "already started", "not started: paused", "failed"


def run_id_for(incident_id: int) -> str:
    """The automatic run's id: one per incident, whatever the number of deliveries."""
    return f"incident_{incident_id}__alert"


def runbook_entry(incident: Incident, config: TradeOpsConfig) -> RunbookEntry | None:
    """The ``alerts.runbooks`` entry of an incident (pure): for an alert's, the first whose ``match`` the labels
    recorded with it satisfy; for any other, the first whose ``key`` is its dedup key."""
    from tradeops.incidents.models import IncidentSource

    if incident.source is not IncidentSource.ALERT:
        return config.alerts.runbook_for_key(incident.dedup_key)
    labels = incident.details.get("labels")
    if not isinstance(labels, dict):
        return None
    return config.alerts.runbook_for({str(key): str(value) for key, value in labels.items()})


def form_for(incident_id: int, entry: RunbookEntry, alertname: str) -> dict[str, Any]:
    """The run's form: the incident, the entry's runbook type, not a dry run, and why."""
    return {
        "incident_id": incident_id,
        "type": entry.type,
        "dry_run": False,
        "reason": f"alert {alertname} (automatic start)",
    }


def start_for_alerts(notification: Notification, outcomes: list[dict[str, Any]], incidents: IncidentService) -> None:
    """For each alert of ``notification`` that opened a new incident and matches the table, start its runbook; the
    start's result is added to the alert's outcome (``runbook``)."""
    table = incidents.config.alerts
    for alert, outcome in zip(notification.alerts, outcomes, strict=True):
        entry = table.runbook_for(alert.labels) if outcome.get("result") == "opened" else None
        if entry is not None:
            outcome["runbook"] = start(incidents, outcome["incident"], entry, outcome["alertname"])


def start(incidents: IncidentService, incident_id: int, entry: RunbookEntry, alertname: str) -> dict[str, Any]:
    """Start ``incident_response`` on the incident (once), record the result on its trail, and return it."""
    run_id = run_id_for(incident_id)
    detail: dict[str, Any] = {
        "dag_id": DAG_ID,
        "run_id": run_id,
        "type": entry.type,
        "alertname": alertname,
        "act_without_approval": entry.act_without_approval,
    }
    try:
        detail["result"] = _trigger(run_id, form_for(incident_id, entry, alertname))
    except Exception as err:  # never the webhook's failure: the incident is recorded, a person starts it
        log.exception("incident #%s: %s could not be started for alert %s", incident_id, DAG_ID, alertname)
        detail.update(result=FAILED, error=f"{type(err).__name__}: {err}"[:500])
    else:
        log.info("incident #%s: %s run %s %s", incident_id, DAG_ID, run_id, detail["result"])
    try:
        with store.connect(incidents.dsn) as conn:
            store.event(conn, incident_id, EventKind.RUNBOOK_START, actor=ACTOR, detail=detail)
    except Exception:  # the webhook still answers; a P1 owed a run is started by the escalation engine
        log.exception("incident #%s: the runbook start (%s) is not on its trail", incident_id, detail["result"])
    return detail


def _trigger(run_id: str, conf: dict[str, Any]) -> str:
    """Create the run as the REST API's trigger does (the form validated), unless the DAG is paused or the run
    exists. Raises whatever refused it (unknown DAG, a form value refused)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models import DagModel, DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        dag = DagModel.get_current(DAG_ID, session=session)
        if dag is None:
            raise DagNotFound(f"{DAG_ID} is not in Airflow's database (not parsed yet?)")
        if dag.is_paused:
            return PAUSED
        if DagRun.find_duplicate(dag_id=DAG_ID, run_id=run_id, session=session):
            return ALREADY_STARTED
    try:
        trigger_dag(
            DAG_ID,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=ACTOR,
            run_id=run_id,
            conf=conf,
            note=conf["reason"],
        )
    except DagRunAlreadyExists:
        return ALREADY_STARTED
    except Exception:
        with create_session() as session:  # a start racing this one created it first (the run id is unique)
            if DagRun.find_duplicate(dag_id=DAG_ID, run_id=run_id, session=session):
                return ALREADY_STARTED
        raise
    return STARTED
