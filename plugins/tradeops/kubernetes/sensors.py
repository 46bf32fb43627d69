"""``RolloutStatusSensor``: wait for Deployments (or StatefulSets) to roll out, with ``kubectl rollout status``'s
rules, without holding a worker while waiting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.kubernetes.hooks import KubernetesApiHook
    from tradeops.kubernetes.rollout import RolloutState


class RolloutStatusSensor(BaseSensorOperator):
    """Done when every named workload is rolled out; fails with kubectl's message when one can't be
    (``deployment "x" exceeded its progress deadline``), when it is deleted, or when ``timeout`` passes.

    Deferrable by default: one read on the worker (already rolled out: done at once), then
    :class:`~tradeops.kubernetes.triggers.RolloutStatusTrigger` watches from the triggerer and, when all are done,
    ends the task there. ``deferrable=False`` pokes every ``poke_interval`` seconds instead (``mode="reschedule"``
    frees the worker between pokes). Names are deployments of the TradeOps config unless ``namespace`` is given.

    :param names: the workloads to wait for. (templated)
    :param kind: ``deployment`` or ``statefulset``.
    :param namespace: their namespace; by default the config's namespace of the named deployments (one namespace).
        (templated)
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    :param deferrable: wait in the triggerer (the default) rather than poke from a worker.
    :param timeout: seconds to wait in all before failing.
    :param poke_interval: seconds between pokes, when not deferrable.
    """

    template_fields: Sequence[str] = ("names", "namespace")
    ui_color = "#dff0e6"

    def __init__(
        self,
        *,
        names: Sequence[str],
        kind: str = "deployment",
        namespace: str | None = None,
        kubernetes_conn_id: str | None = None,
        deferrable: bool = True,
        timeout: float = 600,
        poke_interval: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        if kind not in ("deployment", "statefulset"):
            raise ValueError(f"kind must be 'deployment' or 'statefulset', got {kind!r}")
        self.names = list(names)
        self.kind = kind
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> KubernetesApiHook:
        from tradeops.config import load_config
        from tradeops.kubernetes.hooks import KubernetesApiHook

        return KubernetesApiHook(self.kubernetes_conn_id or load_config().connections.kubernetes)

    def _namespace(self) -> str:
        from tradeops.config import load_config

        if self.namespace:
            return self.namespace
        config = load_config()
        namespaces = {config.kubernetes.deployment(name).namespace for name in self.names}
        if len(namespaces) != 1:
            raise AirflowFailException(f"{self.names} span namespaces {sorted(namespaces)}: use one sensor each")
        return namespaces.pop()

    def _states(self, namespace: str) -> dict[str, RolloutState]:
        from tradeops.exceptions import RolloutFailed
        from tradeops.kubernetes.rollout import rollout_state

        read = self.hook.statefulset if self.kind == "statefulset" else self.hook.deployment
        states = {}
        for name in self.names:
            try:
                states[name] = rollout_state(
                    read(namespace, name), "StatefulSet" if self.kind == "statefulset" else "Deployment"
                )
            except RolloutFailed as err:
                raise AirflowFailException(str(err)) from None
            self.log.info("%s", states[name].message)
        return states

    def poke(self, context: Context) -> bool:
        return all(state.done for state in self._states(self._namespace()).values())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from tradeops.kubernetes.triggers import RolloutStatusTrigger

        namespace = self._namespace()
        states = self._states(namespace)
        if all(state.done for state in states.values()):
            return {"status": "success", "messages": {n: s.message for n, s in states.items()}}
        self.defer(
            trigger=RolloutStatusTrigger(self.names, namespace, self.hook.conn_id, self.kind, timeout_s=self.timeout),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> Any:
        if event == "success":  # `dag.test()` resumes the task with a TaskSuccessEvent's payload (the state)
            return {"status": "success"}
        payload = event if isinstance(event, dict) else {}
        if payload.get("status") == "success":
            return payload
        raise AirflowFailException(payload.get("message") or f"rollout wait ended without a status: {event or {}}")
