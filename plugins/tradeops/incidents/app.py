"""The TradeOps web app, mounted on Airflow's api-server by the plugin under ``/tradeops``.

- ``POST /tradeops/slack/actions``: Slack's interactive buttons (Acknowledge, Resolve). The request must carry a
  valid Slack signature (HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the app's signing secret) and a timestamp less
  than five minutes old; otherwise 401 and nothing changes. A signed request that is not a Slack interaction (no
  single ``payload`` form field, a payload that is not a JSON object with a list of ``actions``) gets 400 and
  changes nothing either.
- ``POST /tradeops/alertmanager/webhook``: Alertmanager's webhook receiver (:mod:`tradeops.incidents.alerts`). The
  ``Authorization`` header must carry the ``connections.alertmanager_webhook`` credential (Bearer, or Basic with its
  login); otherwise 401 and nothing changes. An authorized body that is not a version 4 notification gets 400. A
  firing alert that opens a new incident and matches ``alerts.runbooks`` starts its runbook
  (:mod:`tradeops.incident_response.starts`).
- ``GET /tradeops/incidents``: the incidents page and its actions (acknowledge, resolve, silence, end a silence), for
  logged-in Airflow users: :mod:`tradeops.incidents.page`. ``/tradeops/incidents.json`` and
  ``/tradeops/incidents/{id}.json`` give incidents and timelines as JSON, ``/tradeops/incidents/response-times.json``
  the MTTA and MTTR per severity and week (:mod:`tradeops.incidents.response_times`);
  ``/tradeops/incidents/{id}/report`` (and ``.../report.md``) is an incident's report
  (:mod:`tradeops.incidents.report`): its files once written (:mod:`tradeops.incidents.report_files`), else rendered
  from the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from tradeops.exceptions import MalformedAlertmanagerRequest, MalformedSlackRequest
from tradeops.incidents.messages import ACK, RESOLVE

MAX_SKEW_S = 300


def signature_ok(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> bool:
    """Slack's request signing: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``, fresh within 5 minutes."""
    if not secret or not timestamp or not signature or not timestamp.isdigit():
        return False
    if abs((now or time.time()) - int(timestamp)) > MAX_SKEW_S:
        return False
    expected = "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class SlackAction(BaseModel):
    """One clicked element of a ``block_actions`` payload; other keys are Slack's and ignored."""

    action_id: str = ""
    value: str = ""


class SlackUser(BaseModel):
    """Who clicked: recorded as the actor of the acknowledgement or resolve."""

    id: str = ""
    username: str = ""
    name: str = ""


class SlackInteraction(BaseModel):
    """The ``payload`` of an interactive request from Slack, as far as the buttons need it."""

    actions: list[SlackAction]
    user: SlackUser = Field(default_factory=SlackUser)


def parse_interaction(body: bytes) -> SlackInteraction:
    """The interaction in a request's form-encoded body (one ``payload`` field holding a JSON object).

    :param body: the raw body, as signed.
    :raises MalformedSlackRequest: with the reason, for anything else.
    """
    try:
        form = parse_qs(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedSlackRequest("the body is not UTF-8 form data (application/x-www-form-urlencoded)") from None
    payloads = form.get("payload", [])
    if len(payloads) != 1:
        raise MalformedSlackRequest(f"expected one 'payload' form field, got {len(payloads)}")
    try:
        return SlackInteraction.model_validate_json(payloads[0])
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in err.errors())
        raise MalformedSlackRequest(f"the payload is not a Slack interaction ({problems})") from None


def _signing_secret() -> str:
    from airflow.sdk import BaseHook

    from tradeops.config import load_config

    return BaseHook.get_connection(load_config().connections.slack_signing).password or ""


def _webhook_credential() -> tuple[str | None, str | None]:
    from airflow.sdk import BaseHook

    from tradeops.config import load_config

    connection = BaseHook.get_connection(load_config().connections.alertmanager_webhook)
    return connection.login, connection.password


def _receive_alerts(body: bytes) -> dict[str, Any]:
    from tradeops.incident_response.starts import start_for_alerts
    from tradeops.incidents.alerts import parse_notification, receive
    from tradeops.incidents.service import IncidentService

    notification, incidents = parse_notification(body), IncidentService()
    results = receive(notification, incidents)  # each alert's incident committed before any runbook is started
    start_for_alerts(notification, results, incidents)
    return {"ok": True, "results": results}


