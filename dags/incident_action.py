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

from airflow.sdk import Param

from tradeops.dagkit import manual_dag
from tradeops.incidents.operators import IncidentActionOperator

with manual_dag(
    "incident_action",
    owner="trading-ops",
    description="Acknowledge, resolve, silence or open an incident (a form in the UI)",
    params={
        "action": Param("acknowledge", enum=["acknowledge", "resolve", "silence", "open"], description="what to do"),
        "incident_id": Param(None, type=["null", "integer"], minimum=1, description="the incident (# in Slack)"),
        "actor": Param(type="string", minLength=2, maxLength=100, description="who you are (recorded)"),
        "reason": Param("", type="string", maxLength=500, description="why (recorded; required to silence)"),
        "silence_minutes": Param(60, type="integer", minimum=1, maximum=7 * 24 * 60),
        "matcher": Param(
            "",
            type="string",
            maxLength=200,
            pattern=r"^[a-z0-9_:.\-]*$",
            description="silence every incident whose key starts with this",
        ),
        "severity": Param("P2", enum=["P1", "P2", "P3", "P4", "security"], description="for action=open"),
        "title": Param("", type="string", maxLength=200, description="for action=open"),
    },
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
