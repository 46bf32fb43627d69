"""The TradeOps app's Slack endpoint: Slack's request signing checked to the letter, and a real click from the
sandbox's Slack (signed with the app's signing secret, over HTTP) acknowledging and resolving an incident."""

from __future__ import annotations

import hashlib
import hmac
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from tradeops.incidents import store
from tradeops.incidents.app import create_app, signature_ok
from tradeops.incidents.models import NewIncident

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"payload=%7B%22type%22%3A%22block_actions%22%7D"


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def test_slacks_documented_example_signature():
    # The example from Slack's "Verifying requests from Slack" guide.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert signature_ok(
        "8f742231b10e8888abcd99yyyzzz85a5",
        "1531420618",
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        body,
        now=1531420618,
    )


@pytest.mark.parametrize(
    "case",
    [
        "good",
        "wrong secret",
        "tampered body",
        "stale",
        "future",
        "missing signature",
        "missing timestamp",
        "not a number",
        "no secret configured",
    ],
)
def test_signature_checks(case):
    now = 1_790_000_000
    stamp, body, secret, signature = str(now), BODY, SECRET, sign(BODY, now)
    if case == "wrong secret":
        signature = sign(BODY, now, "another-secret")
    elif case == "tampered body":
        body = BODY + b"x"
    elif case == "stale":
        stamp, signature = str(now - 301), sign(BODY, now - 301)
    elif case == "future":
        stamp, signature = str(now + 301), sign(BODY, now + 301)
    elif case == "missing signature":
        signature = None
    elif case == "missing timestamp":
        stamp = None
    elif case == "not a number":
        stamp = "12a"
    elif case == "no secret configured":
        secret = ""
    assert signature_ok(secret, stamp, signature, body, now=now) is (case == "good")


@pytest.fixture
def slack_buttons(sandbox, app_url):
    sandbox.set_interactivity(f"{app_url}/slack/actions")
    return sandbox


def test_a_signed_click_acknowledges_and_a_badly_signed_one_changes_nothing(incidents, key, slack_buttons, messages_of):
    # The app reads the production config (the default); only the connections and database matter here.
    incident = incidents.open(NewIncident(dedup_key=key, source="manual", severity="P2", title=f"click {key}")).incident
    [page] = messages_of(incident.id, "#trading-alerts")

    forged = slack_buttons.click(page, "incident_ack", user="mallory", sign=False)
    assert forged["status"] == 401
    assert incidents.get(incident.id).status == "open"
    assert [e.kind for e in incidents.timeline(incident.id)] == ["opened", "paged", "notified"]

    clicked = slack_buttons.click(page, "incident_ack", user="alice")
    assert clicked["status"] == 200, clicked["body"]
    row = incidents.get(incident.id)
    assert row.status == "acknowledged" and row.acknowledged_by == "@alice (Slack)"

    again = slack_buttons.click(page, "incident_ack", user="bob")
    assert again["status"] == 200 and "acknowledged, not open" in again["body"]

    resolved = slack_buttons.click(page, "incident_resolve", user="alice")
    assert resolved["status"] == 200
    row = incidents.get(incident.id)
    trail = [(e.kind, e.actor) for e in incidents.timeline(incident.id) if e.kind != "notified"]
    assert row.status == "resolved" and row.resolved_by == "@alice (Slack)"
    assert trail == [
        ("opened", "tradeops"),
        ("paged", "tradeops"),
        ("acknowledged", "@alice (Slack)"),
        ("resolved", "@alice (Slack)"),
    ]
    thread = [m["text"] for m in messages_of(incident.id, "#trading-alerts") if m["thread_ts"] == page["ts"]]
    assert thread[0].startswith(":eyes: Acknowledged by @alice (Slack)")
    assert thread[-1].startswith(":white_check_mark: Resolved by @alice (Slack)")


@pytest.fixture
def post_signed(app_url, sandbox_settings):
    """POST a body to the Slack endpoint, signed with the app's signing secret: ``post_signed(body, stamp=...)``."""
    import requests

    secret = sandbox_settings["secrets"]["slack_signing_secret"]

    def post(body: bytes, stamp: int | None = None) -> requests.Response:
        stamp = stamp or int(time.time())
        return requests.post(
            f"{app_url}/slack/actions",
            data=body,
            timeout=10,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": str(stamp),
                "X-Slack-Signature": sign(body, stamp, secret),
            },
        )

    return post


