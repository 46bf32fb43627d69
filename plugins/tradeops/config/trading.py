"""The trading day's sections of ``tradeops.yaml``: the pre-market gates and post-market close-out
(``trading_day``), the market-hours watch's rules (``market_watch``) and where reports are kept (``reports``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import ConfigDict, Field, PositiveInt

from tradeops.config.base import Severity, _Strict
from tradeops.config.durations import Duration, PositiveDuration

Role = Literal["data", "agent", "execution", "gateway", "security", "monitoring"]


class PositionsCloseOut(_Strict):
    """post_market_shutdown's close-out: after the close-all order, positions are read back up to ``attempts``
    times, ``backoff`` apart (doubled each time, at most a minute); any still open is an incident at
    ``severity`` and the run fails."""

    attempts: int = Field(default=5, ge=1, le=20)
    backoff: PositiveDuration = timedelta(seconds=5)
    severity: Severity = "P1"


class MonitoringModes(_Strict):
    """The platform monitoring's mode names, set through its API and read back."""

    market_hours: str = Field(default="trading-hours", pattern=r"^[a-z][a-z0-9-]*$")
    off_hours: str = Field(default="off-hours", pattern=r"^[a-z][a-z0-9-]*$")


class TradingDay(_Strict):
    """pre_market_startup and post_market_shutdown."""

    gate_severity: Severity = Field(
        default="P1", description="a failed startup gate (account, models, risk limits): nothing is scaled up"
    )
    risk_limits: dict[str, float] = Field(
        default={"max_gross_exposure_usd": 25_000_000, "max_position_contracts": 50, "max_daily_drawdown_pct": 5},
        description="the risk limits the platform must enforce, exactly these values (a drift is a failed gate)",
    )
    scale_roles: list[Role] = Field(
        default=["data", "agent", "execution"],
        min_length=1,
        description="deployments of these roles follow the market_hours/off_hours replica profiles",
    )
    monitoring_modes: MonitoringModes = MonitoringModes()
    positions: PositionsCloseOut = PositionsCloseOut()


class WatchRule(_Strict):
    """One market-hours rule: ``metric`` above ``above`` for ``for`` (0s: at once) opens an incident at
    ``severity``; it resolves when the metric is back under."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    above: float
    for_: Duration = Field(default=timedelta(0), alias="for", ge=timedelta(0), le=timedelta(hours=1))
    severity: Severity = "P2"


class MarketWatch(_Strict):
    """market_hours_watch: the platform's metrics read every ``poll_every`` while the market is open."""

    poll_every: PositiveDuration = Field(default=timedelta(seconds=15), le=timedelta(seconds=60))
    rules: list[WatchRule] = []


class Reports(_Strict):
    """Reports (JSON, HTML, archives) under ``$TRADEOPS_REPORTS_DIR``: each kind keeps ``keep_days`` of them, except
    incident reports (``incidents/``), postmortem material, never pruned."""

    keep_days: PositiveInt = 30
