"""The platform's time-series metrics, as the market-hours watch reads them (``/v1/metrics/...``, bearer token).

Every metric the config's ``market_watch.rules`` name has a steady baseline well under its threshold (derived from
the metric's name, so two runs of the sandbox answer the same), with a small deterministic wobble per second. The
``metric_breaches`` fault knob holds a metric at a value: from ``set_at + delay_s`` for ``seconds`` (``set_at``:
when the faults were set), then the metric is back to its baseline on its own.

- ``GET /v1/metrics/current``: every metric now.
- ``GET /v1/metrics/series?metric=...&minutes=N``: one value per ``step_s`` seconds over the last N minutes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Query

# The metrics the platform exports, with their baselines: the watch's thresholds are far above these.
BASELINES = {
    "cpu_pct": 35.0,
    "memory_pct": 55.0,
    "response_time_p95_ms": 42.0,
    "error_rate_pct": 0.02,
    "drawdown_pct": 1.3,
    "position_risk_pct": 48.0,
    "failed_logins_per_min": 1.0,
}


def _wobble(metric: str, second: int) -> float:
    """A stable factor in [0.95, 1.05) for a metric at a whole second."""
    from sandbox.platform_api import _unit

    return 0.95 + _unit(metric, f"wobble:{second}") * 0.10


def metric_names(rule_metrics: Sequence[str]) -> list[str]:
    """The exported metrics: the baselines', and any other a rule names (baseline 1.0)."""
    return sorted({*BASELINES, *rule_metrics})


def value_at(state: Any, metric: str, monotonic_s: float) -> float:
    """``metric`` at the monotonic moment ``monotonic_s``: a breach holding it, else its wobbling baseline."""
    faults = state.faults
    for breach in faults.faults.metric_breaches:
        start = faults.set_at + breach.delay_s
        if breach.metric == metric and start <= monotonic_s < start + breach.seconds:
            return breach.value
    return round(BASELINES.get(metric, 1.0) * _wobble(metric, int(monotonic_s)), 3)


def install(app: FastAPI, state: Any, auth: list) -> None:
    """Add the metrics endpoints to the platform API ``app`` (``state``: its PlatformState)."""
    names = metric_names([rule.metric for rule in state.config.market_watch.rules])

    @app.get("/v1/metrics/current", dependencies=auth)
    async def metrics_current() -> dict[str, Any]:
        now = time.monotonic()
        return {
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "metrics": {name: value_at(state, name, now) for name in names},
        }

    @app.get("/v1/metrics/series", dependencies=auth)
    async def metrics_series(
        metric: str = Query(pattern=r"^[a-z][a-z0-9_]*$"),
        minutes: int = Query(default=15, ge=1, le=24 * 60),
        step_s: int = Query(default=60, ge=1, le=3600),
    ) -> dict[str, Any]:
        if metric not in names:
            raise HTTPException(404, detail=f"no metric {metric!r}; known: {', '.join(names)}")
        now, wall = time.monotonic(), datetime.now(UTC)
        count = minutes * 60 // step_s
        points = [
            {
                "at": (wall - timedelta(seconds=back)).isoformat().replace("+00:00", "Z"),
                "value": value_at(state, metric, now - back),
            }
            for back in range((count - 1) * step_s, -1, -step_s)
        ]
        return {"metric": metric, "step_s": step_s, "points": points}
