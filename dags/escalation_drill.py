"""
### Escalation drill (manual)

Proves the paging chain works before a real incident does: the run stays busy past its own deadline (20 s after it
is queued), the deadline fires in the triggerer, a P2 incident opens and pages level 1 in Slack, and, if nobody
acknowledges, the escalation engine pages level 2 and on. Acknowledge with the Slack button (or the
`incident_action` DAG) and resolve to end the drill; every step is in the incident's audit trail.

The run stays busy for 40 s, waiting in the triggerer (no worker held); the incident stays open after it ends,
until someone resolves it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from tradeops.incidents.callbacks import deadline_missed

DAG_ID = "escalation_drill"

with DAG(
    dag_id=DAG_ID,
    description="Pages the on-call chain on purpose, to prove it works",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=20),
        callback=AsyncCallback(deadline_missed, kwargs={"dag_id": DAG_ID, "tier": "drill", "severity": "P2"}),
        name=f"{DAG_ID}:drill",
    ),
    default_args={"owner": "trading-ops", "retries": 1},
    tags=["tradeops", "incidents", "manual"],
    doc_md=__doc__,
):
    TimeDeltaSensor(task_id="stay_busy_past_the_deadline", delta=timedelta(seconds=40), deferrable=True)
