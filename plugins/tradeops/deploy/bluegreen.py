"""Blue-green rules, pure: names, labels, manifests and the plan.

Convention (so every deploy finds things where the previous one left them, and every other runbook keeps using
the config's deployment names):

- **Blue** is always the config's Deployment ``<name>``; its pods carry ``color: blue`` and the Service ``<name>``
  selects ``{..., color: blue}``. A Deployment that has never been deployed blue-green is *adopted* first: its pod
  template gets the label (a rolling restart of blue, waited for) and then the Service is narrowed to it, so green's
  pods never receive traffic before the switch.
- **Green** is the temporary Deployment ``<name>-green``: blue's spec with the new image, ``color: green`` added to
  its labels and selector, one revision of history.
- The switch sets the Service's ``color`` to ``green``. After the soak, blue is moved to the new version (it serves
  nothing then), the Service goes back to ``color: blue`` and green is deleted: the old version is gone only after
  the soak, and at rest there is exactly one Deployment per service, named as in the config.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from tradeops.changes.plans import PlannedChange

COLOR = "color"
BLUE = "blue"
GREEN = "green"
GREEN_SUFFIX = "-green"
SERVER_OWNED = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "annotations")

Manifest = dict[str, Any]


def green_name(name: str) -> str:
    return name + GREEN_SUFFIX


def new_image(current: str, version: str, version_pattern: str, allowed_image_pattern: str) -> str:
    """``current``'s repository at tag ``version``; refuses a version or an image outside the config's patterns
    (the form checked the version already: this is the same rule where the image is built)."""
    if not re.fullmatch(version_pattern.removeprefix("^").removesuffix("$"), version):
        raise ValueError(f"version {version!r} does not match {version_pattern}")
    repository = current.rsplit(":", 1)[0] if ":" in current.rsplit("/", 1)[-1] else current
    image = f"{repository}:{version}"
    if not re.fullmatch(allowed_image_pattern.removeprefix("^").removesuffix("$"), image):
        raise ValueError(f"image {image} does not match kubernetes.allowed_image_pattern")
    return image


def container_image(deployment: Manifest, container: str) -> str:
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        if c["name"] == container:
            return str(c["image"])
    raise KeyError(f"deployment {deployment['metadata']['name']} has no container {container!r}")


def pod_colour(deployment: Manifest) -> str | None:
    return (deployment["spec"]["template"]["metadata"].get("labels") or {}).get(COLOR)


def green_manifest(blue: Manifest, container: str, image: str, progress_deadline_s: int = 600) -> Manifest:
    """Green: blue's spec with ``image`` in ``container``, ``color: green`` on its labels and selector, failing its
    rollout after ``progress_deadline_s`` without progress."""
    spec = copy.deepcopy(blue["spec"])
    spec.pop("paused", None)
    spec["revisionHistoryLimit"] = 1
    spec["progressDeadlineSeconds"] = progress_deadline_s
    spec["selector"] = {"matchLabels": {**spec["selector"].get("matchLabels", {}), COLOR: GREEN}}
    template = spec["template"]
    template["metadata"] = {
        **template.get("metadata", {}),
        "labels": {**(template["metadata"].get("labels") or {}), COLOR: GREEN},
    }
    template["metadata"].pop("annotations", None)  # blue's restartedAt etc. belong to blue
    for c in template["spec"]["containers"]:
        if c["name"] == container:
            c["image"] = image
    labels = {**(blue["metadata"].get("labels") or {}), COLOR: GREEN}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": green_name(blue["metadata"]["name"]),
            "namespace": blue["metadata"]["namespace"],
            "labels": labels,
        },
        "spec": spec,
    }


def selector_with(service: Manifest, colour: str) -> dict[str, str]:
    return {**(service["spec"].get("selector") or {}), COLOR: colour}


def selector_patch(colour: str) -> Manifest:
    """A strategic-merge patch of the Service that selects ``colour`` (the other keys unchanged)."""
    return {"spec": {"selector": {COLOR: colour}}}


def plan(
    namespace: str, blue: Manifest, service: Manifest, container: str, image: str, green_exists: bool
) -> list[PlannedChange]:
    """Every change a successful run makes to one service, in order, object by object."""
    name = blue["metadata"]["name"]
    current = container_image(blue, container)
    selector = service["spec"].get("selector") or {}
    changes: list[PlannedChange] = []
    if pod_colour(blue) != BLUE:
        changes.append(
            PlannedChange("Deployment", namespace, name, "spec.template.labels.color", pod_colour(blue), BLUE)
        )
    if selector.get(COLOR) != BLUE:
        changes.append(
            PlannedChange("Service", namespace, name, "spec.selector", selector, selector_with(service, BLUE))
        )
    if green_exists:
        changes.append(PlannedChange("Deployment", namespace, green_name(name), "(delete)", "leftover green", None))
    changes += [
        PlannedChange("Deployment", namespace, green_name(name), "(create)", None, image),
        PlannedChange(
            "Service", namespace, name, "spec.selector", selector_with(service, BLUE), selector_with(service, GREEN)
        ),
        PlannedChange("Deployment", namespace, name, f"image[{container}]", current, image),
        PlannedChange(
            "Service", namespace, name, "spec.selector", selector_with(service, GREEN), selector_with(service, BLUE)
        ),
        PlannedChange("Deployment", namespace, green_name(name), "(delete)", image, None),
    ]
    return changes


def switch_changes(namespace: str, services: Sequence[Manifest], to: str) -> list[PlannedChange]:
    """What the switch to ``to`` changes: each Service's selector, from → to."""
    return [
        PlannedChange(
            "Service",
            namespace,
            s["metadata"]["name"],
            "spec.selector",
            s["spec"].get("selector"),
            selector_with(s, to),
        )
        for s in services
    ]
