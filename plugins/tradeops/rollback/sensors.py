"""The emergency rollback's sensors: the rollouts it started, waited for in the triggerer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.rollback.operators import STOP_TASK

if TYPE_CHECKING:
    from airflow.sdk import Context


class WaitRollbackRolloutsSensor(RolloutStatusSensor):
    """:class:`~tradeops.kubernetes.sensors.RolloutStatusSensor` on the deployments the stop step says the rollback
    changed (known only once the run's form is read). Deferrable: the wait happens in the triggerer.

    :param plan_task_id: the task whose return value lists the changed deployments (``changed``).
    :param namespace: their namespace. (templated)
    :param timeout: seconds to wait in all before failing.
    """

    def __init__(self, *, plan_task_id: str = STOP_TASK, namespace: str, timeout: float = 600, **kwargs: Any) -> None:
        super().__init__(names=[], namespace=namespace, timeout=timeout, **kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> Any:
        self.names = list(context["ti"].xcom_pull(task_ids=self.plan_task_id)["changed"])
        return super().execute(context)
