"""The steps of ``blue_green_deploy`` (rules in :mod:`tradeops.deploy.bluegreen`).

Every step after ``plan`` reads the plan's XCom (namespace, per service: container, blue's image, green's image)
and is skipped in a dry run. The Kubernetes calls go through :class:`~tradeops.kubernetes.hooks.KubernetesApiHook`
(its retries and error messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tradeops.config import load_config

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.kubernetes.hooks import KubernetesApiHook

PLAN_TASK = "plan"


def kubernetes(conn_id: str | None = None) -> KubernetesApiHook:
    from tradeops.kubernetes.hooks import KubernetesApiHook

    return KubernetesApiHook(conn_id or load_config().connections.kubernetes)


def plan_of(context: Context) -> dict[str, Any]:
    """The plan task's XCom; raises AirflowSkipException in a dry run (nothing is changed)."""
    plan = context["ti"].xcom_pull(task_ids=PLAN_TASK)
    if not plan:
        raise AirflowFailException("no plan: the plan step did not succeed")
    if plan["dry_run"]:
        raise AirflowSkipException("dry run: nothing is changed")
    return dict(plan)


def green_exists(hook: KubernetesApiHook, namespace: str, name: str) -> bool:
    from tradeops.exceptions import KubernetesNotFound

    try:
        hook.deployment(namespace, name)
    except KubernetesNotFound:
        return False
    return True


def delete_deployment(hook: KubernetesApiHook, namespace: str, name: str, dry_run: bool = False) -> None:
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    if dry_run:
        body["dryRun"] = ["All"]
    hook.call(
        "delete", "deployments", name, namespace, hook.apps.delete_namespaced_deployment, name, namespace, body=body
    )


def create_green(
    hook: KubernetesApiHook, namespace: str, blue: dict[str, Any], container: str, image: str, dry_run: bool = False
) -> None:
    """Create blue's green twin running ``image`` (``dry_run``: only validated by the API server)."""
    from tradeops.deploy.bluegreen import green_manifest

    deadline = int(load_config().blue_green.progress_deadline.total_seconds())
    hook.call(
        "create",
        "deployments",
        None,
        namespace,
        hook.apps.create_namespaced_deployment,
        namespace,
        green_manifest(blue, container, image, deadline),
        **({"dry_run": "All"} if dry_run else {}),
    )


def switch(hook: KubernetesApiHook, namespace: str, services: Sequence[str], colour: str) -> None:
    from tradeops.deploy.bluegreen import selector_patch

    for name in services:
        hook.patch_service(namespace, name, selector_patch(colour))


