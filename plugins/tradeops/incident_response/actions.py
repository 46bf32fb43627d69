"""``incident_response``'s destructive steps, run only after the approval (never in a dry run) and under the
deployment lease: stop trading, close every position (verified), isolate the API gateway. Each records what it
changed on the incident, by the run's triggering user; each is safe to retry (what is already done is left alone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from tradeops.config import load_config
from tradeops.incident_response.operators import RunbookStep
from tradeops.kubernetes.operators import PatchServiceOperator
from tradeops.positions.operators import ClosePositionsOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class StopTradingOperator(RunbookStep, BaseOperator):
    """Stop trading: the trading services (``trading_day.scale_roles``) to 0 replicas, as the emergency rollback's
    stop does, each count replaced recorded on the deployment (``tradeops.io/replicas-before-scale``, what
    ``ScaleDeploymentsOperator(profile="restore")`` puts back) and on the incident. Returns ``{stopped, before}``.

    :param incident_id: the incident. (templated)
    :param namespace: the trading services' namespace.
    :param trading: the trading services.
    """

    template_fields: Sequence[str] = ("incident_id",)
    ui_color = "#fbe3d6"

    def __init__(self, *, incident_id: int | str, namespace: str, trading: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id
        self.namespace = namespace
        self.trading = list(trading)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.rollback.cluster import scale_to_zero

        hook = KubernetesApiHook(load_config().connections.kubernetes)
        before = {name: hook.deployment(self.namespace, name)["spec"]["replicas"] for name in self.trading}
        stopped = scale_to_zero(hook, self.namespace, self.trading)
        summary = f"trading stopped: {', '.join(stopped) or 'already at 0'}"
        self.log.info("%s (before: %s)", summary, before)
        self.record(context, "stop_trading", {"summary": summary, "before": before, "stopped": stopped})
        return {"stopped": stopped, "before": before}


class RunbookClosePositionsOperator(RunbookStep, ClosePositionsOperator):
    """:class:`~tradeops.positions.operators.ClosePositionsOperator` (close-all, then read back until the book is
    flat; positions left open page and fail the task), then what was closed recorded on the incident.

    :param incident_id: the incident. (templated)
    """

    template_fields: Sequence[str] = (*ClosePositionsOperator.template_fields, "incident_id")

    def __init__(self, *, incident_id: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.incident_id = incident_id

    def execute(self, context: Context) -> dict[str, Any]:
        closed = super().execute(context)
        summary = f"{closed['closed']} position(s) closed, the book read back flat"
        self.record(context, "close_positions", {"summary": summary, "orders": len(closed["orders"])})
        return closed


class IsolateGatewayOperator(RunbookStep, PatchServiceOperator):
    """:class:`~tradeops.kubernetes.operators.PatchServiceOperator` setting the API gateway's Service to
    ``ClusterIP`` (no outside traffic), with ``before`` (type and selector) recorded on the incident: what an undo
    sets back.

    :param incident_id: the incident. (templated)
    """

    template_fields: Sequence[str] = (*PatchServiceOperator.template_fields, "incident_id")

    def __init__(self, *, incident_id: int | str, **kwargs: Any) -> None:
        kwargs.setdefault("service_type", "ClusterIP")
        super().__init__(**kwargs)
        self.incident_id = incident_id

    def execute(self, context: Context) -> dict:
        patched = super().execute(context)
        was = patched["before"]["type"]
        summary = f"Service {patched['service']}: {was} → {patched['after']['type']} (undo: set type back to {was})"
        self.record(context, "isolate_gateway", {"summary": summary, "before": patched["before"]})
        return patched
