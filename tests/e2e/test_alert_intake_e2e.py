"""Alert intake on the real api-server (the plugin's app) with the stack's sandbox Alertmanager delivering to it: a
critical alert is a P1 incident paged in Slack; the same notification delivered again changes nothing; the alert's
resolution resolves the incident; a bad credential is refused by the api-server's TradeOps app with 401. (How soon
the page comes is printed, for the benchmark; no test asserts a time.)"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import requests
from psycopg.rows import dict_row

from tests.waiting import wait_for

pytestmark = pytest.mark.e2e


def incident_of(stack, alertname: str) -> dict | None:
    with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE details->'labels'->>'alertname' = %s", (alertname,)
        ).fetchone()


def delivered(alertmanager: str, alertname: str) -> list[dict]:
    """The sandbox Alertmanager's notifications of ``alertname``'s group that the app answered with success."""
    notifications = requests.get(alertmanager + "/_sandbox/notifications", timeout=5).json()
    return [n for n in notifications if n["groupKey"].endswith(f'"{alertname}"}}') and n["delivered"]]


def test_a_critical_alert_is_paged_as_p1_once_and_resolves_with_its_alert(stack, alertmanager):
    name = f"ExecutionEngineDown{uuid.uuid4().hex[:6]}"
    labels = {"alertname": name, "severity": "critical", "service": "execution-engine"}
    alert = {"labels": labels, "annotations": {"summary": "execution engine not answering"}}
    alertmanager.posted.append(alert)
    posted = time.monotonic()
    requests.post(alertmanager.url + "/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    incident = wait_for(lambda: incident_of(stack, name))
    pages = stack.sandbox.slack_messages
    page = wait_for(lambda: [m for m in pages("#trading-alerts") if f"#{incident['id']} " in m["text"]])
    print(f"paged {time.monotonic() - posted:.2f}s after the alert was posted")  # the benchmark's number, not a test
    assert incident["severity"] == "P1" and incident["source"] == "alert"
    assert "[P1]" in page[0]["text"] and name in page[0]["text"]

    wait_for(lambda: len(delivered(alertmanager.url, name)) >= 2)  # the notification and its repeat both answered
    assert incident_of(stack, name)["occurrences"] == 1, "the repeated notification changed nothing"

    resolved = {**alert, "endsAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    requests.post(alertmanager.url + "/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
    done = wait_for(lambda: (row := incident_of(stack, name)) and row["status"] == "resolved" and row)
    assert done["resolved_by"] == "Alertmanager"
    _, timeline = stack.client.incident(done["id"])
    assert [(e["kind"], e["actor"]) for e in timeline if e["kind"] in ("opened", "resolved")] == [
        ("opened", "Alertmanager"),
        ("resolved", "Alertmanager"),
    ]


def test_a_bad_credential_is_refused_by_the_api_servers_app(stack):
    body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": []}
    url = f"{stack.client.url}/tradeops/alertmanager/webhook"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 401
