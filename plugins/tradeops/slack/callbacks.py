"""Deadline callbacks (they run in the triggerer, so they are ``async``)."""

from __future__ import annotations

from tradeops.slack.messages import deadline_missed


async def notify_deadline_missed(context: dict, *, dag_id: str, tier: str, severity: str, channel: str,
                                 slack_conn_id: str) -> None:
    """Post "this run missed its deadline" to Slack. Airflow gives the callback the run and the deadline only."""
    from tradeops.reporting.links import run_url
    from tradeops.slack.client import apost_message

    dag_run, deadline = context["dag_run"], context["deadline"]
    text, blocks = deadline_missed(dag_id, dag_run, deadline, tier, severity, run_url(dag_id, dag_run["dag_run_id"]))
    await apost_message(slack_conn_id, channel, text, blocks)
