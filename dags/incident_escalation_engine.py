"""
### Incident escalation engine

Runs TradeOps' escalation engine in the triggerer, in 31-minute windows started every 30 minutes (so there is always
one running; two never act on the same incident). It pages the next level when an incident stays unacknowledged
(`escalation` in `tradeops.yaml`: L1 on-call engineer → L2 operations manager → L3 CTO and trading desk → L4 CEO and
risk management, by severity), repeats the ladder if configured, re-pages when an acknowledgement goes stale, posts
status updates in the incident's Slack thread, and retries Slack messages that could not be delivered.

It holds no worker slot: the task defers, and the trigger sleeps until the next action is due or PostgreSQL
announces a change (`LISTEN tradeops_incidents`). All state is in PostgreSQL (`tradeops` schema), so a restart of
any Airflow component loses nothing: the next window acts on whatever fell due meanwhile.

Unpausing runs it at once (`run_immediately`); keep it unpaused.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable

from tradeops.dagkit import scheduled_dag
from tradeops.incidents.operators import EscalationEngineOperator

with scheduled_dag(
    "incident_escalation_engine",
    owner="trading-ops",
    retries=3,
    retry_delay=timedelta(seconds=10),
    description="Escalates unacknowledged incidents level by level, without holding a worker",
    schedule=CronTriggerTimetable("*/30 * * * *", timezone="UTC", run_immediately=True),
    max_active_runs=2,
    tags=["incidents"],
    doc_md=__doc__,
):
    EscalationEngineOperator(task_id="escalate", window=timedelta(minutes=31))
