"""An incident's report, for the review after it: what raised it, how long it took to acknowledge and to resolve,
its whole timeline with who did what, and a lessons-learned section to fill in. Markdown (to paste into the
postmortem) and HTML, served by the TradeOps app (``/tradeops/incidents/{id}/report`` and ``.../report.md``), linked
from the incidents page and from the Slack thread when the incident resolves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradeops.incidents.timeline import duration, timeline

if TYPE_CHECKING:
    from fastapi import APIRouter

    from tradeops.config import TradeOpsConfig
    from tradeops.incidents.models import Incident, IncidentEvent


def facts(incident: Incident, events: list[IncidentEvent], config: TradeOpsConfig) -> dict[str, Any]:
    """Everything the report shows, from the incident's row and its audit trail."""
    level_names = {level.level: level.name for level in config.escalation.levels}
    entries = timeline(incident, events, level_names)
    details = incident.details or {}
    raised_by: dict[str, Any] = {"source": incident.source.value.replace("_", " ")}
    if incident.source.value == "alert":
        kept = ("labels", "annotations", "group_key", "generator_url")
        raised_by.update({key: details[key] for key in kept if details.get(key)})
    else:
        raised_by.update({k: v for k, v in (("DAG", incident.dag_id), ("run", incident.run_id)) if v})
        if incident.task_id:
            raised_by["task"] = incident.task_id
    return {
        "incident": incident,
        "raised_by": raised_by,
        "time_to_acknowledge": _elapsed(incident.opened_at, incident.acknowledged_at),
        "time_to_resolve": _elapsed(incident.opened_at, incident.resolved_at),
        "highest_level": max((e.level or 0 for e in events), default=0),
        "level_names": level_names,
        "timeline": [e for e in entries if e.tone != "minor"],
        "actions": [e for e in entries if e.tone == "person"],
        "deliveries": sum(e.tone == "minor" for e in entries),
    }


def _elapsed(start: datetime, end: datetime | None) -> str | None:
    return None if end is None else duration(end - start)


def render(kind: str, data: dict[str, Any]) -> str:
    """``kind`` is ``html`` or ``md``."""
    import jinja2

    from tradeops.reporting.files import templates

    environment = templates(autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    environment.filters["utc"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"
    return environment.get_template(f"incident_report.{kind}").render(**data)


def router(get_user: Callable[..., Any]) -> APIRouter:
    """``GET /incidents/{id}/report`` (HTML) and ``/incidents/{id}/report.md`` (Markdown), for logged-in users."""
    from fastapi import APIRouter, Depends, HTTPException
    from fastapi.responses import HTMLResponse, PlainTextResponse

    routes = APIRouter()
    logged_in = Depends(get_user)

    def data(incident_id: int) -> dict[str, Any]:
        from tradeops.exceptions import IncidentError
        from tradeops.incidents.service import IncidentService

        incidents = IncidentService()
        try:
            incident = incidents.get(incident_id)
        except IncidentError:
            raise HTTPException(404, f"no incident {incident_id}") from None
        return facts(incident, incidents.timeline(incident_id), incidents.config)

    @routes.get("/incidents/{incident_id}/report", response_class=HTMLResponse)
    def report_html(incident_id: int, user: Any = logged_in):
        return HTMLResponse(render("html", data(incident_id)))

    @routes.get("/incidents/{incident_id}/report.md", response_class=PlainTextResponse)
    def report_markdown(incident_id: int, user: Any = logged_in):
        return PlainTextResponse(render("md", data(incident_id)), media_type="text/markdown; charset=utf-8")

    return routes
