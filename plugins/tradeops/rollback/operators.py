"""The emergency rollback's steps. The first one does, in one task, everything that must happen before trading
stops (take the deployment lease, record the state, compute and check the plan, scale the trading services to 0):
every scheduler hand-off before the stop would be a second more of trading on a bad version.

No shell and no string-built commands: objects are read and patched through the Kubernetes API.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.changes.operators import AcquireDeploymentLockOperator, holder_of
from tradeops.config import load_config
from tradeops.kubernetes.sensors import RolloutStatusSensor

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.incidents.service import IncidentService
    from tradeops.kubernetes.hooks import KubernetesApiHook

STOP_TASK = "stop_trading"
STEPS = ("roll_back_images", "restore_replicas", "wait_rollouts", "health")  # after the stop: a failure is P1


def _hook() -> KubernetesApiHook:
    from tradeops.kubernetes.hooks import KubernetesApiHook

    return KubernetesApiHook(load_config().connections.kubernetes)


def scale_to_zero(hook: KubernetesApiHook, namespace: str, names: Sequence[str]) -> list[str]:
    """Scale ``names`` to 0, recording each count replaced (``tradeops.io/replicas-before-scale``, what
    ``ScaleDeploymentsOperator(profile="restore")`` puts back); returns those it changed."""
    from tradeops.kubernetes.patches import scale_patch

    changed = []
    for name in names:

        def read(name: str = name) -> dict[str, Any]:
            return hook.deployment(namespace, name)

        def write(obj: dict[str, Any], body: dict[str, Any], name: str = name) -> dict[str, Any]:
            return hook.patch_deployment(namespace, name, body)

        _, _, patch = hook.update(read, lambda obj: scale_patch(obj, 0), write)
        if patch is not None:
            changed.append(name)
    return changed


class StopTradingForRollbackOperator(AcquireDeploymentLockOperator):
    """Take the lease of every deployment the rollback changes (refused at once, naming the holder, when another
    runbook holds one), record their state (images, revision, replicas), compute the plan and check every image it
    would set (the config's ``allowed_image_pattern``, never ``:latest``), then stop trading: the trading services
    to 0 replicas. A dry run takes no lease and changes nothing: it returns and logs the plan.

    Returns ``{namespace, deployments, changed, before, targets, plan, stopped, dry_run}`` (plain data).

    :param deployments: the deployments to roll back. (templated)
    :param target: a version (image tag) or ``previous`` (each deployment's previous revision). (templated)
    :param trading: the trading services: stopped first, restored last.
    :param dry_run: compute the plan only. (templated)
    :param namespace: the deployments' namespace.
    :param ttl: the longest the rollback may hold its lease.
    """

    template_fields: Sequence[str] = ("deployments", "target", "dry_run_flag")

    def __init__(
        self,
        *,
        deployments: Sequence[str] | str,
        target: str,
        trading: Sequence[str],
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(deployments=deployments, wait=0, **kwargs)
        self.target = target
        self.trading = list(trading)
        self.dry_run_flag = dry_run

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.changes.plans import render_plan
        from tradeops.rollback.forms import PREVIOUS
        from tradeops.rollback.plans import RollbackRefused, rollback_plan, rollback_target, state_of

        config = load_config()
        selected = [self.deployments] if isinstance(self.deployments, str) else list(self.deployments)
        dry_run = self.dry_run_flag in (True, "True", "true")
        changed = sorted(set(selected) | set(self.trading))
        hook = _hook()
        if not dry_run:
            self.deployments = changed
            super().execute(context)
        objects = {name: hook.deployment(self.namespace, name) for name in changed}
        before = [state_of(objects[name]) for name in changed]
        targets = []
        for name in selected:
            replica_sets: list[dict[str, Any]] = []
            if self.target == PREVIOUS:
                from tradeops.kubernetes.patches import label_selector

                replica_sets = hook.replica_sets(self.namespace, label_selector(objects[name]))
            container = config.kubernetes.deployment(name).container_name
            try:
                targets.append(
                    rollback_target(
                        objects[name], container, self.target, config.kubernetes.allowed_image_pattern, replica_sets
                    )
                )
            except RollbackRefused as err:
                context["ti"].xcom_push(key="refused", value=str(err))
                raise AirflowFailException(f"nothing changed: {err}") from None
        plan = rollback_plan(self.namespace, before, targets, self.trading)
        self.log.info("Plan (%s):\n%s", "dry run: nothing changes" if dry_run else "applying", render_plan(plan))
        stopped = [] if dry_run else scale_to_zero(hook, self.namespace, self.trading)
        if stopped:
            self.log.info("Trading stopped: %s at 0 replicas", stopped)
        return {
            "namespace": self.namespace,
            "deployments": selected,
            "changed": changed,
            "before": before,
            "targets": targets,
            "plan": [change.as_dict() for change in plan],
            "stopped": stopped,
            "dry_run": dry_run,
        }


class RollBackImagesOperator(BaseOperator):
    """Set each deployment's images to its target from the stop step's plan: a version's image (a strategic merge
    patch of the container), or the previous revision's template (kubectl's undo). A deployment already at its
    target is left alone, so a retry changes nothing more. Returns ``[{deployment, from, to, from_revision,
    changed}]``.

    :param plan_task_id: the task whose return value holds the plan (:class:`StopTradingForRollbackOperator`).
    """

    def __init__(self, *, plan_task_id: str = STOP_TASK, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from tradeops.kubernetes.patches import label_selector
        from tradeops.kubernetes.rollout import undo_plan
        from tradeops.rollback.plans import images_of, state_of

        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        namespace, hook, results = planned["namespace"], _hook(), []
        for target in planned["targets"]:
            name = target["name"]
            obj = hook.deployment(namespace, name)
            current, revision = images_of(obj["spec"]["template"]), state_of(obj)["revision"]
            done = current == target["images"]
            if not done and target["mode"] == "version":
                containers = [{"name": c, "image": i} for c, i in target["images"].items() if current.get(c) != i]
                hook.patch_deployment(namespace, name, {"spec": {"template": {"spec": {"containers": containers}}}})
            elif not done:
                replica_sets = hook.replica_sets(namespace, label_selector(obj))
                patch = undo_plan(obj, replica_sets, target["to_revision"]).patch
                if patch is not None:
                    hook.patch_deployment(namespace, name, patch)
            self.log.info("%s/%s: %s -> %s%s", namespace, name, current, target["images"], " (already)" * done)
            results.append(
                {
                    "deployment": name,
                    "from": current,
                    "to": target["images"],
                    "from_revision": revision,
                    "changed": not done,
                }
            )
        return results


class RollbackReportOperator(BaseOperator):
    """Whatever happened (``all_done``): the outcome in one Slack message (through the incidents' outbox, key
    ``rollback:<dag_id>:<run_id>``: a retry sends nothing twice) with the versions before and after, who triggered
    it and why, and an incident: P1 when a step after the stop failed (then the trading services are scaled to 0
    again: trading is left stopped, and the message says so), otherwise the rollback recorded on the given incident
    or a new P2 one. A refusal before anything changed opens nothing. Returns ``{outcome, incident_id}``.

    :param reason: why the rollback was triggered. (templated)
    :param target: the target version, or ``previous``. (templated)
    :param incident_id: the incident this rollback answers, if any. (templated)
    """

    template_fields: Sequence[str] = ("reason", "target", "incident_id")

    def __init__(self, *, reason: str, target: str, incident_id: int | str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.reason = reason
        self.target = target
        self.incident_id = incident_id

    @cached_property
    def incidents(self) -> IncidentService:
        from tradeops.incidents.service import IncidentService

        return IncidentService()

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incidents.models import IncidentSource, NewIncident
        from tradeops.incidents.operators import triggering_user

        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        planned = ti.xcom_pull(task_ids=STOP_TASK) or {}
        if planned.get("dry_run"):
            return {"outcome": "dry run", "incident_id": None}
        user, config = triggering_user(context), load_config()
        failed = [step for step in STEPS if states.get(step) == "failed"]
        if states.get(STOP_TASK) != "success":
            outcome = "REFUSED, nothing changed: " + (ti.xcom_pull(task_ids=STOP_TASK, key="refused") or "see the log")
        elif failed:
            left = scale_to_zero(_hook(), planned["namespace"], planned["stopped"] or [])
            self.log.warning("Failed steps %s; trading services scaled to 0 again: %s", failed, left)
            outcome = f"FAILED at {', '.join(failed)}: trading LEFT STOPPED ({', '.join(planned['stopped'])} at 0)"
        else:
            outcome = "done, trading resumed"
        before = {state["name"]: state["images"] for state in planned.get("before", [])}
        lines = [f"*Emergency rollback {outcome}*", f"By {user}, target `{self.target}`: {self.reason}"]
        for target in planned.get("targets", []):
            was, now = before.get(target["name"], {}), target["images"]
            lines.append(f"• {target['name']}: {', '.join(was.values())} → {', '.join(now.values())}")
        title = f"Emergency rollback of {', '.join(planned.get('deployments', []))} to {self.target}"
        incident_id = None
        if planned:
            summary = "\n".join(lines[1:])
            run = {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "actor": user}
            keys = [f"rollback-failed:{ti.dag_id}:{ti.run_id}"] if failed else []
            if self.incident_id not in (None, "", "None"):
                keys.append(self.incidents.get(int(self.incident_id)).dedup_key)
            elif not failed:
                keys.append(f"rollback:{ti.dag_id}:{ti.run_id}")
            for key in keys:
                severity = "P1" if failed else "P2"
                opened = self.incidents.open(
                    NewIncident(
                        dedup_key=key,
                        source=IncidentSource.MANUAL,
                        severity=severity,
                        title=f"{title}: {outcome}",
                        summary=summary,
                        details={"rollback": planned.get("plan", [])},
                        **run,
                    )
                )
                incident_id = incident_id or opened.incident.id
            lines.append(f"Incident #{incident_id}")
        text = "\n".join(lines)
        self.log.info("%s", text)
        self.incidents.send_report(
            f"rollback:{ti.dag_id}:{ti.run_id}", config.slack.channels["alerts" if failed else "ops"], text
        )
        return {"outcome": outcome, "incident_id": incident_id, "by": user, "holder": holder_of(context)}


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
