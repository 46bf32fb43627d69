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

from datetime import timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor

from tradeops.dagkit import RunDeadline, manual_dag

with manual_dag(
    "escalation_drill",
    owner="trading-ops",
    description="Pages the on-call chain on purpose, to prove it works",
    deadlines=[RunDeadline("drill", after=timedelta(seconds=20), severity="P2")],
    tags=["incidents"],
    doc_md=__doc__,
):
    TimeDeltaSensor(task_id="stay_busy_past_the_deadline", delta=timedelta(seconds=40), deferrable=True)
