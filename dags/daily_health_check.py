"""
### Daily health check

Seed runbook: *Daily System Health Check* (08:00 ET, Operations Team Lead), run on every trading day at the
time `schedules.daily_health_check` gives in `tradeops.yaml` (default: 90 minutes before the XNYS open, which is
08:00 ET whatever the season).

One task per check, each red in the Airflow grid when its check fails. A check that fails (or cannot reach what it
checks) looks again after `incidents.recheck_after` (5 s): only a failure seen twice counts, so one transient error
(a 503) pages nobody. A confirmed failure pages at once from the check's own task (its incident at
`incidents.check_severity`, or its dependency's), then the task fails; its retry, a minute later, is one more look
that pages nobody again.

| task | checks | fails when |
|---|---|---|
| `system_status` | platform `/v1/system/status` | any component unhealthy |
| `agents` | `/v1/agents/status` | an agent unhealthy, silent for 60 s, or missing |
| `data_feeds` | `/v1/data-feeds/status` | a feed disconnected (warns on lag) |
| `database_connections` | `pg_stat_activity` vs `max_connections` | usage over the fail threshold (warns at 80 %) |
| `redis` | `PING`, `INFO` | Redis unreachable (warns on memory pressure) |
| `memory` | component memory vs limits | any component over the fail threshold (warns at 70 %) |
| `performance` | `/v1/performance/metrics?timeframe=1d` | availability < 99.9 % (warns on p95, error rate) |
| `active_alerts` | Alertmanager `/api/v2/alerts` | a critical alert firing (warns on warning alerts) |
| `account_balance` | `/v1/account/balance`, `/v1/account/margin` | balance out of range, margin too low |
| `escalation_engine` | the escalation engine's heartbeats | none for 3 min: its DAG paused, or no live trigger |

`report_incidents` always runs, once the checks are done: each failed check adds an occurrence to the incident its
task opened (or opens it, if the task could not), and the incident of a check that passes again is resolved. The
opener pages level 1 itself, through the outbox: the P1 incident of `escalation_engine` (no heartbeat in
`tradeops.engine_heartbeats`, which the engine's trigger writes at least every 30 s, for
`incidents.engine_stale_after`) reaches Slack although the engine that would escalate it further is what is down.
`summary` always runs too: it writes a JSON report, posts one Slack message to the ops channel, and fails the run
(without retrying) when any check failed.

Deadlines (`deadlines.daily_health_check` in `tradeops.yaml`, anchored to the same session's open): a run still
going 30 minutes before the open opens a P3 incident, 10 minutes before the open a P2 one; both escalate.
`checks_green_by_deadline` is a task-level deadline (`incidents.task_deadlines`): every check must have succeeded by
10 minutes before the open, or an incident opens; it waits in the triggerer.
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.checks.operators import CheckOperator, HealthSummaryOperator
from tradeops.dagkit import scheduled_dag
from tradeops.database.checks import DatabaseConnections
from tradeops.incidents.checks import EscalationEngineRunning
from tradeops.incidents.operators import ReportCheckIncidentsOperator
from tradeops.platform import checks as platform

CHECKS = (
    platform.SystemStatus(),
    platform.Agents(),
    platform.DataFeeds(),
    DatabaseConnections(),
    platform.Redis(),
    platform.Memory(),
    platform.Performance(),
    platform.ActiveAlerts(),
    platform.AccountBalance(),
    EscalationEngineRunning(),
)

with scheduled_dag(
    "daily_health_check",
    owner="trading-ops",
    dagrun_timeout=timedelta(minutes=30),
    description="Platform, data, infrastructure and account checks before the open, summarised in Slack",
    tags=["health"],
    doc_md=__doc__,
):
    task_ids = [check.name for check in CHECKS]
    checks = [CheckOperator(task_id=check.name, check=check) for check in CHECKS]
    report = ReportCheckIncidentsOperator(task_id="report_incidents", check_task_ids=task_ids)
    checks >> report >> HealthSummaryOperator(task_id="summary", check_task_ids=task_ids)
