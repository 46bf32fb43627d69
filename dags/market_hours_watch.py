"""
### Market-hours watch

Seed runbook: *Market Hours Operations* (the every-minute monitoring loop, 9:30 AM - 4:00 PM). The seed's loop runs
while the clock says 9 to 16; this DAG follows the XNYS calendar instead (`schedules.market_hours_watch` in
`tradeops.yaml`: one run at every session's open, 09:30 ET), so holidays have no run and an early close (13:00 ET)
ends the watch at 13:00.

One run per session, one task. `watch` waits in the **triggerer**, not on a worker: its trigger reads the platform's
metrics (`GET /v1/metrics/current`) every `market_watch.poll_every` (15 s) and evaluates `market_watch.rules`, each
a metric above a threshold for a duration: CPU over 80 % for 5 min, memory over 85 % for 3 min, response time p95
over 500 ms for 2 min, error rate over 1 % for 1 min, failed logins over 20/min for 1 min; drawdown over 5 % and
position risk over 100 % of its limit at once. The task comes back to a worker only when a rule's state changes:

| event | what the task does |
|---|---|
| a metric above its threshold for the rule's duration | opens `watch:<rule>` at the rule's severity (pages) |
| the metric of a breached rule back under its threshold | resolves `watch:<rule>` |
| no reading of the metrics for 2 minutes | opens `watch:metrics_unavailable` (P2), resolved once readable |
| the session's close | ends the run, successfully, with what it opened and resolved |

A breach is confirmed at the first reading once its duration is met (the trigger also wakes up right when a running
clock would complete), so within one poll of it. An incident still active when a watch starts (a breach that lasted
past yesterday's close) counts as breached: it is resolved as soon as its metric reads under, never opened twice.

Manual runs: with `minutes` = 0 (the default) the run watches until the close of the session that is open, and ends
at once, successfully, saying the market is closed when none is. **Drill/test mode**: `minutes` > 0 watches that many
minutes from now, whatever the market (CI and `make demo` run at any hour, weekends included). Two runs may watch at
once, so a drill started during a session runs beside the session's watch instead of queueing until the close: both
read the same metrics and open and resolve incidents through the one deduplicating function, so a breach still pages
once.

Deadline (`deadlines.market_hours_watch`): a watch still running 15 minutes after the close opens a P2 incident.
"""

from __future__ import annotations

from airflow.sdk import Param

from tradeops.dagkit import scheduled_dag
from tradeops.watch.operators import MarketHoursWatchOperator

with scheduled_dag(
    "market_hours_watch",
    owner="trading-ops",
    description="The market-hours rules over the platform's metrics, open to close, in the triggerer",
    tags=["trading-day", "monitoring"],
    doc_md=__doc__,
    max_active_runs=2,  # the session's watch and a drill beside it (above)
    params={
        "minutes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=480,
            title="Drill: minutes to watch",
            description="0: until the close of the session open now (nothing when the market is closed); "
            "more: watch that many minutes from now, whatever the market (drill/test mode).",
        )
    },
):
    MarketHoursWatchOperator(task_id="watch", minutes="{{ params.minutes }}")
