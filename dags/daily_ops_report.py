"""
### Daily operations report

Seed runbook: *Daily Operational Report* (6:00 PM EST, operations team and management), run after every session of
the exchange at the time `schedules.daily_ops_report` gives in `tradeops.yaml` (default: 60 minutes after the XNYS
close, so 17:00 ET, or 14:00 ET on early-close days), once post_market_shutdown has closed the day out. The seed's
fixed 18:00 is anchored to the exchange calendar instead, as every TradeOps schedule is.

The run reports on the session it closes out (`current_or_previous(run_after)`: a run triggered by hand on a
Saturday reports Friday's). One self-contained HTML file (inline CSS and SVG charts, no script, nothing fetched: it
opens offline and travels as an email attachment) is written to `$TRADEOPS_REPORTS_DIR/daily_ops_report/<session
date>.html`; reports older than `reports.keep_days` are removed; one summary goes to the ops channel, linking it.

| task | does | fails when |
|---|---|---|
| `report` | gathers the day, writes the report, prunes old ones, posts the summary | a source cannot be read |

It reads the platform API (`/v1/performance/metrics?timeframe=1d`, `/v1/system/status`, `/v1/positions`,
`/v1/account/balance`), the platform database (`trades`, `system_metrics` for the latency per hour, `login_events`),
TradeOps' incidents with their audit trail, and the window's DAG runs with their durations from Airflow's REST API
(connection `connections.airflow_api`; a task cannot read Airflow's metadata database). Without that connection, or
when the api-server does not answer, the report still goes out and says so where the runs would be; failures and
missed deadlines always come from TradeOps' incidents.

What the report shows: the trading summary (trades, contracts, notional, open positions and their unrealized P&L,
balance), latency p50/p95/p99 against `thresholds.response_time_p95_ms` with the p95 per hour of the session,
throughput, error rate and availability, CPU and memory per component against the watch's rules, the runbooks'
failures and missed deadlines of the day, every incident with its time to acknowledge (against its severity's
`initial_response`) and to resolve from the audit trail, MTTA and MTTR, and its timeline, the failed logins, and
recommendations computed from those numbers. Incidents and logins are counted from the previous session's close to
the run, so consecutive reports leave no gap; trades are the session's.

A re-run for the same session rewrites the file and sends no second Slack message (dedup key
`ops-report:<session date>`). A failed run pages (the runbook failure policy); a run not finished 4 hours after the
close opens a P4 incident (`deadlines.daily_ops_report`).
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.dagkit import scheduled_dag
from tradeops.reporting.operators import DailyOpsReportOperator

with scheduled_dag(
    "daily_ops_report",
    owner="trading-ops",
    dagrun_timeout=timedelta(minutes=30),
    description="The session's operations report (HTML, inline charts) written and summarised in Slack",
    tags=["reports"],
    doc_md=__doc__,
):
    DailyOpsReportOperator(task_id="report")
