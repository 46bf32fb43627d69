"""The platform API's trading-day endpoints, for pre_market_startup: agent communication and the monitoring mode.

- ``GET /v1/agents/communication``: for each agent (roles ``agent`` and ``execution``), its links to the other
  agents, the data handlers and the platform core: reachable or not, and the round trip in ms. Derived from the
  config's deployments (stable figures per link); an agent named in the ``unhealthy`` fault knob, or a link named
  ``link:<from>-><to>``, is unreachable.
- ``GET /v1/monitoring/mode`` / ``PUT /v1/monitoring/mode`` (``{"mode", "reason"}``, ``Idempotency-Key``): the
  platform monitoring's mode (alert thresholds and scrape rates for trading hours or off hours), one of the
  config's ``trading_day.monitoring_modes``; it starts in the off-hours mode.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

AGENT_ROLES = ("agent", "execution")
PEER_ROLES = ("agent", "execution", "data")
PLATFORM_CORE = "platform-core"


class MonitoringModeRequest(BaseModel):
    mode: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    reason: str = Field(min_length=3, max_length=500)


def _round_trip_ms(source: str, target: str) -> float:
    digest = hashlib.sha256(f"rtt:{source}->{target}".encode()).digest()
    return round(0.4 + int.from_bytes(digest[:4], "big") / 2**32 * 4.6, 2)


def install(app: FastAPI, state, auth: list) -> None:
    """Add the trading-day endpoints to the platform API ``app`` (``state``: its PlatformState)."""
    config = state.config
    modes = config.trading_day.monitoring_modes
    state.monitoring_mode = {"mode": modes.off_hours, "changed_at": None, "reason": "sandbox start"}

    @app.get("/v1/agents/communication", dependencies=auth)
    async def agents_communication():
        deployments = config.kubernetes.deployments
        agents = [d.name for d in deployments if d.role in AGENT_ROLES]
        peers = [d.name for d in deployments if d.role in PEER_ROLES]
        report = []
        for agent in agents:
            links = []
            for peer in [p for p in peers if p != agent] + [PLATFORM_CORE]:
                down = (
                    state.is_unhealthy(agent) or state.is_unhealthy(peer) or state.is_unhealthy(f"link:{agent}->{peer}")
                )
                links.append(
                    {
                        "peer": peer,
                        "reachable": not down,
                        "round_trip_ms": None if down else _round_trip_ms(agent, peer),
                    }
                )
            report.append({"agent": agent, "links": links})
        return {"agents": report, "checked_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")}

    @app.get("/v1/monitoring/mode", dependencies=auth)
    async def monitoring_mode():
        return {**state.monitoring_mode, "modes": [modes.market_hours, modes.off_hours]}

    @app.put("/v1/monitoring/mode", dependencies=auth)
    async def set_monitoring_mode(body: MonitoringModeRequest, idempotency_key: str | None = Header(default=None)):
        if idempotency_key and idempotency_key in state.idempotent_responses:
            return JSONResponse(state.idempotent_responses[idempotency_key], headers={"Idempotent-Replayed": "true"})
        if body.mode not in (modes.market_hours, modes.off_hours):
            raise HTTPException(422, detail=f"unknown monitoring mode {body.mode!r}")
        previous = state.monitoring_mode["mode"]
        if body.mode != previous:
            state.monitoring_mode = {
                "mode": body.mode,
                "changed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "reason": body.reason,
            }
        response = {"mode": body.mode, "previous": previous, "changed": body.mode != previous}
        if idempotency_key:
            state.idempotent_responses[idempotency_key] = response
        return response
