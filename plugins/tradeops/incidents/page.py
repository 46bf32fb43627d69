"""The incidents page, the one an on-call engineer works from (``GET /tradeops/incidents``), and its actions.

The page lists incidents newest first (filters: status, severity, DAG), each with its links (DAG run, task log,
Slack thread, runbook step), its timeline in words and, while active, forms to acknowledge, resolve or silence it;
then the silences in effect (end one now) and a form for a new one, with a preview of what it would mute; last,
the mean and median times to acknowledge and to resolve per severity over the last eight weeks
(:mod:`tradeops.incidents.response_times`).

The actions are POSTs to this app (``/incidents/{id}/acknowledge``, ``/incidents/{id}/resolve``, ``/silences``,
``/silences/{id}/end``), for Airflow's logged-in users (the auth manager's JWT; a cookie, for a browser). The actor
recorded is that user's name, never a form field. Each must come from this origin and carry the page's token
(:mod:`tradeops.incidents.csrf`), else 403; bad input gets 400 and changes nothing; a done action redirects (303)
back to the page, with the filters it had and a line saying what was done.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tradeops.exceptions import IncidentError
from tradeops.incidents import csrf
from tradeops.incidents.models import CRITICAL_SEVERITIES, SEVERITIES, SILENCE_TARGET, Incident
from tradeops.incidents.response_times import readable_duration
from tradeops.incidents.timeline import TimelineEntry, duration, timeline
from tradeops.reporting.files import templates
from tradeops.reporting.links import IncidentLinks, incident_links

if TYPE_CHECKING:
    from tradeops.incidents.service import IncidentService

STATUSES = {
    "": None,
    "active": ["open", "acknowledged"],
    "open": ["open"],
    "acknowledged": ["acknowledged"],
    "resolved": ["resolved"],
}
DAG_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")
NOTE_MAX = 500
DONE = {  # what the page says after an action (a code in the redirect, never text from the request)
    "acknowledged": "Incident #{n} acknowledged by {user}.",
    "resolved": "Incident #{n} resolved by {user}.",
    "silenced": "Silence #{n} set by {user}.",
    "ended": "Silence #{n} ended by {user}: what it held pages again.",
}


def bad(message: str) -> IncidentError:
    return IncidentError(message)


# --- input ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Which incidents the page lists: status (``active`` is open or acknowledged), severity, DAG, how many."""

    status: str = ""
    severity: str = ""
    dag_id: str = ""
    limit: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Filters:
        """The filters of a query string; :class:`IncidentError` for a value that is not one."""
        status, severity, dag_id = (params.get(name, "") for name in ("status", "severity", "dag_id"))
        if status not in STATUSES:
            raise bad(f"status must be one of {', '.join(s for s in STATUSES if s)} (or empty), got {status!r}")
        if severity and severity not in SEVERITIES:
            raise bad(f"severity must be one of {', '.join(SEVERITIES)} (or empty), got {severity!r}")
        if dag_id and not DAG_ID.match(dag_id):
            raise bad(f"dag_id is not a DAG id: {dag_id!r}")
        return cls(status, severity, dag_id, _number(params.get("limit", "50"), "limit", 1, 500))

    def query(self) -> dict[str, str]:
        """The filters that differ from the defaults, as query parameters."""
        query = {"status": self.status, "severity": self.severity, "dag_id": self.dag_id}
        return {k: v for k, v in query.items() if v} | ({"limit": str(self.limit)} if self.limit != 50 else {})


def _number(value: str, name: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise bad(f"{name} must be a whole number from {low} to {high}, got {value[:40]!r}")
    return int(value)


def _row_id(value: str, name: str) -> int:
    """An incident's or a silence's number (a PostgreSQL bigint)."""
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) < 2**63:
        raise bad(f"{name} must be a positive whole number, got {value[:40]!r}")
    return int(value)


def _note(form: Mapping[str, str]) -> str:
    note = form.get("note", "").strip()
    if len(note) > NOTE_MAX:
        raise bad(f"the note is {len(note)} characters; at most {NOTE_MAX}")
    return note


async def _form(request: Request) -> dict[str, str]:
    """The POSTed form as one string per field; a field given twice, or a file, is refused."""
    try:
        form = await request.form()
    except Exception as err:  # a body that is not a form (Starlette raises several kinds)
        raise bad(f"the body is not a form: {err}") from None
    fields: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str) or name in fields:
            raise bad(f"the form field {name!r} must be given once, as text")
        fields[name] = value
    return fields


