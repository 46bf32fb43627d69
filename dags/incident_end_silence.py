"""
### End a silence early (manual, a form)

Ends silence `silence_id` now (its id is in the `incident_silence` run's result and log, and on each silenced
incident's timeline). Incidents it held that no other silence covers page again at once, level 1 first for those
never paged. Recorded as **the Airflow user who triggered this run**, on each released incident's timeline.
"""

from __future__ import annotations

from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import end_silence_form
from tradeops.incidents.operators import EndSilenceOperator

with manual_dag(
    "incident_end_silence",
    owner="trading-ops",
    description="End a silence early: what it held pages again",
    params=end_silence_form(),
    tags=["incidents"],
    doc_md=__doc__,
):
    EndSilenceOperator(task_id="end_silence", silence_id="{{ params.silence_id }}", note="{{ params.note }}")
