"""
### bench_deadline_paging (benchmark only)

Each run stays busy past a deadline 12 s after it is queued, which two callbacks watch side by side: TradeOps'
(opens an incident, pages L1 in `#trading-alerts`, escalates) and Airflow's stock `SlackWebhookNotifier` (one
webhook message in `#trading-ops`). `bench/deadline_paging.py` times both.
"""

from datetime import datetime, timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from tradeops.incidents.callbacks import deadline_missed

DAG_ID = "bench_deadline_paging"
DUE_AFTER = timedelta(seconds=12)

with DAG(
    dag_id=DAG_ID,
    description="TradeOps' deadline callback vs the stock SlackWebhookNotifier",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    deadline=[
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=DUE_AFTER,
            name="tradeops",
            callback=AsyncCallback(deadline_missed, kwargs={"dag_id": DAG_ID, "tier": "bench", "severity": "P2"}),
        ),
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=DUE_AFTER,
            name="stock",
            callback=AsyncCallback(
                "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier",
                kwargs={
                    "slack_webhook_conn_id": "tradeops_slack_webhook",
                    "text": f"{DAG_ID} missed its deadline (stock notifier)",
                },
            ),
        ),
    ],
    default_args={"owner": "bench", "retries": 0},
    tags=["tradeops", "bench"],
    doc_md=__doc__,
):
    TimeDeltaSensor(task_id="busy_past_the_deadline", delta=timedelta(seconds=20), deferrable=True)