@dataclass(frozen=True)
class SilenceRequest:
    target: str  # '#42' or a dedup-key prefix
    reason: str
    minutes: int
    covers_critical: bool

    @classmethod
    def parse(cls, form: Mapping[str, str], max_minutes: int) -> SilenceRequest:
        target, reason = form.get("target", "").strip(), form.get("reason", "").strip()
        if not re.fullmatch(SILENCE_TARGET, target):
            raise bad(
                "the target must be #<incident> or a dedup-key prefix (lower-case letters, digits, _ : . -), never "
                f"empty; got {target[:80]!r}"
            )
        if not 3 <= len(reason) <= NOTE_MAX:
            raise bad(f"a silence needs a reason of 3 to {NOTE_MAX} characters")
        critical = form.get("covers_critical", "")
        if critical not in ("", "yes"):
            raise bad(f"covers_critical is a checkbox ('yes' or absent), got {critical[:40]!r}")
        minutes = _number(form.get("minutes", ""), "minutes", 1, max_minutes)
        return cls(target, reason, minutes, critical == "yes")


# --- the page --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    links: IncidentLinks
    level: str  # "L2 Operations manager" ("" before the first page)
    paged: str  # who that level pages
    critical: bool
    silenced_until: datetime | None
    timeline: list[TimelineEntry]


class Page:
    """Reads what the page shows and renders it (blocking: called in a thread)."""

    def __init__(self) -> None:
        self.environment = templates()

    def render(
        self,
        *,
        user: str,
        base: str,
        token: str,
        filters: Filters,
        notice: str = "",
        preview: Mapping[str, str] | None = None,
    ) -> str:
        from tradeops.incidents.service import IncidentService

        incidents = IncidentService()
        now = datetime.now(UTC)
        policy = incidents.engine.policy
        names = {level: policy.level_name(level) for level in range(1, len(policy.levels) + 1)}
        shown = incidents.recent(
            filters.limit,
            statuses=STATUSES[filters.status],
            severity=filters.severity or None,
            dag_id=filters.dag_id or None,
        )
        trails = incidents.timelines([incident.id for incident in shown])
        active = incidents.recent(500, statuses=STATUSES["active"])
        views = [
            IncidentView(
                incident=i,
                links=incident_links(incidents.config, i),
                level=f"L{i.level} {names.get(i.level, '')}".strip() if i.level else "",
                paged=" ".join(policy.targets(i.severity, i.level)) if i.level else "",
                critical=i.severity in CRITICAL_SEVERITIES,
                silenced_until=i.silenced_until if i.silenced_until and i.silenced_until > now else None,
                timeline=timeline(i, trails.get(i.id, []), names),
            )
            for i in shown
        ]
        return self.environment.get_template("incidents.html").render(
            user=user,
            base=base,
            token=token,
            now=now,
            filters=filters,
            statuses=[s for s in STATUSES if s],
            severities=SEVERITIES,
            dag_ids=incidents.dag_ids(),
            incidents=views,
            counts={s: sum(1 for i in active if i.status == s) for s in ("open", "acknowledged")},
            silences=incidents.active_silences(),
            remaining=lambda until: duration(until - now),
            response_times=incidents.response_times(now),
            took=readable_duration,
            max_minutes=incidents.config.incidents.max_silence_minutes,
            preview=self._preview(incidents, preview) if preview else None,
            notice=notice,
        )

    @staticmethod
    def _preview(incidents: IncidentService, params: Mapping[str, str]) -> dict[str, Any]:
        """What a silence of the previewed target would mute now, or why it cannot be one."""
        target, covers = params.get("target", "").strip(), params.get("covers_critical", "") == "yes"
        shown = {"target": target, "covers_critical": covers, "reason": params.get("reason", "")}
        shown["minutes"] = params.get("minutes", "60")
        try:
            if not re.fullmatch(SILENCE_TARGET, target):
                raise bad("the target must be #<incident> or a dedup-key prefix, never empty")
            matcher = incidents.get(int(target[1:])).dedup_key if target.startswith("#") else target
            found = incidents.preview_silence(matcher, covers_critical=covers)
        except IncidentError as err:
            return shown | {"error": str(err)}
        return shown | {"matcher": matcher, "result": found}


def _notice(params: Mapping[str, str], user: str) -> str:
    done, number = params.get("done", ""), params.get("n", "")
    if done in DONE and number.isascii() and number.isdigit():
        return DONE[done].format(n=int(number), user=user)
    return ""


def _user_name(user: Any) -> str:
    """The logged-in user's name: the actor of what they do here."""
    name = str(user.get_name() or "").strip()
    if not name:
        raise HTTPException(403, "the logged-in user has no name to record as the actor")
    return name