class _Step(BaseOperator):
    """A blue-green step on the cluster.

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    ui_color = "#d9e8f5"

    def __init__(self, *, kubernetes_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id

    def hook(self) -> KubernetesApiHook:
        return kubernetes(self.kubernetes_conn_id)


class PlanBlueGreenOperator(_Step):
    """Admit the run and compute its plan, object by object: refuses while the market is open unless
    ``break_glass`` with a reason; builds green's image from blue's repository and ``version`` (checked against the
    config's patterns); in a dry run green's creation is also sent with ``dryRun=All`` so the API server validates
    it. Returns the plan (XCom) and changes nothing.

    :param services: the config's deployments to deploy green next to (templated).
    :param version: the image tag for green (templated).
    :param plan_only: a dry run: only plan (templated).
    :param break_glass: deploy while the market is open (templated).
    :param break_glass_reason: why, required with ``break_glass`` (templated).
    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("services", "version", "plan_only", "break_glass", "break_glass_reason")

    def __init__(
        self,
        *,
        services: Sequence[str] | str,
        version: str,
        plan_only: bool | str = True,
        break_glass: bool | str = False,
        break_glass_reason: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.version = version
        self.plan_only = plan_only
        self.break_glass = break_glass
        self.break_glass_reason = break_glass_reason

    def admit(self, moment: datetime) -> None:
        from tradeops.calendar.sessions import sessions_for

        exchange = load_config().platform.exchange
        if not sessions_for(exchange).is_open(moment):
            return
        if self.break_glass is not True:
            raise AirflowFailException(f"refusing to deploy while {exchange} is open (set break_glass with a reason)")
        if not str(self.break_glass_reason).strip():
            raise AirflowFailException(f"break-glass needs a reason ({exchange} is open)")
        self.log.warning("Break-glass while %s is open: %s", exchange, self.break_glass_reason)

    def execute(self, context: Context) -> dict[str, Any]:
        from tradeops.changes.plans import render_plan
        from tradeops.deploy.bluegreen import (
            container_image,
            green_name,
            new_image,
            plan,
            switch_changes,
        )

        config = load_config()
        self.admit(context["dag_run"].run_after or datetime.now(UTC))
        names = [self.services] if isinstance(self.services, str) else list(self.services)
        deployments = [config.kubernetes.deployment(name) for name in names]
        namespaces = {d.namespace for d in deployments}
        if len(namespaces) != 1:
            raise AirflowFailException(f"{names} span namespaces {sorted(namespaces)}: deploy each namespace alone")
        namespace = namespaces.pop()
        hook = self.hook()
        services, changes, service_objects = {}, [], []
        for d in deployments:
            blue = hook.deployment(namespace, d.name)
            service = hook.service(namespace, d.name)
            current = container_image(blue, d.container_name)
            try:
                image = new_image(
                    current, self.version, config.blue_green.version_pattern, config.kubernetes.allowed_image_pattern
                )
            except ValueError as err:
                raise AirflowFailException(str(err)) from None
            leftover = green_exists(hook, namespace, green_name(d.name))
            changes += plan(namespace, blue, service, d.container_name, image, leftover)
            services[d.name] = {"container": d.container_name, "blue_image": current, "image": image}
            service_objects.append(service)
            if self.plan_only is True:
                create_green(hook, namespace, blue, d.container_name, image, dry_run=True)
        switch_plan = render_plan(switch_changes(namespace, service_objects, "green"))
        self.log.info("Plan (%s):\n%s", "dry run" if self.plan_only is True else "to apply", render_plan(changes))
        return {
            "dry_run": self.plan_only is True,
            "namespace": namespace,
            "version": self.version,
            "services": services,
            "greens": [green_name(name) for name in services],
            "locked": [] if self.plan_only is True else sorted([*services, *(green_name(n) for n in services)]),
            "plan": [c.as_dict() for c in changes],
            "switch_plan": switch_plan,
        }


class PrepareBlueOperator(_Step):
    """Adopt blue where needed: label its pod template ``color: blue`` (a rolling restart, waited for next).

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def execute(self, context: Context) -> list[str]:
        from tradeops.deploy.bluegreen import BLUE, COLOR, pod_colour

        plan = plan_of(context)
        hook, adopted = self.hook(), []
        for name in plan["services"]:
            if pod_colour(hook.deployment(plan["namespace"], name)) != BLUE:
                hook.patch_deployment(
                    plan["namespace"], name, {"spec": {"template": {"metadata": {"labels": {COLOR: BLUE}}}}}
                )
                adopted.append(name)
        self.log.info("Labelled blue: %s", adopted or "none needed")
        return adopted


class DeployGreenOperator(_Step):
    """Narrow each Service to blue's pods, then create green next to blue (a leftover green that serves nothing is
    replaced; one that the Service selects is refused).

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def execute(self, context: Context) -> list[str]:
        from tradeops.deploy.bluegreen import BLUE, COLOR, GREEN, green_name

        plan = plan_of(context)
        namespace, hook, created = plan["namespace"], self.hook(), []
        for name, spec in plan["services"].items():
            selector = hook.service(namespace, name)["spec"].get("selector") or {}
            if selector.get(COLOR) == GREEN:
                raise AirflowFailException(f"Service {name} selects green already: finish or undo that deploy first")
            if selector.get(COLOR) != BLUE:
                switch(hook, namespace, [name], BLUE)
            if green_exists(hook, namespace, green_name(name)):
                self.log.warning("Deleting the leftover %s", green_name(name))
                delete_deployment(hook, namespace, green_name(name))
            create_green(hook, namespace, hook.deployment(namespace, name), spec["container"], spec["image"])
            created.append(green_name(name))
        return created


class CheckGreenOperator(_Step):
    """Smoke checks against green before anyone is asked to switch: every replica ready, every pod running the new
    image and ready, none restarting.

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def execute(self, context: Context) -> dict[str, str]:
        from tradeops.deploy.health import green_problems

        plan = plan_of(context)
        hook, results = self.hook(), {}
        for name, spec in plan["services"].items():
            problems = green_problems(hook, plan["namespace"], name, spec["container"], spec["image"])
            if problems:
                raise AirflowFailException(f"green of {name} is not healthy: " + "; ".join(problems))
            results[name] = f"green {spec['image']} healthy"
        return results


class SwitchServicesOperator(_Step):
    """Point every planned Service at ``colour``'s pods.

    :param colour: ``green`` (the switch) or ``blue``.
    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def __init__(self, *, colour: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.colour = colour

    def execute(self, context: Context) -> str:
        plan = plan_of(context)
        switch(self.hook(), plan["namespace"], list(plan["services"]), self.colour)
        return self.colour


class PromoteBlueOperator(_Step):
    """After the soak: move blue (serving nothing now) to green's image; the old version is gone from here on.

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def execute(self, context: Context) -> dict[str, str]:
        plan = plan_of(context)
        hook = self.hook()
        for name, spec in plan["services"].items():
            patch = {
                "spec": {"template": {"spec": {"containers": [{"name": spec["container"], "image": spec["image"]}]}}}
            }
            hook.patch_deployment(plan["namespace"], name, patch)
        return {name: spec["image"] for name, spec in plan["services"].items()}


class RetireGreenOperator(_Step):
    """Point the Services back at blue (now the new version) and delete green: at rest again.

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def execute(self, context: Context) -> list[str]:
        from tradeops.deploy.bluegreen import BLUE, green_name

        plan = plan_of(context)
        hook, namespace = self.hook(), plan["namespace"]
        switch(hook, namespace, list(plan["services"]), BLUE)
        for name in plan["services"]:
            if green_exists(hook, namespace, green_name(name)):  # gone already when this is a retry
                delete_deployment(hook, namespace, green_name(name))
        return [green_name(name) for name in plan["services"]]


class CleanUpGreenOperator(_Step):
    """However the run ended (``trigger_rule=all_done``): delete every green no Service selects, so a failure before
    the switch, a rejection or a switch-back leaves blue serving alone. A green that still serves is kept (and the
    run's report says so): deleting it would take the service down.

    :param kubernetes_conn_id: the cluster; defaults to the config's ``connections.kubernetes``.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)

    def execute(self, context: Context) -> dict[str, str]:
        from tradeops.deploy.bluegreen import COLOR, GREEN, green_name

        plan = context["ti"].xcom_pull(task_ids=PLAN_TASK)
        if not plan or plan["dry_run"]:
            raise AirflowSkipException("nothing was deployed")
        hook, namespace, outcome = self.hook(), plan["namespace"], {}
        for name in plan["services"]:
            if (hook.service(namespace, name)["spec"].get("selector") or {}).get(COLOR) == GREEN:
                outcome[name] = "green still serving: kept"
                self.log.error("Service %s still selects green: %s kept", name, green_name(name))
            elif green_exists(hook, namespace, green_name(name)):
                delete_deployment(hook, namespace, green_name(name))
                outcome[name] = "green deleted"
            else:
                outcome[name] = "no green"
        return outcome
