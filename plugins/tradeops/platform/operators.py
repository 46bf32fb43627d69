"""Operators that ask the trading platform's API to act."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.platform.hooks import TradingPlatformHook


class PlatformMaintenanceOperator(BaseOperator):
    """A maintenance action the platform's API performs (``POST``): log cleanup, security scan. Idempotent per task
    run (an ``Idempotency-Key`` makes a retried POST safe); fails when the response reports ``blocking`` findings.

    :param path: the API path to ``POST`` to, e.g. ``/v1/maintenance/logs/cleanup``.
    :param payload: the JSON body of the request. (templated)
    :param platform_conn_id: the platform API's Airflow connection; defaults to the config's
        ``connections.platform_api``.
    """

    template_fields: Sequence[str] = ("payload",)
    ui_color = "#e6eefc"

    def __init__(
        self, *, path: str, payload: dict[str, Any] | None = None, platform_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.payload = payload or {}
        self.platform_conn_id = platform_conn_id

    @cached_property
    def hook(self) -> TradingPlatformHook:
        from tradeops.config import load_config
        from tradeops.platform.hooks import TradingPlatformHook

        return TradingPlatformHook(self.platform_conn_id or load_config().connections.platform_api)

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        response = self.hook.request(
            "POST", self.path, json=self.payload, idempotency_key=f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"
        )
        self.log.info("%s: %s", self.path, {k: v for k, v in response.items() if k != "details"})
        if response.get("blocking"):
            raise AirflowFailException(
                f"{self.path}: {len(response['blocking'])} blocking finding(s): {response['blocking'][:5]}"
            )
        return response
