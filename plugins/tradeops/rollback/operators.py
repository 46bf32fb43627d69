"""The emergency rollback's steps. The first one does, in one task, everything that must happen before trading
stops (take the deployment lease, record the state, compute and check the plan, scale the trading services to 0):
every scheduler hand-off before the stop would be a second more of trading on a bad version.

No shell and no string-built commands: objects are read and patched through the Kubernetes API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.changes.operators import AcquireDeploymentLockOperator, holder_of
from tradeops.config import load_config
from tradeops.incidents.mixins import WithIncidentService
from tradeops.rollback.cluster import refused_on_server, scale_to_zero

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.kubernetes.hooks import KubernetesApiHook

ROLLBACK_DAG = "emergency_rollback"
AUTOMATIC = "the automatic rollback policy"  # who an operator-triggered rollback is by, when no person started it
STOP_TASK = "stop_trading"
STEPS = ("roll_back_images", "restore_replicas", "wait_rollouts", "health")  # after the stop: a failure is P1


def _hook() -> KubernetesApiHook:
    from tradeops.kubernetes.hooks import KubernetesApiHook

    return KubernetesApiHook(load_config().connections.kubernetes)


def actor(context: Context) -> str:
    """Who the rollback is by: the authenticated user who triggered it (inherited by a run another run triggered),
    else, for a run the automatic rollback policy triggered from a scheduled runbook, the policy itself."""
    from tradeops.incidents.operators import triggering_user

    run = context["dag_run"]
    if not run.triggering_user_name and run.run_type == "operator_triggered":
        return AUTOMATIC
    return triggering_user(context)


class StopTradingForRollbackOperator(AcquireDeploymentLockOperator):
    """Take the lease of every deployment the rollback changes (refused at once, naming the holder, when another
    runbook holds one), record their state (images, revision, replicas), compute the plan and check every image it
    would set (the config's ``allowed_image_pattern``, never ``:latest``), then stop trading: the trading services
    to 0 replicas. A dry run takes no lease and changes nothing: it returns and logs the plan, each change of it
    first sent to the API server with ``dryRun=All`` (validated, admitted, not stored).

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
        targets, replica_sets = [], {}
        for name in selected:
            if self.target == PREVIOUS:
                from tradeops.kubernetes.patches import label_selector

                replica_sets[name] = hook.replica_sets(self.namespace, label_selector(objects[name]))
            container = config.kubernetes.deployment(name).container_name
            try:
                targets.append(
                    rollback_target(
                        objects[name],
                        container,
                        self.target,
                        config.kubernetes.allowed_image_pattern,
                        replica_sets.get(name, []),
                    )
                )
            except RollbackRefused as err:
                context["ti"].xcom_push(key="refused", value=str(err))
                raise AirflowFailException(f"nothing changed: {err}") from None
        plan = rollback_plan(self.namespace, before, targets, self.trading)
        self.log.info("Plan (%s):\n%s", "dry run: nothing changes" if dry_run else "applying", render_plan(plan))
        if dry_run:
            refused = refused_on_server(hook, self.namespace, objects, targets, replica_sets, self.trading)
            if refused:
                raise AirflowFailException("the API server would not apply the plan: " + "; ".join(refused))
            self.log.info("The API server accepted every change of the plan (dryRun=All): nothing stored")
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


class RollbackReportOperator(WithIncidentService, BaseOperator):
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

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.incidents.models import IncidentSource, NewIncident

        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        planned = ti.xcom_pull(task_ids=STOP_TASK) or {}
        if planned.get("dry_run"):
            return {"outcome": "dry run", "incident_id": None}
        user, config = actor(context), load_config()
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


class AutomaticRollbackOperator(TriggerDagRunOperator):
    """The automatic rollback policy of a runbook that changes images: when the rollout of the images it set failed
    (``rollout_task_id`` failed), ``emergency_rollback`` is triggered for exactly the deployments ``change_task_id``
    changed, back to their previous revision, recorded on the runbook's incident (``runbook:<dag_id>``, the one its
    failed rollout opened) and answering it. Skipped when the rollout did not fail, or when this run changed no image
    (the failure is then not a rollout TradeOps started: a person decides). Runs ``all_done`` and after the run has
    given back its deployment lease, so the rollback can take it; one rollback per run (``skip_when_already_exists``).

    :param change_task_id: the :class:`~tradeops.kubernetes.operators.SetImageOperator` whose return value says which
        deployments it changed.
    :param rollout_task_id: the rollout wait whose failure starts the rollback.
    """

    def __init__(self, *, change_task_id: str, rollout_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("logical_date", None)  # a manual runbook's run has none; its run_after is when it is made
        kwargs.setdefault("run_after", None)
        super().__init__(
            trigger_dag_id=ROLLBACK_DAG, skip_when_already_exists=True, openlineage_inject_parent_info=False, **kwargs
        )
        self.change_task_id = change_task_id
        self.rollout_task_id = rollout_task_id

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        from tradeops.incidents.models import IncidentSource, NewIncident
        from tradeops.incidents.service import IncidentService, runbook_key
        from tradeops.rollback.forms import PREVIOUS, rollback_choices

        ti = context["ti"]
        rollout = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}).get(self.rollout_task_id)
        if rollout != "failed":
            raise AirflowSkipException(f"{self.rollout_task_id} is {rollout}: nothing to roll back")
        config = load_config()
        changed = [r["deployment"] for r in ti.xcom_pull(task_ids=self.change_task_id) or [] if r["changed"]]
        deployments = [name for name in changed if name in rollback_choices(config)]
        if not deployments:
            raise AirflowSkipException(
                f"{self.rollout_task_id} failed but this run changed no image a rollback may undo "
                f"({changed or 'none'}): not a rollout TradeOps started, a person decides"
            )
        reason = (
            f"automatic: {ti.dag_id} run {ti.run_id} set new images on {', '.join(deployments)} and "
            f"{self.rollout_task_id} failed"
        )
        self.trigger_run_id = f"automatic_rollback__{ti.dag_id}__{ti.run_id}"
        opened = IncidentService().open(
            NewIncident(
                dedup_key=runbook_key(ti.dag_id),
                source=IncidentSource.TASK_FAILURE,
                severity=config.incidents.runbook_failure.severity_for(ti.dag_id) or "P2",
                title=f"{ti.dag_id} failed",
                summary=f"{reason}: {ROLLBACK_DAG} run `{self.trigger_run_id}` rolls them back to their previous "
                "revision",
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                details={"automatic_rollback": {"run_id": self.trigger_run_id, "deployments": deployments}},
            )
        )
        self.conf = {
            "target": PREVIOUS,
            "deployments": deployments,
            "reason": reason,
            "confirm": True,
            "dry_run": False,
            "incident_id": opened.incident.id,
        }
        self.log.warning("Automatic rollback of %s, incident #%s", deployments, opened.incident.id)
        return super().execute(context)
