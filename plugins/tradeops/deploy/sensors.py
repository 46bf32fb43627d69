"""``SoakSensor``: watch green after the switch and switch back to blue at the first failure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import load_config
from tradeops.kubernetes.sensors import RolloutStatusSensor

if TYPE_CHECKING:
    from airflow.sdk import Context


class SoakSensor(BaseSensorOperator):
    """Done once green has stayed healthy for ``soak``, checked every ``poke_interval`` in reschedule mode (no
    worker held between looks). At the first unhealthy look (a green replica or pod not ready, or the platform
    reporting a service unhealthy) it points the Services back at blue and fails: blue serves again within one
    poke interval; the clean-up then deletes green.

    :param soak: how long green must stay healthy.
    :param poke_interval: seconds between looks.
    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#fbe3d3"

    def __init__(
        self, *, soak: timedelta, poke_interval: float, kubernetes_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("timeout", soak.total_seconds() + 10 * poke_interval + 60)
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.soak = soak
        self.kubernetes_conn_id = kubernetes_conn_id

    def poke(self, context: Context) -> bool:
        from tradeops.deploy.bluegreen import BLUE
        from tradeops.deploy.health import green_problems, platform_problems
        from tradeops.deploy.operators import kubernetes, plan_of, switch
        from tradeops.platform.hooks import TradingPlatformHook

        plan = plan_of(context)
        hook, namespace = kubernetes(self.kubernetes_conn_id), plan["namespace"]
        problems: list[str] = []
        for name, spec in plan["services"].items():
            problems += green_problems(hook, namespace, name, spec["container"], spec["image"])
        problems += platform_problems(
            TradingPlatformHook(load_config().connections.platform_api), list(plan["services"])
        )
        if problems:
            switch(hook, namespace, list(plan["services"]), BLUE)
            raise AirflowFailException("green failed during the soak, switched back to blue: " + "; ".join(problems))
        started = context["ti"].get_first_reschedule_date(context) or datetime.now(UTC)
        healthy_for = datetime.now(UTC) - started
        self.log.info("green healthy for %ds of %ds", healthy_for.total_seconds(), self.soak.total_seconds())
        return healthy_for >= self.soak


class PlannedRolloutSensor(RolloutStatusSensor):
    """:class:`~tradeops.kubernetes.sensors.RolloutStatusSensor` over names known only at run time (the plan's XCom,
    rendered as a list), deferrable like it.

    :param names: the deployments to wait for, a template rendering to a list (templated).
    :param kwargs: the ``RolloutStatusSensor`` arguments (``namespace`` is required: greens are not in the config).
    """

    def __init__(self, *, names: str, **kwargs: Any) -> None:
        super().__init__(names=[], **kwargs)
        self.names = names  # type: ignore[assignment]  # rendered to a list before execute
