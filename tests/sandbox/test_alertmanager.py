"""The Alertmanager stand-in speaks the v2 API: list, filter, post and silence alerts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.launcher import free_port


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def am(sandbox_settings):
    base = sandbox_settings["alertmanager"]["url"]

    def call(method, path, **kwargs):
        response = requests.request(method, base + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    return call


def test_default_alerts_hide_the_resolved_one(am):
    alerts = am("GET", "/api/v2/alerts")
    names = [a["labels"]["alertname"] for a in alerts]
    assert "HighMemoryUsage" in names and "SystemDown" not in names
    alert = alerts[names.index("HighMemoryUsage")]
    assert alert["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": []}
    assert set(alert) >= {"labels", "annotations", "startsAt", "endsAt", "updatedAt", "fingerprint", "receivers"}


def test_post_filter_and_silence(am):
    now = datetime.now(UTC)
    labels = {"alertname": "RiskLimitBreach", "severity": "critical", "service": "risk-management"}
    am("POST", "/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": "Risk limit breach"}}])
    critical = am("GET", "/api/v2/alerts", params={"filter": 'severity="critical"'})
    assert [a["labels"]["alertname"] for a in critical] == ["RiskLimitBreach"]

    silence = am(
        "POST",
        "/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": "RiskLimitBreach", "isRegex": False}],
            "startsAt": iso(now - timedelta(seconds=1)),
            "endsAt": iso(now + timedelta(hours=1)),
            "createdBy": "oncall",
            "comment": "known, being handled",
        },
    )
    unsilenced = am("GET", "/api/v2/alerts", params={"silenced": "false", "filter": 'severity="critical"'})
    assert unsilenced == []
    silenced = am("GET", "/api/v2/alerts", params={"filter": 'alertname="RiskLimitBreach"'})
    assert silenced[0]["status"]["silencedBy"] == [silence["silenceID"]]

    # Posting the same labels with a past endsAt resolves it (same fingerprint).
    am("POST", "/api/v2/alerts", json=[{"labels": labels, "endsAt": iso(now - timedelta(seconds=1))}])
    assert am("GET", "/api/v2/alerts", params={"filter": 'alertname="RiskLimitBreach"'}) == []


def test_bad_filter_is_a_400(sandbox_settings):
    response = requests.get(
        sandbox_settings["alertmanager"]["url"] + "/api/v2/alerts", params={"filter": "not a matcher"}, timeout=5
    )
    assert response.status_code == 400


@pytest.fixture
def flaky_receiver():
    """A webhook receiver that answers 503 to its first two requests, then 200; it keeps what it was sent."""
    received: list[dict] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request):
        received.append({"authorization": request.headers.get("authorization"), "body": await request.json()})
        return JSONResponse({}, status_code=503 if len(received) <= 2 else 200)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/hook", received
    server.should_exit = True
    thread.join(timeout=10)


def test_a_firing_alert_notifies_the_receiver_with_bearer_auth_retrying_until_it_answers(
    am, sandbox_settings, flaky_receiver
):
    url, received = flaky_receiver
    am("DELETE", "/_sandbox/notifications")
    am("PUT", "/_sandbox/receiver", json={"url": url})
    labels = {"alertname": "FeedLagging", "severity": "warning", "feed": "cme"}
    try:
        am("POST", "/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": "feed lag"}}])
        deadline = time.monotonic() + 20
        while not (done := am("GET", "/_sandbox/notifications")) or not done[0]["delivered"]:
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
    finally:
        am("PUT", "/_sandbox/receiver", json={"url": "http://127.0.0.1:9/none"})
    assert [a["status"] for a in done[0]["attempts"]] == [503, 503, 200]
    token = sandbox_settings["secrets"]["alertmanager_webhook_token"]
    assert {r["authorization"] for r in received} == {f"Bearer {token}"}
    body = received[-1]["body"]
    assert (body["version"], body["status"], body["groupKey"]) == ("4", "firing", '{}:{alertname="FeedLagging"}')
    assert [(a["status"], a["labels"]) for a in body["alerts"]] == [("firing", labels)]
