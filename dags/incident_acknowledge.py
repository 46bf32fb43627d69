"""
### Acknowledge an incident (manual, a form)

Stops the escalation of incident `incident_id` (the `#` in Slack) until the acknowledgement goes stale without a
resolve (`escalation.acknowledgement_timeout`). The audit trail records **the Airflow user who triggered this run**
(never a typed name) and the optional `note`. The same action is the *Acknowledge* button on the Slack page.

The form asks only for what acknowledging needs and refuses a missing or invalid incident id before any run exists
(REST 400, CLI exit 1). An incident that is resolved or unknown fails the run with the reason, changing nothing.
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import incident_note_form
from tradeops.incidents.operators import ChangeIncidentStatusOperator

with manual_dag(
    "incident_acknowledge",
    owner="trading-ops",
    description="Acknowledge an incident: escalation stops (recorded as you)",
    params=incident_note_form(),
    tags=["incidents"],
    doc_md=__doc__,
):
    ChangeIncidentStatusOperator(
        task_id="acknowledge", incident_id="{{ params.incident_id }}", note="{{ params.note }}"
    )
