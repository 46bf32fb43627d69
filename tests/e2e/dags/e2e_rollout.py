"""
### e2e_rollout (tests only)

Sets `tactical-marl`'s image from `params.image`, then waits for the rollout with the deferrable
`RolloutStatusSensor`, as the maintenance and deployment DAGs do.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from tradeops.kubernetes.operators import SetImageOperator
from tradeops.kubernetes.sensors import RolloutStatusSensor

with DAG(
    dag_id="e2e_rollout",
    description="set an image and wait for the rollout",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"image": Param(type="string")},
    default_args={"owner": "tests", "retries": 0},
    tags=["tests"],
    doc_md=__doc__,
):
    SetImageOperator(task_id="set_image", images={"tactical-marl": "{{ params.image }}"}) >> RolloutStatusSensor(
        task_id="wait_for_rollout", names=["tactical-marl"], timeout=300
    )
