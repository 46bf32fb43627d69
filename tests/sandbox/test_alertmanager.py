"""The Alertmanager stand-in speaks the v2 API: list, filter, post and silence alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests


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
