"""
### End-to-end probes of the trading calendar (tests only)

`e2e_market_sensor`: a deferrable `MarketHoursSensor` whose boundary the test sets through `params.offset`.
`e2e_market_deadline` (written by the test with its deadline): a run kept busy past a market-anchored deadline.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from tradeops.calendar.sensors import MarketHoursSensor

with DAG(
    dag_id="e2e_market_sensor",
    description="deferrable market-hours sensor probe",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"offset": Param("0m", type="string"), "until": Param("open", enum=["open", "close"])},
    default_args={"owner": "tests", "retries": 0},
    tags=["tests"],
    doc_md=__doc__,
):
    MarketHoursSensor(
        task_id="wait_for_market",
        until="{{ params.until }}",
        offset="{{ params.offset }}",
        on_non_trading_day="next_session",
    )
