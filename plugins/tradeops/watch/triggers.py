"""``MarketWatchTrigger``: the market-hours watch's loop, in the triggerer (no worker held while nothing happens).

It reads the platform's current metrics (``GET /v1/metrics/current``, the connection's bearer token) every
``poll_s`` seconds, and sooner when a rule's clock is about to confirm a breach, and keeps each rule's state
(:mod:`tradeops.watch.rules`). It fires only when something changed: a breach confirmed or cleared (the operator
opens or resolves the incident, then defers again with the states it was given back), the metrics unreadable for
``blind_after_s`` or readable again, or the watch's end (``until``, the session's close). Everything it needs to
resume is in its kwargs, so a restarted triggerer carries on with the same clocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

METRICS_PATH = "/v1/metrics/current"


class MarketWatchTrigger(BaseTrigger):
    """Read the platform's metrics until ``until``; fire on the first rule transition, blindness change, or the end.

    :param rules: the rules, as :meth:`tradeops.watch.rules.Rule.to_json` gives them.
    :param states: each rule's state by name (:meth:`tradeops.watch.rules.RuleState.to_json`); empty at the start.
    :param until: when the watch ends (ISO 8601 with a time zone): the session's close, or the drill's end.
    :param platform_conn_id: the platform API's Airflow connection (bearer token in its password).
    :param poll_s: seconds between two readings.
    :param blind: whether the metrics were unreadable (reported blind) when the trigger was deferred.
    :param blind_after_s: seconds of failed readings after which the watch reports itself blind.
    """

    def __init__(
        self,
        rules: list[dict[str, Any]],
        states: dict[str, dict[str, Any]],
        until: str,
        platform_conn_id: str,
        poll_s: float = 15.0,
        blind: bool = False,
        blind_after_s: float = 120.0,
    ) -> None:
        super().__init__()
        self.rules = list(rules)
        self.states = dict(states)
        self.until = until
        self.platform_conn_id = platform_conn_id
        self.poll_s = poll_s
        self.blind = blind
        self.blind_after_s = blind_after_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "tradeops.watch.triggers.MarketWatchTrigger",
            {
                "rules": self.rules,
                "states": self.states,
                "until": self.until,
                "platform_conn_id": self.platform_conn_id,
                "poll_s": self.poll_s,
                "blind": self.blind,
                "blind_after_s": self.blind_after_s,
            },
        )

    async def _client(self) -> Any:
        import httpx
        from airflow.sdk import BaseHook

        conn = await BaseHook.aget_connection(self.platform_conn_id)
        if not conn.password:
            raise ValueError(f"connection {self.platform_conn_id!r} has no bearer token in its password field")
        port = f":{conn.port}" if conn.port else ""
        base_path = (conn.extra_dejson.get("base_path") or "").rstrip("/")
        return httpx.AsyncClient(
            base_url=f"{conn.schema or 'https'}://{conn.host}{port}{base_path}",
            headers={"Authorization": f"Bearer {conn.password}", "User-Agent": "tradeops-airflow"},
            timeout=float(conn.extra_dejson.get("timeout", 10.0)),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        from tradeops.watch.rules import Rule, evaluate, next_confirmation, states_from_json, states_to_json

        rules = [Rule.from_json(r) for r in self.rules]
        states = states_from_json(self.states)
        until = datetime.fromisoformat(self.until)
        failing_since: datetime | None = None
        readings = 0
        async with await self._client() as client:
            while (now := datetime.now(UTC)) < until:
                try:
                    response = await client.get(METRICS_PATH)
                    response.raise_for_status()
                    metrics = response.json()["metrics"]
                except (httpx.HTTPError, KeyError, ValueError) as err:
                    failing_since = failing_since or now
                    self.log.warning("Reading %s: %s", METRICS_PATH, err)
                    if not self.blind and (now - failing_since).total_seconds() >= self.blind_after_s:
                        yield self._event("blind", states_to_json(states), error=str(err)[:300], since=failing_since)
                        return
                else:
                    readings += 1
                    failing_since = None
                    states, transitions = evaluate(rules, states, metrics, now)
                    if transitions or self.blind:
                        self.log.info("After %d reading(s): %s", readings, [t.to_json() for t in transitions])
                        yield self._event(
                            "changed",
                            states_to_json(states),
                            transitions=[t.to_json() for t in transitions],
                            metrics=metrics,
                        )
                        return
                # Wake at the next poll, or just after a running clock would confirm a breach, whichever is first.
                now = datetime.now(UTC)
                wake = min(until, next_confirmation(rules, states) or until)
                await asyncio.sleep(max(0.05, min(self.poll_s, (wake - now).total_seconds() + 0.05)))
        yield self._event("closed", states_to_json(states))

    def _event(self, status: str, states: dict[str, Any], **payload: Any) -> TriggerEvent:
        since = payload.pop("since", None)
        if since is not None:
            payload["since"] = since.isoformat()
        return TriggerEvent({"status": status, "states": states, "at": datetime.now(UTC).isoformat(), **payload})
