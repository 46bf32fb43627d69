"""An Alertmanager stand-in speaking the v2 API: ``GET/POST /api/v2/alerts``, ``GET/POST /api/v2/silences``.

Alerts are keyed by the fingerprint of their label set, as in Alertmanager: posting the same labels again
updates the alert. An alert whose ``endsAt`` is past is resolved; ``active``/``silenced``/``inhibited`` and
``filter`` (label matchers such as ``severity="critical"``) filter the listing.

Notifications: with a receiver set (``PUT /_sandbox/receiver {"url": ...}``), a posted alert that starts firing,
fires again from a new ``startsAt`` or resolves (an ``endsAt`` not after now) notifies its group (``group_by:
[alertname]``, no ``group_wait``) with Alertmanager's webhook payload (version 4), authorized as its
``http_config`` would (``Authorization: Bearer <the sandbox's alertmanager_webhook_token>``). A failed delivery (an
error status or no answer) is retried with backoff, as Alertmanager does; ``repeat: 2`` sends each notification
twice, as a retry after a lost answer would. ``GET /_sandbox/notifications`` lists every delivery attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from sandbox.faults import FaultState

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')
FAR_FUTURE = timedelta(days=3650)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(moment: str | None, default: datetime) -> datetime:
    if not moment:
        return default
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


class PostableAlert(BaseModel):
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str = ""


class Matcher(BaseModel):
    name: str
    value: str
    isRegex: bool = False
    isEqual: bool = True

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        hit = re.fullmatch(self.value, actual) is not None if self.isRegex else actual == self.value
        return hit == self.isEqual


class PostableSilence(BaseModel):
    matchers: list[Matcher] = Field(min_length=1)
    startsAt: str
    endsAt: str
    createdBy: str = Field(min_length=1)
    comment: str = Field(min_length=1)


def default_alerts(now: datetime) -> list[PostableAlert]:
    return [
        PostableAlert(
            labels={
                "alertname": "HighMemoryUsage",
                "severity": "warning",
                "service": "data-handler",
                "namespace": "grandmodel",
            },
            annotations={
                "summary": "High memory usage detected",
                "description": "Memory usage is above 85% for 3 minutes",
            },
            startsAt=_iso(now - timedelta(minutes=42)),
        ),
        PostableAlert(
            labels={
                "alertname": "SystemDown",
                "severity": "critical",
                "service": "news-sentiment",
                "namespace": "grandmodel",
            },
            annotations={"summary": "System is down", "description": "System has been down for 1 minute"},
            startsAt=_iso(now - timedelta(hours=9)),
            endsAt=_iso(now - timedelta(hours=8, minutes=40)),
        ),
    ]


class Receiver(BaseModel):
    """Where notifications go (a ``webhook_config``) and how many times each is sent."""

    url: str
    repeat: int = Field(default=1, ge=1, le=3)
    max_attempts: int = Field(default=8, ge=1, le=20)
    first_backoff_s: float = Field(default=0.2, gt=0, le=5)


class AlertStore:
    def __init__(self, webhook_token: str = "") -> None:
        self.alerts: dict[str, dict] = {}
        self.silences: dict[str, dict] = {}
        self.faults = FaultState()
        self.webhook_token = webhook_token
        self.receiver: Receiver | None = None
        self.deliveries: list[dict] = []
        self._sending: set[asyncio.Task] = set()
        now = datetime.now(UTC)
        for alert in default_alerts(now):
            self.put(alert, now)

    def put(self, alert: PostableAlert, now: datetime) -> str | None:
        """Store ``alert``; returns its group's name when the change is one Alertmanager notifies."""
        key = fingerprint(alert.labels)
        previous = self.alerts.get(key)
        starts = _parse(alert.startsAt, previous["_starts"] if previous else now)
        ends = _parse(alert.endsAt, now + FAR_FUTURE)
        self.alerts[key] = {"_starts": starts, "_ends": ends, "_updated": now, **alert.model_dump()}
        was_firing = previous is not None and previous["_ends"] > now
        firing = ends > now
        changed = firing != was_firing or (firing and previous is not None and previous["_starts"] != starts)
        return alert.labels.get("alertname", "") if changed and (firing or previous is not None) else None

    def notification(self, group: str, now: datetime) -> dict:
        """The webhook body for ``group``: its firing alerts, and those resolved since they last fired."""
        members = [(k, a) for k, a in self.alerts.items() if a["labels"].get("alertname", "") == group]
        alerts = [
            {
                "status": "firing" if a["_ends"] > now else "resolved",
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": _iso(a["_starts"]),
                "endsAt": _iso(a["_ends"]) if a["_ends"] <= now else "0001-01-01T00:00:00Z",
                "generatorURL": a["generatorURL"],
                "fingerprint": k,
            }
            for k, a in members
            if a["_ends"] > now or a["_ends"] > a["_updated"] - timedelta(minutes=5)
        ]
        group_labels = {"alertname": group}
        return {
            "version": "4",
            "groupKey": "{}:" + f'{{alertname="{group}"}}',
            "truncatedAlerts": 0,
            "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
            "receiver": "tradeops",
            "groupLabels": group_labels,
            "commonLabels": group_labels,
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.sandbox",
            "alerts": alerts,
        }

    def notify(self, groups: set[str], now: datetime) -> None:
        if self.receiver is None:
            return
        for group in sorted(groups):
            for _ in range(self.receiver.repeat):
                task = asyncio.get_running_loop().create_task(self._deliver(self.notification(group, now)))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _deliver(self, body: dict) -> None:
        import httpx

        receiver = self.receiver
        assert receiver is not None
        record = {"groupKey": body["groupKey"], "status": body["status"], "attempts": [], "delivered": False}
        record["fingerprints"] = [a["fingerprint"] for a in body["alerts"]]
        self.deliveries.append(record)
        headers = {"Authorization": f"Bearer {self.webhook_token}", "User-Agent": "Alertmanager/0.28.1"}
        backoff = receiver.first_backoff_s
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(receiver.max_attempts):
                try:
                    answer = await client.post(receiver.url, json=body, headers=headers)
                    record["attempts"].append({"status": answer.status_code})
                    if answer.status_code < 300:
                        record["delivered"] = True
                        return
                    if 400 <= answer.status_code < 500 and answer.status_code != 429:
                        return  # Alertmanager does not retry a client error
                except httpx.HTTPError as err:
                    record["attempts"].append({"error": type(err).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)

    def render(self, key: str, alert: dict, now: datetime) -> dict:
        silenced_by = [
            sid
            for sid, s in self.silences.items()
            if s["_starts"] <= now < s["_ends"] and all(m.matches(alert["labels"]) for m in s["_matchers"])
        ]
        resolved = alert["_ends"] <= now
        state = "unprocessed" if resolved else ("suppressed" if silenced_by else "active")
        return {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "startsAt": _iso(alert["_starts"]),
            "endsAt": _iso(alert["_ends"]),
            "updatedAt": _iso(alert["_updated"]),
            "generatorURL": alert["generatorURL"],
            "fingerprint": key,
            "receivers": [{"name": "trading-ops"}],
            "status": {"state": state, "silencedBy": silenced_by, "inhibitedBy": []},
        }


def _matchers(filters: list[str]) -> list[Matcher]:
    matchers = []
    for expression in filters:
        match = _MATCHER.match(expression.strip("{}"))
        if not match:
            raise ValueError(f"bad matcher {expression!r}")
        name, op, value = match.groups()
        matchers.append(Matcher(name=name, value=value, isRegex=op in ("=~", "!~"), isEqual=op in ("=", "=~")))
    return matchers


def create_app(store: AlertStore) -> FastAPI:
    app = FastAPI(title="Alertmanager v2 API (TradeOps sandbox)")
    store.faults.install(app)

    @app.get("/-/healthy")
    async def healthy():
        return "OK"

    @app.get("/api/v2/alerts")
    async def list_alerts(
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        filter: list[str] = Query(default=[]),
    ):
        now = datetime.now(UTC)
        try:
            matchers = _matchers(filter)
        except ValueError as err:
            raise HTTPException(400, detail=str(err)) from None
        out = []
        for key, alert in store.alerts.items():
            if alert["_ends"] <= now:
                continue  # Alertmanager drops resolved alerts from the listing
            rendered = store.render(key, alert, now)
            state = rendered["status"]["state"]
            if (state == "active" and not active) or (state == "suppressed" and not silenced):
                continue
            if all(m.matches(alert["labels"]) for m in matchers):
                out.append(rendered)
        return sorted(out, key=lambda a: a["startsAt"])

    @app.post("/api/v2/alerts")
    async def post_alerts(alerts: list[PostableAlert]):
        now = datetime.now(UTC)
        groups = {group for alert in alerts if (group := store.put(alert, now)) is not None}
        store.notify(groups, now)
        return {}

    @app.put("/_sandbox/receiver")
    async def set_receiver(receiver: Receiver):
        store.receiver = receiver
        return {"ok": True}

    @app.get("/_sandbox/notifications")
    async def notifications():
        return store.deliveries

    @app.delete("/_sandbox/notifications")
    async def forget_notifications():
        store.deliveries.clear()
        return {"ok": True}

    @app.get("/api/v2/silences")
    async def list_silences():
        now = datetime.now(UTC)
        return [
            {
                "id": sid,
                "matchers": [m.model_dump() for m in s["_matchers"]],
                "startsAt": _iso(s["_starts"]),
                "endsAt": _iso(s["_ends"]),
                "createdBy": s["createdBy"],
                "comment": s["comment"],
                "status": {
                    "state": "active"
                    if s["_starts"] <= now < s["_ends"]
                    else ("pending" if now < s["_starts"] else "expired")
                },
            }
            for sid, s in store.silences.items()
        ]

    @app.post("/api/v2/silences")
    async def post_silence(silence: PostableSilence):
        now = datetime.now(UTC)
        sid = str(uuid.uuid4())
        store.silences[sid] = {
            "_matchers": silence.matchers,
            "_starts": _parse(silence.startsAt, now),
            "_ends": _parse(silence.endsAt, now),
            "createdBy": silence.createdBy,
            "comment": silence.comment,
        }
        return {"silenceID": sid}

    return app