def router(get_user: Callable[..., Any]) -> APIRouter:
    """The page's routes, for Airflow's logged-in users (``get_user``, the api-server's dependency)."""
    routes = APIRouter()
    page = Page()
    logged_in = Depends(get_user)

    def base_of(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def error_page(request: Request, user: str, status: int, message: str) -> HTMLResponse:
        html = page.environment.get_template("incident_error.html").render(
            base=base_of(request), user=user, status=status, message=message
        )
        return HTMLResponse(html, status_code=status)

    @routes.get("/incidents", response_class=HTMLResponse)
    async def incidents_page(request: Request, user: Any = logged_in) -> Response:
        name = _user_name(user)
        params = dict(request.query_params)
        try:
            filters = Filters.parse(params)
        except IncidentError as err:
            return error_page(request, name, 400, str(err))
        token, fresh = csrf.page_token(request)
        html = await run_in_threadpool(
            page.render, user=name, base=base_of(request), token=token, filters=filters, notice=_notice(params, name)
        )
        response = HTMLResponse(html)
        if fresh:
            csrf.set_cookie(response, request, token, path=base_of(request) or "/")
        return response

    async def act(
        request: Request, user: Any, action: Callable[[dict[str, str], str], tuple[str, int, str]]
    ) -> Response:
        """Check the request, run ``action(form, actor)`` (blocking; returns the done code, its number and an
        anchor) and redirect back to the page with its filters, or answer 403/400 having changed nothing."""
        name = _user_name(user)
        try:
            form = await _form(request)
        except IncidentError as err:
            return error_page(request, name, 400, str(err))
        refused = csrf.refusal(request, form)
        if refused:
            return error_page(request, name, 403, refused)
        try:
            back = Filters.parse({k[2:]: v for k, v in form.items() if k.startswith("f_")})
            done, number, anchor = await run_in_threadpool(action, form, name)
        except IncidentError as err:
            return error_page(request, name, 400, str(err))
        query = urlencode(back.query() | {"done": done, "n": str(number)})
        return RedirectResponse(f"{base_of(request)}/incidents?{query}#{anchor}", status_code=303)

    @routes.post("/incidents/{incident_id}/acknowledge")
    async def acknowledge(request: Request, incident_id: str, user: Any = logged_in) -> Response:
        def run(form: dict[str, str], actor: str) -> tuple[str, int, str]:
            from tradeops.incidents.service import IncidentService

            number, note = _row_id(incident_id, "the incident number"), _note(form)
            incident = IncidentService().acknowledge(number, actor, note)
            return "acknowledged", incident.id, f"incident-{incident.id}"

        return await act(request, user, run)

    @routes.post("/incidents/{incident_id}/resolve")
    async def resolve(request: Request, incident_id: str, user: Any = logged_in) -> Response:
        def run(form: dict[str, str], actor: str) -> tuple[str, int, str]:
            from tradeops.incidents.service import IncidentService

            number, note = _row_id(incident_id, "the incident number"), _note(form)
            incident = IncidentService().resolve(number, actor, note)
            return "resolved", incident.id, f"incident-{incident.id}"

        return await act(request, user, run)

    async def preview(request: Request, user: Any) -> Response:
        """The page with what the silence form's target would mute now (the form's Preview button)."""
        name = _user_name(user)
        form = await _form(request)
        refused = csrf.refusal(request, form)
        if refused:
            return error_page(request, name, 403, refused)
        filters = Filters.parse({k[2:]: v for k, v in form.items() if k.startswith("f_")})
        token = request.cookies[csrf.COOKIE]
        html = await run_in_threadpool(
            page.render, user=name, base=base_of(request), token=token, filters=filters, preview=form
        )
        return HTMLResponse(html)

    @routes.post("/silences")
    async def silence(request: Request, user: Any = logged_in) -> Response:
        try:
            if (await _form(request)).get("preview") == "yes":
                return await preview(request, user)
        except IncidentError as err:
            return error_page(request, _user_name(user), 400, str(err))

        def run(form: dict[str, str], actor: str) -> tuple[str, int, str]:
            from tradeops.incidents.service import IncidentService

            incidents = IncidentService()
            wanted = SilenceRequest.parse(form, incidents.config.incidents.max_silence_minutes)
            target = wanted.target
            matcher = incidents.get(int(target[1:])).dedup_key if target.startswith("#") else target
            made = incidents.silence(
                matcher,
                actor,
                wanted.reason,
                timedelta(minutes=wanted.minutes),
                covers_critical=wanted.covers_critical,
            )
            return "silenced", made.id, f"silence-{made.id}"

        return await act(request, user, run)

    @routes.post("/silences/{silence_id}/end")
    async def end_silence(request: Request, silence_id: str, user: Any = logged_in) -> Response:
        def run(form: dict[str, str], actor: str) -> tuple[str, int, str]:
            from tradeops.incidents.service import IncidentService

            ended = IncidentService().end_silence(_row_id(silence_id, "the silence number"), actor)
            return "ended", ended.id, "silences"

        return await act(request, user, run)

    return routes
