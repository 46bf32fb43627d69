"""
### bench_rollout_sensors (benchmark only)

Two sensors wait for the same `tactical-marl` rollout: TradeOps' deferrable `RolloutStatusSensor` and the same
sensor in classic poke mode with a 30 s interval (a worker slot held for the whole wait).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from tradeops.kubernetes.sensors import RolloutStatusSensor

with DAG(
    dag_id="bench_rollout_sensors",
    description="deferrable vs poke-mode rollout sensor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"owner": "bench", "retries": 0},
    tags=["bench"],
    doc_md=__doc__,
):
    RolloutStatusSensor(task_id="deferrable", names=["tactical-marl"], timeout=600)
    RolloutStatusSensor(
        task_id="poke_30s", names=["tactical-marl"], deferrable=False, mode="poke", poke_interval=30, timeout=600
    )
