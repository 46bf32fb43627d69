"""Fault knobs every sandbox service shares, set over HTTP at ``/_sandbox/faults``.

- ``latency_ms``: added to every response;
- ``error_rate`` (0..1): that fraction of requests answers ``error_status``, deterministically spread
  (request *n* fails when ``floor(n * rate)`` steps up), so a test of "1 in 4 fails" is exact and repeatable;
- ``error_burst``: the next N requests fail, then the service recovers on its own;
- ``unhealthy``: names of components/agents/feeds/models the platform reports as unhealthy; with
  ``unhealthy_reads`` N > 0, each such name is unhealthy for its first N reads only, then healthy again (a blip that
  a check's second look does not see);
- ``rate_limit`` / ``retry_after_s``: the next N requests get HTTP 429 with ``Retry-After`` (Slack's way);
- Kubernetes only: ``watch_drop_after_s`` closes every watch stream after that many seconds,
  ``unpullable_images`` are images whose pods never become ready (a rollout that gets stuck), and
  ``pod_ready_seconds`` is how long a new pod takes to become ready (a pod template annotation
  ``sandbox.tradeops.io/ready-after-seconds`` overrides it per deployment), and ``controller_paused`` freezes
  the controllers (nothing rolls out, statuses stay put) so a test can compare clients on a still picture.
- Platform API only: ``margin_available_pct`` overrides the account's available margin; ``stuck_positions`` are
  symbols that ``close-all`` cannot close (the exchange rejects their orders); ``metric_breaches`` hold one metric
  of the time series at a value for a number of seconds from when the faults were set (``delay_s`` later).

Control endpoints (``/_sandbox/...``) are never faulted.
"""

from __future__ import annotations

import asyncio
import math
import time

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class MetricBreach(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: str
    value: float
    seconds: float = Field(gt=0, le=86_400)
    delay_s: float = Field(default=0, ge=0, le=86_400)


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=120_000)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: int = Field(default=503, ge=400, le=599)
    error_burst: int = Field(default=0, ge=0)
    unhealthy: list[str] = []
    unhealthy_reads: int = Field(default=0, ge=0)
    rate_limit: int = Field(default=0, ge=0)
    retry_after_s: int = Field(default=1, ge=0, le=3600)
    watch_drop_after_s: float | None = Field(default=None, ge=0)
    unpullable_images: list[str] = []
    pod_ready_seconds: float = Field(default=1.0, ge=0, le=3600)
    controller_paused: bool = False
    margin_available_pct: float | None = Field(default=None, ge=0, le=100)
    stuck_positions: list[str] = []
    metric_breaches: list[MetricBreach] = []


class FaultState:
    def __init__(self) -> None:
        self.faults = Faults()
        self.requests = 0
        self.unhealthy_reads: dict[str, int] = {}
        self.set_at = time.monotonic()  # when the faults were last set: metric breaches count from here

    def reset(self) -> None:
        self.faults = Faults()
        self.requests = 0
        self.unhealthy_reads = {}
        self.set_at = time.monotonic()

    def is_unhealthy(self, name: str) -> bool:
        """Whether ``name`` reads as unhealthy now (counting the read when ``unhealthy_reads`` limits them)."""
        if name not in self.faults.unhealthy:
            return False
        if not self.faults.unhealthy_reads:
            return True
        self.unhealthy_reads[name] = self.unhealthy_reads.get(name, 0) + 1
        return self.unhealthy_reads[name] <= self.faults.unhealthy_reads

    def _error_due(self) -> bool:
        self.requests += 1
        if self.faults.error_burst:
            self.faults.error_burst -= 1
            return True
        rate = self.faults.error_rate
        return rate > 0 and math.floor(self.requests * rate) > math.floor((self.requests - 1) * rate)

    def install(self, app: FastAPI, error_body=lambda status: {"error": "injected fault", "status": status}) -> None:
        state = self

        @app.middleware("http")
        async def apply_faults(request: Request, call_next):
            if request.url.path.startswith("/_sandbox"):
                return await call_next(request)
            faults = state.faults
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.rate_limit:
                faults.rate_limit -= 1
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"},
                    status_code=429,
                    headers={"Retry-After": str(faults.retry_after_s)},
                )
            if state._error_due():
                return JSONResponse(error_body(faults.error_status), status_code=faults.error_status)
            return await call_next(request)

        router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

        @router.get("/faults")
        async def get_faults() -> Faults:
            return state.faults

        @router.put("/faults")
        async def set_faults(faults: Faults) -> Faults:
            state.faults = faults
            state.requests = 0
            state.unhealthy_reads = {}
            state.set_at = time.monotonic()
            return state.faults

        @router.delete("/faults")
        async def clear_faults() -> Faults:
            state.reset()
            return state.faults

        app.include_router(router)