def _handle_actions(interaction: SlackInteraction) -> list[dict[str, Any]]:
    from tradeops.exceptions import IncidentError
    from tradeops.incidents.service import IncidentService

    user = interaction.user
    actor = f"@{user.username or user.name or user.id or 'someone'} (Slack)"
    incidents = IncidentService()
    results: list[dict[str, Any]] = []
    for action in interaction.actions:  # other elements (a link button) are not ours to act on
        operation = {ACK: incidents.acknowledge, RESOLVE: incidents.resolve}.get(action.action_id)
        if operation is None or not (action.value.isascii() and action.value.isdigit()):
            continue  # our buttons carry the incident's number
        try:
            incident = operation(int(action.value), actor)
            results.append({"incident": incident.id, "status": incident.status.value})
        except IncidentError as err:
            results.append({"incident": int(action.value), "error": str(err)})
    return results


def _report(incident_id: int, kind: str) -> str:
    """The incident's report as its files hold it once written for its last resolve, else rendered now."""
    from tradeops.exceptions import IncidentError
    from tradeops.incidents import report_files, store
    from tradeops.incidents.models import IncidentStatus
    from tradeops.incidents.report import facts, render
    from tradeops.incidents.service import IncidentService

    incidents = IncidentService()
    with store.connect(incidents.dsn) as conn:
        try:
            incident = store.get(conn, incident_id)
        except IncidentError:
            raise HTTPException(404, f"no incident {incident_id}") from None
        written = report_files.saved(conn, incident_id, kind) if incident.status is IncidentStatus.RESOLVED else None
        return written or render(kind, facts(incident, store.timeline(conn, incident_id), incidents.config))


def _json(data: dict[str, Any]) -> Any:
    """What FastAPI returns for ``data``: timestamps as ``str()`` gives them."""
    return json.loads(json.dumps(data, default=str))


def create_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user

    from tradeops.incidents.page import router as page_router

    app = FastAPI(title="TradeOps", docs_url=None, redoc_url=None)
    logged_in = Depends(get_user)

    @app.post("/slack/actions")
    async def slack_actions(request: Request):
        body = await request.body()
        secret = await run_in_threadpool(_signing_secret)
        if not signature_ok(
            secret, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature"), body
        ):
            return JSONResponse({"ok": False, "error": "invalid signature"}, status_code=401)
        try:
            interaction = parse_interaction(body)
        except MalformedSlackRequest as err:
            return JSONResponse({"ok": False, "error": str(err)}, status_code=400)
        return {"ok": True, "results": await run_in_threadpool(_handle_actions, interaction)}

    @app.post("/alertmanager/webhook")
    async def alertmanager_webhook(request: Request):
        from tradeops.incidents.alerts import authorized

        try:
            login, credential = await run_in_threadpool(_webhook_credential)
        except Exception:  # no such connection: nobody is authorized
            login, credential = None, None
        if not authorized(request.headers.get("authorization"), login, credential):
            return JSONResponse({"ok": False, "error": "unauthorized"}, status_code=401)
        body = await request.body()
        try:
            return await run_in_threadpool(_receive_alerts, body)
        except MalformedAlertmanagerRequest as err:
            return JSONResponse({"ok": False, "error": str(err)}, status_code=400)

    app.include_router(page_router(get_user))

    @app.get("/incidents/{incident_id}/report", response_class=HTMLResponse)
    def report_html(incident_id: int, user: Any = logged_in):
        return HTMLResponse(_report(incident_id, "html"))

    @app.get("/incidents/{incident_id}/report.md", response_class=PlainTextResponse)
    def report_markdown(incident_id: int, user: Any = logged_in):
        return PlainTextResponse(_report(incident_id, "md"), media_type="text/markdown; charset=utf-8")

    @app.get("/incidents.json")
    def incidents_json(limit: int = 50, user: Any = logged_in):
        from tradeops.incidents.service import IncidentService

        recent = IncidentService().recent(min(max(limit, 1), 500))
        return _json({"incidents": [asdict(incident) for incident in recent]})

    @app.get("/incidents/response-times.json")  # before the route of an incident's number, which would take it
    def response_times_json(user: Any = logged_in):
        from tradeops.incidents.service import IncidentService

        measured = IncidentService().response_times(datetime.now(UTC))
        return _json({"weeks": measured.weeks, "response_times": [asdict(cell) for cell in measured.cells]})

    @app.get("/incidents/{incident_id}.json")
    def incident_json(incident_id: int, user: Any = logged_in):
        from tradeops.exceptions import IncidentError
        from tradeops.incidents.service import IncidentService

        incidents = IncidentService()
        try:
            incident = incidents.get(incident_id)
        except IncidentError:
            raise HTTPException(404, f"no incident {incident_id}") from None
        events = incidents.timeline(incident_id)
        return _json({"incident": asdict(incident), "timeline": [asdict(event) for event in events]})

    return app
