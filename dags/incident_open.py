"""
### Open an incident (manual, a form)

Pages the on-call chain by hand at `severity` with `title` (required, not blank) and an optional `summary`, as a
new incident keyed by this run (`manual:<run id>`): level 1 at once, then up the escalation ladder until someone
acknowledges. Opened by **the Airflow user who triggered this run**, recorded on the incident's timeline.

The form refuses a missing or blank title and an unknown severity before any run exists (REST 400, CLI exit 1).
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import open_incident_form
from tradeops.incidents.operators import OpenIncidentOperator

with manual_dag(
    "incident_open",
    owner="trading-ops",
    description="Open an incident and page the on-call chain (recorded as you)",
    params=open_incident_form(),
    tags=["incidents"],
    doc_md=__doc__,
):
    OpenIncidentOperator(
        task_id="open", title="{{ params.title }}", severity="{{ params.severity }}", note="{{ params.summary }}"
    )
