"""The rollback's writes to the cluster before its plan is applied: stopping trading (the trading services to 0,
each count recorded for the restore) and asking the API server about every change of the plan (``dryRun=All``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tradeops.exceptions import KubernetesConflict, KubernetesError

if TYPE_CHECKING:
    from tradeops.kubernetes.hooks import KubernetesApiHook


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


def _desired(deployment: dict[str, Any]) -> tuple[Any, ...]:
    """What a person or a runbook writes (spec, labels, annotations), not the controllers' status."""
    metadata = deployment["metadata"]
    return deployment["spec"], metadata.get("labels"), metadata.get("annotations")


def refused_on_server(
    hook: KubernetesApiHook,
    namespace: str,
    objects: dict[str, dict[str, Any]],
    targets: Sequence[dict[str, Any]],
    replica_sets: dict[str, list[dict[str, Any]]],
    trading: Sequence[str],
) -> list[str]:
    """Send each change of the plan with ``dryRun=All`` (the API server validates, admits and returns the result,
    and stores nothing): the stops, then each target's images. Returns what it refused or would do otherwise."""
    from tradeops.kubernetes.patches import scale_patch
    from tradeops.kubernetes.rollout import undo_plan
    from tradeops.rollback.plans import images_of

    problems: list[str] = []

    def dry_patch(name: str, body: Any) -> dict[str, Any] | None:
        try:
            return hook.patch_deployment(namespace, name, body, dry_run=True)
        except KubernetesError as err:
            problems.append(f"{name}: {err}")
            return None

    def dry_stop(name: str) -> dict[str, Any] | None:
        planned = objects[name]
        if (stop := scale_patch(planned, 0)) is None:
            return None
        try:
            return hook.patch_deployment(namespace, name, stop, dry_run=True)
        except KubernetesConflict as err:
            fresh = hook.deployment(namespace, name)
            if _desired(fresh) != _desired(planned):  # someone changed it after the plan read it: the plan is stale
                problems.append(f"{name}: {err}")
                return None
            # only the controllers' status moved on: the plan stands, asked again from the fresh read
            return dry_patch(name, scale_patch(fresh, 0))
        except KubernetesError as err:
            problems.append(f"{name}: {err}")
            return None

    for name in trading:
        if (result := dry_stop(name)) and result["spec"]["replicas"] != 0:
            problems.append(f"{name}: would run {result['spec']['replicas']} replicas, not 0")
    for target in targets:
        name, obj = target["name"], objects[target["name"]]
        if target["mode"] == "version":
            containers = [{"name": c, "image": i} for c, i in target["images"].items()]
            body: Any = {"spec": {"template": {"spec": {"containers": containers}}}}
        else:
            body = undo_plan(obj, replica_sets.get(name, []), target["to_revision"]).patch
        if body is None:
            continue
        result = dry_patch(name, body)
        if result and images_of(result["spec"]["template"]) != target["images"]:
            problems.append(f"{name}: would run {images_of(result['spec']['template'])}, not {target['images']}")
    return problems
