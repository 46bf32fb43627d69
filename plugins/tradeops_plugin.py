"""Entry point Airflow's plugin loader finds; the library itself lives in the ``tradeops`` package."""

from tradeops.plugin import TradeOpsPlugin

__all__ = ["TradeOpsPlugin"]
