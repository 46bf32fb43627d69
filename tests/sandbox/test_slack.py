"""The Slack stand-in answers the real ``slack_sdk`` clients the way Slack does, and records every message."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient


@pytest.fixture
def web(sandbox_settings):
    return WebClient(
        token=sandbox_settings["secrets"]["slack_bot_token"], base_url=sandbox_settings["slack"]["api_url"]
    )


@pytest.fixture(autouse=True)
def clean_messages(sandbox_settings):
    import requests

    yield
    requests.delete(sandbox_settings["slack"]["url"] + "/_sandbox/messages", timeout=5)


def test_auth_test(web):
    assert web.auth_test()["user_id"] == "U0TRADEOPS"


def test_post_and_reply_in_a_thread_by_channel_name_or_id(web, sandbox):
    first = web.chat_postMessage(
        channel="#trading-alerts",
        text="P1: pre-market startup late",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*late*"}}],
    )
    reply = web.chat_postMessage(channel=first["channel"], text="escalated to L2", thread_ts=first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]
    messages = sandbox.slack_messages("#trading-alerts")
    assert [(m["text"], m["thread_ts"]) for m in messages] == [
        ("P1: pre-market startup late", None),
        ("escalated to L2", first["ts"]),
    ]
    assert messages[0]["blocks"][0]["text"]["text"] == "*late*"
    assert float(messages[1]["ts"]) > float(messages[0]["ts"])


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "#no-such-channel", "text": "x"}, "channel_not_found"),
        ({"channel": "#trading-ops"}, "no_text"),
        ({"channel": "#trading-ops", "text": "x", "thread_ts": "1.000001"}, "thread_not_found"),
    ],
)
def test_slack_errors(web, kwargs, error):
    with pytest.raises(SlackApiError) as err:
        web.chat_postMessage(**kwargs)
    assert err.value.response["error"] == error


def test_bad_token(sandbox_settings):
    client = WebClient(token="xoxb-wrong", base_url=sandbox_settings["slack"]["api_url"])
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert err.value.response["error"] == "invalid_auth"


def test_war_room_channel_creation(web):
    created = web.conversations_create(name="inc-20261123-0001")
    assert created["channel"]["name"] == "inc-20261123-0001"
    with pytest.raises(SlackApiError) as err:
        web.conversations_create(name="inc-20261123-0001")
    assert err.value.response["error"] == "name_taken"
    web.chat_postMessage(channel="#inc-20261123-0001", text="war room open")


def test_rate_limit_is_honoured_by_slack_sdk_retry(web, sandbox):
    sandbox.set_faults("slack", rate_limit=2, retry_after_s=1)
    with pytest.raises(SlackApiError) as err:
        web.chat_postMessage(channel="#trading-ops", text="dropped?")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["retry-after"] == "1"
    web.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    assert web.chat_postMessage(channel="#trading-ops", text="delivered after Retry-After")["ok"]
    assert [m["text"] for m in sandbox.slack_messages("#trading-ops")] == ["delivered after Retry-After"]


def test_incoming_webhook(sandbox_settings, sandbox):
    hook = WebhookClient(sandbox_settings["slack"]["webhook_url"])
    assert hook.send(text="via webhook").body == "ok"
    assert sandbox.slack_messages("#trading-ops")[-1]["via"] == "webhook"
    wrong = WebhookClient(sandbox_settings["slack"]["webhook_url"].rsplit("/", 1)[0] + "/wrongsecret")
    assert wrong.send(text="x").status_code == 404
    assert hook.send(text="").status_code == 400
