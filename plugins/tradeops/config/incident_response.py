"""The ``incident_response`` section of ``tradeops.yaml``: what the performance runbook reads as degraded, how far
it scales (each deployment's ``replicas.max`` caps it) and which cache keys a chosen and approved flush deletes."""

from __future__ import annotations

from pydantic import Field

from tradeops.config.base import Percent, _Strict

# A namespaced key prefix ending in ':' (no glob character): the flush matches exactly the keys that start with it.
CACHE_PREFIX = r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*:$"


class PerformanceResponse(_Strict):
    """The performance-degradation runbook."""

    cpu_pct_above: Percent = Field(default=80, description="a component above this CPU share is degraded")
    memory_pct_above: Percent = Field(default=85, description="a component above this share of its memory limit")
    scale_step: int = Field(default=1, ge=1, le=10, description="replicas added to a degraded deployment")
    top: int = Field(default=5, ge=1, le=50, description="consumers and queries listed in the diagnostics")
    cache_prefix: str = Field(
        default="grandmodel:md:",
        pattern=CACHE_PREFIX,
        description="the cache keys a flush deletes: those starting with this prefix (never a wildcard)",
    )
    cache_batch: int = Field(default=500, ge=10, le=10_000, description="keys per SCAN page and per UNLINK")


class IncidentResponse(_Strict):
    performance: PerformanceResponse = PerformanceResponse()
