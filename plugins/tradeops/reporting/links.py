"""Links for messages, reports and the incidents page: into the Airflow UI, the runbook and Slack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.models import Incident


def airflow_base_url() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")


def incident_report_url(incident_id: int) -> str:
    """An incident's report, served by the TradeOps app on the api-server (:mod:`tradeops.incidents.report`)."""
    return f"{airflow_base_url()}/tradeops/incidents/{incident_id}/report"


def _part(value: str) -> str:
    """One path segment: everything escaped, ``/`` included (a run id may hold one under a custom run-id pattern)."""
    return quote(value, safe="")


def run_url(dag_id: str, run_id: str) -> str:
    """The DAG run in the Airflow UI (its grid and task states)."""
    return f"{airflow_base_url()}/dags/{_part(dag_id)}/runs/{_part(run_id)}"


def task_log_url(dag_id: str, run_id: str, task_id: str) -> str:
    """The task instance in the Airflow UI; its first tab is the log."""
    return f"{run_url(dag_id, run_id)}/tasks/{_part(task_id)}"


def runbook_url(runbook_base_url: str, dag_id: str | None) -> str:
    """The runbook step for an incident: the DAG's page, or the general incident-response page for an incident of
    no DAG (a person's)."""
    base = runbook_base_url.rstrip("/")
    return f"{base}/{_part(dag_id)}" if dag_id else f"{base}/incident-response"


def slack_thread_url(channel_id: str, ts: str, workspace_url: str | None = None) -> str:
    """A message (an incident's thread) in Slack: the workspace's permalink form when the workspace is known
    (``slack.workspace_url``), else Slack's redirect, which opens the message in whichever workspace the reader is
    signed in to."""
    if workspace_url:
        return f"{workspace_url.rstrip('/')}/archives/{_part(channel_id)}/p{ts.replace('.', '')}"
    return "https://slack.com/app_redirect?" + urlencode({"channel": channel_id, "message_ts": ts})


@dataclass(frozen=True)
class IncidentLinks:
    """Where an incident's context is: its DAG run and task log in Airflow, its Slack thread, its runbook step."""

    run: str | None
    task_log: str | None
    slack_thread: str | None
    runbook: str


def incident_links(config: TradeOpsConfig, incident: Incident) -> IncidentLinks:
    """The links of an incident, the same in its Slack message and on the incidents page (None: it has none)."""
    dag_id, run_id, task_id = incident.dag_id, incident.run_id, incident.task_id
    return IncidentLinks(
        run=run_url(dag_id, run_id) if dag_id and run_id else None,
        task_log=task_log_url(dag_id, run_id, task_id) if dag_id and run_id and task_id else None,
        slack_thread=(
            slack_thread_url(incident.slack_channel, incident.slack_ts, config.slack.workspace_url)
            if incident.slack_channel and incident.slack_ts
            else None
        ),
        runbook=runbook_url(config.platform.runbook_base_url, dag_id),
    )
