"""What an emergency rollback will change, computed from what it reads before changing anything: pure functions of
Kubernetes objects, so the dry run, the real run and the tests share one plan."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tradeops.changes.plans import PlannedChange
from tradeops.exceptions import RolloutFailed
from tradeops.kubernetes.patches import SAVED_REPLICAS, Manifest
from tradeops.kubernetes.rollout import REVISION, undo_plan
from tradeops.rollback.forms import PREVIOUS


class RollbackRefused(ValueError):
    """The target cannot be rolled back to (an image outside the allowed pattern, no history): nothing changed."""


def images_of(template: Manifest) -> dict[str, str]:
    """``{container: image}`` of a pod template."""
    return {c["name"]: c["image"] for c in template["spec"]["containers"]}


def state_of(deployment: Manifest) -> dict[str, Any]:
    """What the rollback records before changing a deployment: images, revision, and replicas (the count a
    stop saved in ``tradeops.io/replicas-before-scale`` when one is pending, so a retry records the same). A stop is
    pending only while the deployment is at 0: a saved count beside running replicas is stale (someone scaled it
    back by hand) and the live count wins."""
    annotations = deployment["metadata"].get("annotations") or {}
    saved = annotations.get(SAVED_REPLICAS) if deployment["spec"]["replicas"] == 0 else None
    return {
        "name": deployment["metadata"]["name"],
        "namespace": deployment["metadata"]["namespace"],
        "images": images_of(deployment["spec"]["template"]),
        "revision": int(annotations.get(REVISION, "0") or 0),
        "replicas": int(saved) if saved is not None else deployment["spec"]["replicas"],
    }


def image_at(image: str, version: str) -> str:
    """``image`` with its tag replaced by ``version`` (``registry/x/api:1.2.0`` at ``1.1.9``)."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:{version}"


def rollback_target(
    deployment: Manifest,
    container: str,
    target: str,
    allowed_image_pattern: str,
    replica_sets: Sequence[Manifest] = (),
) -> dict[str, Any]:
    """Where one deployment goes: ``{name, mode, images, to_revision}``. ``target`` is a version (the config's
    ``container`` gets that tag) or ``previous`` (the previous revision's template, kubectl's undo). Every image it
    would set must match ``allowed_image_pattern`` (never ``:latest``), else :class:`RollbackRefused`."""
    name = deployment["metadata"]["name"]
    current = images_of(deployment["spec"]["template"])
    if target == PREVIOUS:
        try:
            plan = undo_plan(deployment, list(replica_sets))
        except RolloutFailed as err:  # paused, or no history
            raise RollbackRefused(f"{name}: {err}") from None
        template = deployment["spec"]["template"] if plan.patch is None else plan.patch[0]["value"]
        images, mode, to_revision = images_of(template), PREVIOUS, plan.to_revision
    else:
        if container not in current:
            raise RollbackRefused(f"{name} has no container {container!r} (it has {sorted(current)})")
        images, mode, to_revision = {**current, container: image_at(current[container], target)}, "version", None
    pattern = re.compile(allowed_image_pattern)
    refused = sorted(image for image in images.values() if image.endswith(":latest") or not pattern.fullmatch(image))
    if refused:
        raise RollbackRefused(f"{name}: refusing image(s) outside {allowed_image_pattern!r}: {refused}")
    return {"name": name, "mode": mode, "images": images, "to_revision": to_revision}


def rollback_plan(
    namespace: str, before: Sequence[dict[str, Any]], targets: Sequence[dict[str, Any]], stopped: Sequence[str]
) -> list[PlannedChange]:
    """The plan, object by object in the order it happens: the ``stopped`` deployments to 0 replicas, each
    target's images, then the stopped deployments back to their recorded replicas."""
    state = {s["name"]: s for s in before}

    def replicas(name: str, field: str, frm: int, to: int) -> PlannedChange:
        return PlannedChange("Deployment", namespace, name, field, frm, to)

    changes = [replicas(n, "spec.replicas", state[n]["replicas"], 0) for n in stopped if state[n]["replicas"]]
    for target in targets:
        current = state[target["name"]]["images"]
        changes += [
            PlannedChange("Deployment", namespace, target["name"], f"image[{c}]", current.get(c), image)
            for c, image in target["images"].items()
            if current.get(c) != image
        ]
    changes += [replicas(n, "spec.replicas", 0, state[n]["replicas"]) for n in stopped if state[n]["replicas"]]
    return changes
