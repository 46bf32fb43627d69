"""
### Post-market shutdown (Airflow DAG)

Seed runbooks: *Post-Market Shutdown Procedure* (4:30 PM ET, 30 minutes after the close, Trading Operations) and
*Post-Market Operations*. Runs at `schedules.post_market_shutdown` in `tradeops.yaml`: 30 minutes after the XNYS
close of every session, from the exchange calendar, so **13:30 ET on early-close days** (13:00 close) and never on
a holiday. It closes out the session `current_or_previous(run_after)` gives: the one that just closed (a run
triggered by hand on a Saturday closes out Friday's).

| task | does | when it fails |
|---|---|---|
| `close_positions` | close-all, then read back until the book is flat (1) | P1 incident, run failed (2) |
| `trading_report` | trades, volume, realised P&L per symbol and strategy (3) | run failed |
| `backup` | verified `pg_dump` of the trading database (the weekly window's operator) | run failed |
| `scale_down` | `trading_day.scale_roles` to the `off_hours` profile, only once the book is flat | run failed |
| `wait_scale_down` | the rollouts awaited in the triggerer (deferrable) | run failed |
| `monitoring_mode` | monitoring back to `trading_day.monitoring_modes.off_hours`, read back | run failed |
| `log_archive` | the session's log index archived: name, size, sha256 (4) | run failed |
| `store_daily_metrics` | the session's row of `tradeops.daily_metrics` (5) | run failed |
| `diagnostics` | bounded archive of the scaled deployments' logs and events | run failed |
| `end_of_day_report` | always: one Slack message and `<date>-eod.json`, **FAILED** when a step failed (6) | - |
| `verdict` | fails the run when any step failed (the report runs `all_done`) | - |

1. `POST /v1/positions/close-all` (Idempotency-Key `close-all:<date>:<run>:try<n>`), then `GET /v1/positions`:
   `trading_day.positions.attempts` read-backs, `backoff` apart and doubling (at most 60 s). A flat book gets no
   order.
2. An incident at `trading_day.positions.severity` (P1), key `positions:<date>`, naming each symbol and quantity
   still open; the task fails without a retry and nothing downstream scales agents down.
3. `GET /v1/trades/summary` from the open until the next session opens (the close-out's orders included), written
   to `reports/post_market_shutdown/<date>-trading.json`.
4. `POST /v1/logs/archive`, Idempotency-Key `log-archive:<date>`; recorded in the end-of-day report.
5. Upserted by session date: trades, positions closed (or left open), backup and archive sizes, and
   `/v1/performance/metrics?timeframe=1d`.
6. To the ops channel through the incidents' outbox, key `eod:<date>` (`eod:<date>:failed:<steps>` for a failed day).

Every step is idempotent per session: a re-run finds the book flat and sends no order, writes the same reports,
replaces its own metrics row, gets the same log archive back and sends no second Slack message. No message ever
says the day is complete while a position is open. A failed step also pages through the runbook's incident
(`incidents.runbook_failure`).

Deadlines (`deadlines.post_market_shutdown`): still running 2 h after the close, a P3 incident; 6 h after, P2 —
both well before the next session's pre-market start-up.
"""

from __future__ import annotations

from datetime import timedelta

from tradeops.config import load_config
from tradeops.dagkit import scheduled_dag
from tradeops.daily.operators import (
    EndOfDayReportOperator,
    LogArchiveOperator,
    StoreDailyMetricsOperator,
    TradingReportOperator,
)
from tradeops.database.operators import BackupOperator
from tradeops.kubernetes.operators import CollectDiagnosticsOperator, ScaleDeploymentsOperator
from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.positions.operators import ClosePositionsOperator
from tradeops.trading.operators import SetMonitoringModeOperator

config = load_config()
scaled = [d.name for d in config.kubernetes.deployments if d.role in config.trading_day.scale_roles]

with scheduled_dag(
    "post_market_shutdown",
    owner="trading-ops",
    verdict=True,
    description="Close every position and prove the book flat, report the day, back up, scale down, archive",
    dagrun_timeout=timedelta(hours=2),
    tags=["trading-day", "kubernetes", "database"],
    doc_md=__doc__,
):
    close = ClosePositionsOperator(task_id="close_positions")
    # The report and the backup follow the close-out whatever its outcome, so both include its orders.
    report = TradingReportOperator(task_id="trading_report", trigger_rule="all_done")
    backup = BackupOperator(task_id="backup", trigger_rule="all_done")
    scale_down = ScaleDeploymentsOperator(task_id="scale_down", deployments=scaled, profile="off_hours")
    wait_scale_down = RolloutStatusSensor(task_id="wait_scale_down", names=scaled, timeout=600)
    monitoring = SetMonitoringModeOperator(
        task_id="monitoring_mode", mode=config.trading_day.monitoring_modes.off_hours, reason="post-market shutdown"
    )
    archive = LogArchiveOperator(task_id="log_archive")
    metrics = StoreDailyMetricsOperator(task_id="store_daily_metrics")
    diagnostics = CollectDiagnosticsOperator(task_id="diagnostics", deployments=scaled, trigger_rule="all_done")
    eod = EndOfDayReportOperator(
        task_id="end_of_day_report",
        steps=[
            ("close_positions", "Positions closed"),
            ("trading_report", "Trading report"),
            ("backup", "Backup"),
            ("scale_down", "Scaled to off-hours"),
            ("wait_scale_down", "Rollouts done"),
            ("monitoring_mode", "Monitoring in off-hours mode"),
            ("log_archive", "Log archive"),
            ("store_daily_metrics", "Daily metrics"),
            ("diagnostics", "Diagnostics"),
        ],
    )

    close >> [report, backup]
    close >> scale_down >> wait_scale_down >> [monitoring, diagnostics]
    [close, report, backup, archive] >> metrics
    [metrics, monitoring, diagnostics] >> eod
