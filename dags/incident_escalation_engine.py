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

It is unpaused when Airflow first sees it (`is_paused_upon_creation=False`, which wins over Airflow's
`dags_are_paused_at_creation`), and its first window starts at once (`run_immediately`): escalation works from the
first start of a deployment, with nobody to remember to unpause it. Keep it unpaused: each window writes a
heartbeat (`tradeops.engine_heartbeats`) at least every 30 s, and the daily health check's `escalation_engine` check
opens a P1 incident when the newest is older than `incidents.engine_stale_after` (3 min), whether the DAG was paused
or its trigger is not running. A DAG that already exists keeps its pause state: unpause it once by hand.
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
    is_paused_upon_creation=False,
):
    EscalationEngineOperator(task_id="escalate", window=timedelta(minutes=31))
