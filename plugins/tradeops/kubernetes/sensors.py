"""``RolloutStatusSensor``: wait for Deployments (or StatefulSets) to roll out, with ``kubectl rollout status``'s
rules, without holding a worker while waiting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException


class RolloutStatusSensor(BaseSensorOperator):
    """Done when every named workload is rolled out; fails with kubectl's message when one can't be
    (``deployment "x" exceeded its progress deadline``), when it is deleted, or when ``timeout`` passes.

    Deferrable by default: one read on the worker (already rolled out: done at once), then
    :class:`~tradeops.kubernetes.triggers.RolloutStatusTrigger` watches from the triggerer and, when all are done,
    ends the task there. ``deferrable=False`` pokes every ``poke_interval`` seconds instead (``mode="reschedule"``
    frees the worker between pokes). Names are deployments of the TradeOps config unless ``namespace`` is given.
    """

    template_fields: Sequence[str] = ("names", "namespace")
    ui_color = "#dff0e6"

    def __init__(self, *, names: Sequence[str], kind: str = "deployment", namespace: str | None = None,
                 kubernetes_conn_id: str | None = None, deferrable: bool = True, timeout: float = 600,
                 poke_interval: float = 30, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        if kind not in ("deployment", "statefulset"):
            raise ValueError(f"kind must be 'deployment' or 'statefulset', got {kind!r}")
        self.names = list(names)
        self.kind = kind
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = deferrable

    def _target(self) -> tuple[str, str]:
        from tradeops.config import load_config

        config = load_config()
        conn_id = self.kubernetes_conn_id or config.connections.kubernetes
        if self.namespace:
            return self.namespace, conn_id
        namespaces = {config.kubernetes.deployment(name).namespace for name in self.names}
        if len(namespaces) != 1:
            raise AirflowFailException(f"{self.names} span namespaces {sorted(namespaces)}: use one sensor each")
        return namespaces.pop(), conn_id

    def _states(self, namespace: str, conn_id: str) -> dict[str, Any]:
        from tradeops.kubernetes.client import KubernetesClient
        from tradeops.kubernetes.rollout import RolloutFailed, rollout_state

        client = KubernetesClient(conn_id)
        read = client.statefulset if self.kind == "statefulset" else client.deployment
        states = {}
        for name in self.names:
            try:
                states[name] = rollout_state(read(namespace, name), "StatefulSet" if self.kind == "statefulset"
                                             else "Deployment")
            except RolloutFailed as err:
                raise AirflowFailException(str(err)) from None
            self.log.info("%s", states[name].message)
        return states

    def poke(self, context) -> bool:
        return all(state.done for state in self._states(*self._target()).values())

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from tradeops.kubernetes.triggers import RolloutStatusTrigger

        namespace, conn_id = self._target()
        states = self._states(namespace, conn_id)
        if all(state.done for state in states.values()):
            return {"status": "success", "messages": {n: s.message for n, s in states.items()}}
        self.defer(
            trigger=RolloutStatusTrigger(self.names, namespace, conn_id, self.kind, timeout_s=self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60),
        )

    def execute_complete(self, context, event: dict | str | None = None) -> Any:
        if event == "success":  # `dag.test()` resumes the task with a TaskSuccessEvent's payload (the state)
            return {"status": "success"}
        event = event or {}
        if event.get("status") == "success":
            return event
        raise AirflowFailException(event.get("message") or f"rollout wait ended without a status: {event}")
