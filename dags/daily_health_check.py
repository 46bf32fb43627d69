"""
### Daily health check

Seed runbook: *Daily System Health Check* (08:00 ET, Operations Team Lead), run on every trading day at the
time `schedules.daily_health_check` gives in `tradeops.yaml` (default: 90 minutes before the XNYS open, which is
08:00 ET whatever the season).

One task per check, each retried on its own, each red when its check fails:

| task | checks | fails when |
|---|---|---|
| `system_status` | platform `/v1/system/status` | any component unhealthy |
| `agents` | `/v1/agents/status` | an agent unhealthy, silent for 60 s, or missing |
| `data_feeds` | `/v1/data-feeds/status` | a feed disconnected (warns on lag) |
| `database_connections` | `pg_stat_activity` vs `max_connections` | usage over the fail threshold (warns at 80 %) |
| `redis` | `PING`, `INFO` | Redis unreachable (warns on memory pressure) |
| `memory` | component memory vs limits | any component over the fail threshold (warns at 70 %) |
| `performance` | `/v1/performance/metrics?timeframe=1d` | availability under 99.9 % (warns on p95, error rate) |
| `active_alerts` | Alertmanager `/api/v2/alerts` | a critical alert firing (warns on warning alerts) |
| `account_balance` | `/v1/account/balance`, `/v1/account/margin` | balance outside the configured range, margin too low |

`report_incidents` always runs: each failed check opens (or adds an occurrence to) its own incident, at the
severity `incidents.check_severity` gives it, and the incident of a check that passes again is resolved.
`summary` always runs too: it writes a JSON report, posts one Slack message to the ops channel, and fails the run
(without retrying) when any check failed.

Deadlines (`deadlines.daily_health_check` in `tradeops.yaml`, anchored to the same session's open): a run still
going 30 minutes before the open opens a P3 incident, 10 minutes before the open a P2 one; both escalate.
`checks_green_by_deadline` is a task-level deadline (`incidents.task_deadlines`): every check must have succeeded by
10 minutes before the open, or an incident opens; it waits in the triggerer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from tradeops.calendar.deadlines import deadline_alerts
from tradeops.calendar.timetable import ExchangeSessionTimetable
from tradeops.checks.health import HEALTH_CHECKS
from tradeops.config import load_config
from tradeops.incidents.callbacks import apply_incident_policy
from tradeops.incidents.operators import ReportCheckIncidentsOperator
from tradeops.operators.health import HealthCheckOperator, HealthSummaryOperator

config = load_config()
DAG_ID = "daily_health_check"

with DAG(
    dag_id=DAG_ID,
    description="Platform, data, infrastructure and account checks before the open, summarised in Slack",
    schedule=ExchangeSessionTimetable(config.schedules[DAG_ID], config.platform.exchange),
    deadline=deadline_alerts(DAG_ID, config.deadlines.get(DAG_ID, []), config.platform.exchange),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args={"owner": "trading-ops", "retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["tradeops", "health", "scheduled"],
    doc_md=__doc__,
) as dag:
    checks = [HealthCheckOperator(task_id=name, check=name) for name in HEALTH_CHECKS]
    report = ReportCheckIncidentsOperator(task_id="report_incidents", check_task_ids=list(HEALTH_CHECKS))
    summary = HealthSummaryOperator(
        task_id="summary",
        check_task_ids=list(HEALTH_CHECKS),
        channel=config.slack.channels["ops"],
        slack_conn_id=config.connections.slack_api,
        retries=0,
    )
    checks >> report >> summary
    apply_incident_policy(dag, config)
