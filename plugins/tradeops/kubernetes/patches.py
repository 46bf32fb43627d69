"""What TradeOps' Kubernetes operators write, as pure functions of the object they read: each returns the patch to
send, or None when the object is already as wanted, so running an operator again writes nothing."""

from __future__ import annotations

from typing import Any

SAVED_REPLICAS = "tradeops.io/replicas-before-scale"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_ID = "tradeops.io/restart-id"
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
Manifest = dict[str, Any]


def label_selector(workload: Manifest) -> str:
    """A workload's ``spec.selector.matchLabels`` as a label selector (``app=x,tier=y``)."""
    return ",".join(f"{k}={v}" for k, v in workload["spec"]["selector"].get("matchLabels", {}).items())


def scale_patch(deployment: Manifest, target: int | None) -> Manifest | None:
    """The strategic-merge patch that scales ``deployment`` to ``target`` replicas and records the count it replaces
    in ``tradeops.io/replicas-before-scale``, or (``target`` None) puts the recorded count back and removes the
    record. Guarded by the resourceVersion read; None when there is nothing to do."""
    current = deployment["spec"]["replicas"]
    guard = {"resourceVersion": deployment["metadata"]["resourceVersion"]}
    if target is None:
        saved = (deployment["metadata"].get("annotations") or {}).get(SAVED_REPLICAS)
        if saved is None:
            return None
        return {"metadata": {**guard, "annotations": {SAVED_REPLICAS: None}}, "spec": {"replicas": int(saved)}}
    if target == current:
        return None
    return {"metadata": {**guard, "annotations": {SAVED_REPLICAS: str(current)}}, "spec": {"replicas": target}}


def restart_patch(deployment: Manifest, restart_id: str, stamp: str) -> Manifest | None:
    """``kubectl rollout restart``'s patch (``restartedAt`` on the pod template), also recording ``restart_id``;
    None when the template already carries that id (a retry of the same restart)."""
    annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    if annotations.get(RESTART_ID) == restart_id:
        return None
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp, RESTART_ID: restart_id}}}}}


def service_patch(service: Manifest, service_type: str | None, selector: dict[str, str] | None) -> list[Manifest]:
    """The JSON patch that gives ``service`` the ``service_type`` and ``selector`` asked for (None: leave as is);
    empty when it has them already. Raises ``ValueError`` for a type TradeOps does not set."""
    spec = service["spec"]
    operations: list[Manifest] = []
    if service_type is not None and spec.get("type") != service_type:
        if service_type not in SERVICE_TYPES:
            raise ValueError(f"unsupported service type {service_type!r}")
        operations.append({"op": "replace", "path": "/spec/type", "value": service_type})
    if selector is not None and (spec.get("selector") or {}) != selector:
        operations.append({"op": "replace", "path": "/spec/selector", "value": dict(selector)})
    return operations
