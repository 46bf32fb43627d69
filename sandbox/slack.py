"""A Slack stand-in: incoming webhooks and the Web API methods TradeOps uses, recording every message.

Web API (``/api/<method>``, bot token as ``Authorization: Bearer``, JSON or form bodies, Slack's
``{"ok": false, "error": ...}`` answers): ``auth.test``, ``chat.postMessage`` (with ``thread_ts``),
``chat.update``, ``conversations.create``, ``conversations.list``.
Incoming webhook: ``POST /services/T0SANDBOX/B0WEBHOOK/<secret>`` posts to the webhook's channel.
Tests and the demo read messages back from ``GET /_sandbox/messages`` (optionally ``?channel=#name``).
Interactivity, as a Slack app gets it: ``PUT /_sandbox/interactivity {"request_url": ...}`` says where to send
button clicks, and ``POST /_sandbox/click {"channel", "ts", "action_id", "user"}`` clicks a button of a posted
message: Slack's ``block_actions`` payload is POSTed to the request URL, signed with the app's signing secret
(``"sign": false`` sends a bad signature, to test the receiving side).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from sandbox.faults import FaultState

TEAM_ID = "T0SANDBOX"
BOT_USER_ID = "U0TRADEOPS"
BOT_ID = "B0TRADEOPS"
WEBHOOK_ID = "B0WEBHOOK"


def channel_id(name: str) -> str:
    return "C" + hashlib.sha1(name.encode()).hexdigest()[:10].upper()


class SlackState:
    def __init__(
        self, bot_token: str, webhook_secret: str, channels: list[str], webhook_channel: str, signing_secret: str = ""
    ):
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.request_url: str | None = None
        self.webhook_secret = webhook_secret
        self.channels: dict[str, dict] = {}
        for name in channels:
            self.create_channel(name.lstrip("#"))
        self.webhook_channel = webhook_channel.lstrip("#")
        self.messages: list[dict] = []
        self.faults = FaultState()
        self._last_ts = 0.0

    def create_channel(self, name: str, is_private: bool = False) -> dict:
        channel = {
            "id": channel_id(name),
            "name": name,
            "is_channel": True,
            "is_private": is_private,
            "created": int(time.time()),
            "is_archived": False,
        }
        self.channels[name] = channel
        return channel

    def resolve(self, ref: str) -> dict | None:
        ref = ref.lstrip("#")
        if ref in self.channels:
            return self.channels[ref]
        return next((c for c in self.channels.values() if c["id"] == ref), None)

    def next_ts(self) -> str:
        """Message timestamps are unique and increasing, as Slack's are within a channel."""
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def record(self, channel: dict, payload: dict, via: str) -> dict:
        message = {
            "channel": channel["id"],
            "channel_name": "#" + channel["name"],
            "ts": self.next_ts(),
            "thread_ts": payload.get("thread_ts"),
            "text": payload.get("text", ""),
            "blocks": payload.get("blocks") or [],
            "attachments": payload.get("attachments") or [],
            "via": via,
        }
        self.messages.append(message)
        return message


