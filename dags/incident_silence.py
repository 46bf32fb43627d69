"""
### Silence incidents (manual, a form)

Mutes paging, for `minutes`, for one incident (`target` = `#42`) or for every incident whose dedup key starts with
`target` (e.g. `check:daily_health_check:` during planned work), now and for incidents opened while it lasts.

- Matching is **literal**: `_` and `%` are ordinary characters; an empty target (which would match everything) is
  refused by the form.
- **P1 and security incidents keep paging** unless `include_p1_and_security` is set, an explicit confirmation.
- The longest silence is `incidents.max_silence_minutes` in the config (24 hours by default); the form refuses more.
- The task's log lists what the silence matches, what keeps paging, and the silences in effect, before the
  silence is set; `preview_only` stops there. End a silence early with `incident_end_silence`.

The silence's author is **the Airflow user who triggered this run**, with the required `reason`.
"""

from __future__ import annotations

from tradeops.config import load_config
from tradeops.dagkit import manual_dag
from tradeops.incidents.forms import silence_form
from tradeops.incidents.operators import SilenceIncidentsOperator

with manual_dag(
    "incident_silence",
    owner="trading-ops",
    description="Silence one incident or a dedup-key prefix for a while (P1/security only when confirmed)",
    params=silence_form(load_config().incidents.max_silence_minutes),
    render_template_as_native_obj=True,  # booleans and minutes reach the operator as such
    tags=["incidents"],
    doc_md=__doc__,
):
    SilenceIncidentsOperator(
        task_id="silence",
        target="{{ params.target }}",
        reason="{{ params.reason }}",
        minutes="{{ params.minutes }}",
        covers_critical="{{ params.include_p1_and_security }}",
        preview_only="{{ params.preview_only }}",
    )