def test_a_replayed_request_is_refused(post_signed):
    body = b"payload=%7B%22actions%22%3A%5B%5D%7D"
    assert post_signed(body).status_code == 200
    assert post_signed(body, int(time.time()) - 600).status_code == 401, "a correctly signed request from 10 min ago"


def row_counts(state_dsn: str) -> dict[str, int]:
    with store.connect(state_dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) AS n FROM tradeops.{table}").fetchone()["n"]
            for table in ("incidents", "incident_events", "outbox", "silences")
        }


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("{'actions': [{'action_id': 'incident_ack', 'value': '%(id)s'}]}", id="not JSON"),
        pytest.param('{"actions": [{"action_id": "incident_ack", "value": "%(id)s"}]', id="truncated JSON"),
        pytest.param('[{"actions": [{"action_id": "incident_ack", "value": "%(id)s"}]}]', id="a JSON list"),
        pytest.param('"incident_ack %(id)s"', id="a JSON string"),
        pytest.param("null", id="JSON null"),
        pytest.param('{"type": "block_actions", "user": {"id": "U1"}}', id="no actions"),
        pytest.param('{"actions": {"action_id": "incident_ack", "value": "%(id)s"}}', id="actions not a list"),
        pytest.param('{"actions": ["incident_ack", "%(id)s"]}', id="an action not an object"),
        pytest.param('{"actions": [{"action_id": "incident_ack", "value": %(id)s}]}', id="a value not a string"),
        pytest.param('{"actions": [{"action_id": "incident_ack", "value": "%(id)s"}], "user": "alice"}', id="user"),
        pytest.param(None, id="no payload field"),
        pytest.param("two payload fields", id="two payload fields"),
        pytest.param(b"payload=\xff\xfe", id="not UTF-8"),
    ],
)
def test_a_signed_request_that_is_not_an_interaction_gets_400_and_changes_nothing(
    incidents, key, state_dsn, post_signed, payload
):
    incident = incidents.open(NewIncident(dedup_key=key, source="manual", severity="P2", title=f"bad {key}")).incident
    click = f'{{"actions": [{{"action_id": "incident_ack", "value": "{incident.id}"}}]}}'
    if payload is None:
        body = urlencode({"actions": click}).encode()
    elif payload == "two payload fields":
        body = urlencode([("payload", click), ("payload", click)]).encode()
    elif isinstance(payload, bytes):
        body = payload
    else:
        body = urlencode({"payload": payload % {"id": incident.id}}).encode()
    before = (row_counts(state_dsn), incidents.get(incident.id))

    response = post_signed(body)

    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False and response.json()["error"]
    assert (row_counts(state_dsn), incidents.get(incident.id)) == before
    assert post_signed(urlencode({"payload": click}).encode()).status_code == 200, "the same click, well formed"
    assert incidents.get(incident.id).status == "acknowledged"


def test_the_incident_pages_need_an_airflow_login(app_url):
    import requests

    assert requests.get(f"{app_url}/incidents", timeout=10).status_code in (401, 403)
    assert requests.get(f"{app_url}/incidents.json", timeout=10).status_code in (401, 403)


def test_the_incident_pages_for_a_logged_in_user(incidents, key, airflow_connections):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    incident = incidents.open(
        NewIncident(dedup_key=key, source="manual", severity="P2", title=f"page <{key}>")
    ).incident
    incidents.acknowledge(incident.id, "@alice", "looking")
    app = create_app()
    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_name=lambda: "alice")
    client = TestClient(app)

    html = client.get("/incidents").text  # the page itself: test_page.py
    assert 'Signed in as <strong id="user">alice</strong>' in html
    assert f"<strong>#{incident.id} page &lt;{key}&gt;</strong>" in html

    listed = client.get("/incidents.json", params={"limit": 5}).json()["incidents"]
    mine = next(i for i in listed if i["id"] == incident.id)
    assert mine["status"] == "acknowledged" and mine["source"] == "manual" and mine["dedup_key"] == key
    assert mine["opened_at"] == str(incident.opened_at) and mine["details"] == {}
    body = client.get(f"/incidents/{incident.id}.json").json()
    assert body["incident"] == mine | {"next_action_at": body["incident"]["next_action_at"]}
    assert [(e["kind"], e["actor"]) for e in body["timeline"] if e["kind"] != "notified"] == [
        ("opened", "tradeops"),
        ("paged", "tradeops"),
        ("acknowledged", "@alice"),
    ]
    assert client.get("/incidents/999999999.json").status_code == 404
