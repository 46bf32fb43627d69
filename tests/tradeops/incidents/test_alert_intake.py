"""Alertmanager's webhook into incidents, end to end over HTTP: an alert posted to the sandbox's Alertmanager is
delivered (Bearer credential, retried as Alertmanager does) to the TradeOps app, which opens one incident per alert
at the severity its label maps to; the same notification delivered twice is one incident with one occurrence; the
alert's resolution resolves it, unless a person acknowledged it; a bad credential is 401 and a body that is not a
notification 400, each changing nothing."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import requests

from tradeops.incidents import store
from tradeops.incidents.alerts import Alert, authorized, severity_of


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer s3cret-tokenX", False),
        ("Bearer ", False),
        ("Token s3cret-token", False),
        ("s3cret-token", False),
        (None, False),
        ("Basic " + base64.b64encode(b"alertmanager:s3cret-token").decode(), True),
        ("Basic " + base64.b64encode(b"mallory:s3cret-token").decode(), False),
        ("Basic not-base64!", False),
    ],
)
def test_only_the_connections_credential_is_authorized(header, ok):
    assert authorized(header, "alertmanager", "s3cret-token") is ok


def test_severity_comes_from_the_label_by_exact_value(config):
    def alert(severity: str) -> Alert:
        labels = {"alertname": "A", "severity": severity}
        return Alert(status="firing", labels=labels, startsAt=datetime.now(UTC), fingerprint="f")

    assert [severity_of(alert(s), config) for s in ("critical", "warning", "info", "Critical", "crit")] == [
        "P1",
        "P3",
        "P4",
        "P3",
        "P3",
    ]


def test_no_configured_credential_authorizes_nothing():
    assert not authorized("Bearer ", "alertmanager", "") and not authorized("Bearer x", None, None)


@pytest.fixture
def alertmanager(sandbox_settings, app_url, state_dsn):
    """The sandbox's Alertmanager notifying the app's webhook; ``post(labels, ...)`` fires or resolves an alert."""
    store.migrate(state_dsn)
    base = sandbox_settings["alertmanager"]["url"]
    requests.delete(base + "/_sandbox/notifications", timeout=5)

    def receiver(**settings) -> None:
        body = {"url": f"{app_url}/alertmanager/webhook", **settings}
        requests.put(base + "/_sandbox/receiver", json=body, timeout=5).raise_for_status()

    def post(labels: dict, *, resolved: bool = False, summary: str = "it is down") -> None:
        alert = {"labels": labels, "annotations": {"summary": summary, "description": f"{summary}, for 1 minute"}}
        if resolved:
            alert["endsAt"] = iso(datetime.now(UTC))
        requests.post(base + "/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    def delivered(count: int, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = requests.get(base + "/_sandbox/notifications", timeout=5).json()
            if len(done) >= count and all(d["delivered"] or len(d["attempts"]) >= 8 for d in done):
                return done
            time.sleep(0.1)
        raise TimeoutError(f"{count} notifications not delivered: {done}")

    receiver()
    yield type("Alertmanager", (), {"post": staticmethod(post), "delivered": staticmethod(delivered),
                                    "receiver": staticmethod(receiver)})  # fmt: skip
    requests.put(base + "/_sandbox/receiver", json={"url": "http://127.0.0.1:9/none"}, timeout=5)


def alert_incidents(state_dsn: str, alertname: str) -> list[dict]:
    with store.connect(state_dsn) as conn:
        return conn.execute(
            "SELECT * FROM tradeops.incidents WHERE source = 'alert' AND details->'labels'->>'alertname' = %s "
            "ORDER BY id",
            (alertname,),
        ).fetchall()


def trail(incidents, incident_id: int) -> list[tuple[str, str]]:
    return [
        (e.kind, e.actor) for e in incidents.timeline(incident_id) if e.kind in ("opened", "resolved", "alert_resolved")
    ]


def test_a_critical_alert_delivered_twice_is_one_p1_incident_and_its_resolution_resolves_it(
    alertmanager, incidents, key, state_dsn
):
    name = f"TradingEngineDown{key[-6:]}"
    alertmanager.receiver(repeat=2)  # each notification twice, as a retry after a lost answer
    alertmanager.post({"alertname": name, "severity": "critical", "service": "execution-engine"})
    deliveries = alertmanager.delivered(2)
    assert [d["delivered"] for d in deliveries] == [True, True]

    [incident] = alert_incidents(state_dsn, name)
    assert (incident["severity"], incident["status"], incident["occurrences"]) == ("P1", "open", 1)
    assert incident["title"] == f"{name}: it is down"
    assert incident["dedup_key"] == f"alert:{deliveries[0]['fingerprints'][0]}"
    assert incident["details"]["group_key"] == "{}:" + f'{{alertname="{name}"}}'

    alertmanager.post({"alertname": name, "severity": "critical", "service": "execution-engine"}, resolved=True)
    alertmanager.delivered(4)
    [incident] = alert_incidents(state_dsn, name)
    assert (incident["status"], incident["resolved_by"]) == ("resolved", "Alertmanager")
    assert trail(incidents, incident["id"]) == [("opened", "Alertmanager"), ("resolved", "Alertmanager")]


def test_a_warning_is_p3_and_an_acknowledged_incident_stays_open_when_its_alert_resolves(
    alertmanager, incidents, key, state_dsn
):
    name = f"HighLatency{key[-6:]}"
    alertmanager.post({"alertname": name, "severity": "warning"})
    alertmanager.delivered(1)
    [incident] = alert_incidents(state_dsn, name)
    assert incident["severity"] == "P3"
    incidents.acknowledge(incident["id"], "alice")

    alertmanager.post({"alertname": name, "severity": "warning"}, resolved=True)
    alertmanager.delivered(2)
    [incident] = alert_incidents(state_dsn, name)
    assert incident["status"] == "acknowledged", "a person is on it: they resolve it"
    assert trail(incidents, incident["id"])[-1] == ("alert_resolved", "Alertmanager")

    alertmanager.post({"alertname": name, "severity": "warning"})  # fires again: the same incident, once more
    alertmanager.delivered(3)
    [again] = alert_incidents(state_dsn, name)
    assert (again["id"], again["occurrences"]) == (incident["id"], 2)


def row_counts(state_dsn: str) -> dict[str, int]:
    with store.connect(state_dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) AS n FROM tradeops.{table}").fetchone()["n"]
            for table in ("incidents", "incident_events", "alert_states")
        }


NOTIFICATION = {
    "version": "4",
    "groupKey": '{}:{alertname="Forged"}',
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Forged", "severity": "critical"},
            "startsAt": "2026-12-01T10:00:00Z",
            "fingerprint": "0123456789abcdef",
        }
    ],
}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}],
    ids=["none", "wrong bearer", "wrong basic"],
)
def test_a_bad_credential_is_401_and_opens_nothing(app_url, state_dsn, alertmanager, headers):
    before = row_counts(state_dsn)
    answer = requests.post(f"{app_url}/alertmanager/webhook", json=NOTIFICATION, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert row_counts(state_dsn) == before


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"version": "4", "groupKey": "g", "status": "firing"}',
        b'{"version": "3", "groupKey": "g", "status": "firing", "alerts": []}',
        b'{"version": "4", "groupKey": "g", "status": "firing", "alerts": [{"status": "firing", "labels": {}}]}',
    ],
    ids=["not JSON", "a list", "no alerts", "version 3", "an alert without labels or fingerprint"],
)
def test_an_authorized_body_that_is_not_a_notification_is_400_and_opens_nothing(
    app_url, state_dsn, sandbox_settings, alertmanager, body
):
    before = row_counts(state_dsn)
    token = sandbox_settings["secrets"]["alertmanager_webhook_token"]
    answer = requests.post(
        f"{app_url}/alertmanager/webhook", data=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert row_counts(state_dsn) == before
