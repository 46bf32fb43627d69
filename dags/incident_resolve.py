"""
### Resolve an incident (manual, a form)

Closes incident `incident_id` (the `#` in Slack); the same failure later opens a new incident. The audit trail
records **the Airflow user who triggered this run** (never a typed name) and the optional `note` (what fixed it).
The same action is the *Resolve* button on the Slack page.

The form asks only for what resolving needs and refuses a missing or invalid incident id before any run exists
(REST 400, CLI exit 1). An incident that is already resolved or unknown fails the run with the reason.
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import incident_note_form
from tradeops.incidents.operators import ChangeIncidentStatusOperator

with manual_dag(
    "incident_resolve",
    owner="trading-ops",
    description="Resolve an incident (recorded as you)",
    params=incident_note_form(),
    tags=["incidents"],
    doc_md=__doc__,
):
    ChangeIncidentStatusOperator(
        task_id="resolve", incident_id="{{ params.incident_id }}", note="{{ params.note }}", resolve=True
    )