async def _params(request: Request) -> dict:
    """Slack accepts JSON bodies, form bodies and query strings alike."""
    params = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        params.update(json.loads(body))
    else:
        params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
    for key in ("blocks", "attachments"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


def create_app(state: SlackState) -> FastAPI:
    app = FastAPI(title="Slack stand-in (TradeOps sandbox)")
    state.faults.install(app, error_body=lambda status: {"ok": False, "error": "internal_error"})

    def fail(error: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error": error})

    def authorized(request: Request, params: dict) -> str | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() or params.pop("token", "")
        if not token:
            return "not_authed"
        if not secrets.compare_digest(token.encode(), state.bot_token.encode()):
            return "invalid_auth"
        return None

    @app.post("/api/{method}")
    async def web_api(method: str, request: Request):
        params = await _params(request)
        if error := authorized(request, params):
            return fail(error)
        handler = _METHODS.get(method)
        if handler is None:
            return fail("unknown_method")
        return handler(state, params)

    @app.post("/services/{team}/{hook}/{secret}")
    async def incoming_webhook(team: str, hook: str, secret: str, request: Request):
        if team != TEAM_ID or hook != WEBHOOK_ID or not secrets.compare_digest(secret, state.webhook_secret):
            return PlainTextResponse("no_service", status_code=404)
        try:
            payload = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not payload.get("text") and not payload.get("blocks"):
            return PlainTextResponse("no_text", status_code=400)
        state.record(state.resolve(state.webhook_channel), payload, via="webhook")
        return PlainTextResponse("ok")

    @app.get("/_sandbox/messages")
    async def messages(channel: str | None = None):
        if channel is None:
            return state.messages
        wanted = state.resolve(channel)
        return [m for m in state.messages if wanted and m["channel"] == wanted["id"]]

    @app.delete("/_sandbox/messages")
    async def clear_messages():
        state.messages.clear()
        return {"ok": True}

    @app.get("/_sandbox/channels")
    async def channels():
        return list(state.channels.values())

    @app.put("/_sandbox/interactivity")
    async def interactivity(request: Request):
        state.request_url = (await request.json())["request_url"]
        return {"request_url": state.request_url}

    @app.post("/_sandbox/click")
    async def click(request: Request):
        import httpx

        wanted = await request.json()
        channel = state.resolve(str(wanted.get("channel", "")))
        message = next(
            (m for m in state.messages if channel and m["channel"] == channel["id"] and m["ts"] == wanted.get("ts")),
            None,
        )
        if message is None:
            return JSONResponse({"error": "message_not_found"}, status_code=404)
        button = next(
            (
                e
                for b in message["blocks"]
                if b.get("type") == "actions"
                for e in b.get("elements", [])
                if e.get("action_id") == wanted.get("action_id")
            ),
            None,
        )
        if button is None:
            return JSONResponse({"error": "no such button on the message"}, status_code=404)
        if not state.request_url:
            return JSONResponse({"error": "no request_url configured (PUT /_sandbox/interactivity)"}, status_code=409)
        user = wanted.get("user", "oncall")
        payload = {
            "type": "block_actions",
            "api_app_id": "A0TRADEOPS",
            "trigger_id": secrets.token_hex(8),
            "user": {
                "id": "U" + hashlib.sha1(user.encode()).hexdigest()[:8].upper(),
                "username": user,
                "name": user,
                "team_id": TEAM_ID,
            },
            "team": {"id": TEAM_ID, "domain": "grandmodel-sandbox"},
            "channel": {"id": channel["id"], "name": channel["name"]},
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel["id"],
                "is_ephemeral": False,
            },
            "message": {"type": "message", "ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "value": button.get("value"),
                    "block_id": "actions",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time()))
        secret = state.signing_secret if wanted.get("sign", True) else "not-the-signing-secret"
        signature = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                state.request_url,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": signature,
                },
            )
        return {"status": response.status_code, "body": response.text}

    return app


def _auth_test(state: SlackState, params: dict) -> dict:
    return {
        "ok": True,
        "url": "https://grandmodel-sandbox.slack.com/",
        "team": "GrandModel",
        "user": "tradeops",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
    }


def _post_message(state: SlackState, params: dict) -> dict:
    channel = state.resolve(str(params.get("channel", "")))
    if channel is None:
        return {"ok": False, "error": "channel_not_found"}
    if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
        return {"ok": False, "error": "no_text"}
    thread_ts = params.get("thread_ts")
    if thread_ts and not any(m["ts"] == thread_ts and m["channel"] == channel["id"] for m in state.messages):
        return {"ok": False, "error": "thread_not_found"}
    message = state.record(channel, params, via="api")
    return {
        "ok": True,
        "channel": channel["id"],
        "ts": message["ts"],
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "text": message["text"],
            "blocks": message["blocks"],
            "ts": message["ts"],
            **({"thread_ts": thread_ts} if thread_ts else {}),
        },
    }


def _update(state: SlackState, params: dict) -> dict:
    channel = state.resolve(str(params.get("channel", "")))
    if channel is None:
        return {"ok": False, "error": "channel_not_found"}
    for message in state.messages:
        if message["channel"] == channel["id"] and message["ts"] == params.get("ts"):
            message["text"] = params.get("text", message["text"])
            message["blocks"] = params.get("blocks", message["blocks"])
            message["edited"] = True
            return {"ok": True, "channel": channel["id"], "ts": message["ts"], "text": message["text"]}
    return {"ok": False, "error": "message_not_found"}


def _create(state: SlackState, params: dict) -> dict:
    name = str(params.get("name", ""))
    if not name or len(name) > 80 or name != name.lower() or " " in name:
        return {"ok": False, "error": "invalid_name_specials"}
    if name in state.channels:
        return {"ok": False, "error": "name_taken"}
    is_private = str(params.get("is_private", "false")).lower() == "true"
    return {"ok": True, "channel": state.create_channel(name, is_private)}


def _list(state: SlackState, params: dict) -> dict:
    return {"ok": True, "channels": list(state.channels.values()), "response_metadata": {"next_cursor": ""}}


_METHODS = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "conversations.create": _create,
    "conversations.list": _list,
}
