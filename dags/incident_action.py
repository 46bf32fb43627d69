"""
### Incident action (manual, a form)

Acknowledge, resolve, silence or open an incident from the Airflow UI: *Trigger DAG* shows a validated form, and a
bad value (unknown action, missing actor) is refused before anything runs. The same actions are on the Slack
buttons; everything lands in the incident's audit trail with who did it (see `/tradeops/incidents`).

- **acknowledge**: stops escalation (until the acknowledgement goes stale without a resolve);
- **resolve**: closes the incident; the same failure later opens a new one;
- **silence**: mutes paging for `silence_minutes` for the incident's key, or for every key starting with `matcher`
  (e.g. `check:daily_health_check:` during planned work), with an author and a reason;
- **open**: page the on-call chain by hand, at `severity`, with `title`.
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import incident_action_form
from tradeops.incidents.operators import IncidentActionOperator

with manual_dag(
    "incident_action",
    owner="trading-ops",
    description="Acknowledge, resolve, silence or open an incident (a form in the UI)",
    params=incident_action_form(),
    tags=["incidents"],
    doc_md=__doc__,
):
    IncidentActionOperator(
        task_id="act",
        action="{{ params.action }}",
        incident_id="{{ params.incident_id or '' }}",
        actor="{{ params.actor }}",
        reason="{{ params.reason }}",
        silence_minutes="{{ params.silence_minutes }}",
        matcher="{{ params.matcher }}",
        severity="{{ params.severity }}",
        title="{{ params.title }}",
    )
