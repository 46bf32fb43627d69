"""kubectl's rollout logic, as pure functions on API objects (dicts as the API returns them).

- :func:`rollout_state`: ``kubectl rollout status`` for Deployments and StatefulSets, the same checks in the same
  order with the same messages (kubectl/pkg/polymorphichelpers/rollout_status.go);
- :func:`undo_plan`: ``kubectl rollout undo``'s client-side choice of the ReplicaSet to go back to, and the JSON
  patch it sends (kubectl/pkg/polymorphichelpers/rollback.go).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tradeops.exceptions import RolloutFailed

REVISION = "deployment.kubernetes.io/revision"
# Annotations that belong to the Deployment itself and survive a rollback; kubectl skips them when copying.
ANNOTATIONS_TO_SKIP = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
}


@dataclass(frozen=True)
class RolloutState:
    done: bool
    message: str


def rollout_state(obj: dict, kind: str | None = None) -> RolloutState:
    """Raises :class:`RolloutFailed` where kubectl fails; otherwise done or waiting, with kubectl's message.

    ``kind`` defaults to the object's own (list and watch items may not carry one: then Deployment)."""
    if (kind or obj.get("kind") or "Deployment") == "StatefulSet":
        return _statefulset(obj)
    name = obj["metadata"]["name"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if obj["metadata"].get("generation", 0) <= status.get("observedGeneration", 0):
        progressing = next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
        replicas, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
        if updated < replicas:
            return RolloutState(
                False,
                f'Waiting for deployment "{name}" rollout to finish: {updated} out of '
                f"{replicas} new replicas have been updated...",
            )
        if status.get("replicas", 0) > updated:
            return RolloutState(
                False,
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.get('replicas', 0) - updated} old replicas are pending termination...",
            )
        if status.get("availableReplicas", 0) < updated:
            return RolloutState(
                False,
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{status.get('availableReplicas', 0)} of {updated} updated replicas are "
                "available...",
            )
        return RolloutState(True, f'deployment "{name}" successfully rolled out')
    return RolloutState(False, "Waiting for deployment spec update to be observed...")


def _statefulset(obj: dict) -> RolloutState:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {"type": "RollingUpdate"}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise RolloutFailed("rollout status is only available for RollingUpdate strategy type")
    observed = status.get("observedGeneration", 0)
    if observed == 0 or obj["metadata"].get("generation", 0) > observed:
        return RolloutState(False, "Waiting for statefulset spec update to be observed...")
    replicas = spec.get("replicas", 1)
    if status.get("readyReplicas", 0) < replicas:
        return RolloutState(False, f"Waiting for {replicas - status.get('readyReplicas', 0)} pods to be ready...")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        partition = rolling.get("partition")
        if partition is not None and status.get("updatedReplicas", 0) < replicas - partition:
            return RolloutState(
                False,
                f"Waiting for partitioned roll out to finish: {status.get('updatedReplicas', 0)} "
                f"out of {replicas - partition} new pods have been updated...",
            )
        return RolloutState(
            True, f"partitioned roll out complete: {status.get('updatedReplicas', 0)} new pods have been updated..."
        )
    if status.get("updateRevision") != status.get("currentRevision"):
        return RolloutState(
            False,
            f"waiting for statefulset rolling update to complete "
            f"{status.get('updatedReplicas', 0)} pods at revision {status.get('updateRevision')}...",
        )
    return RolloutState(
        True,
        f"statefulset rolling update complete {status.get('currentReplicas', 0)} pods at "
        f"revision {status.get('currentRevision')}...",
    )


@dataclass(frozen=True)
class UndoPlan:
    from_revision: int
    to_revision: int
    patch: list[dict] | None  # None: nothing to do, the template already matches

    @property
    def skipped(self) -> bool:
        return self.patch is None


def _revision(obj: dict) -> int:
    return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0") or 0)


def _template_without_hash(rs: dict) -> dict:
    template = copy.deepcopy(rs["spec"]["template"])
    (template.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
    return template


def undo_plan(deployment: dict, replica_sets: list[dict], to_revision: int = 0) -> UndoPlan:
    """The ReplicaSet to roll back to (the previous revision, or ``to_revision``) and kubectl's patch for it."""
    name = deployment["metadata"]["name"]
    if deployment["spec"].get("paused"):
        raise RolloutFailed(
            f"you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume "
            f"deployment/{name}' and try again"
        )
    uid = deployment["metadata"]["uid"]
    owned = [
        rs
        for rs in replica_sets
        if any(ref.get("uid") == uid and ref.get("controller") for ref in rs["metadata"].get("ownerReferences") or [])
    ]
    current = _revision(deployment)
    if to_revision:
        chosen = next((rs for rs in owned if _revision(rs) == to_revision), None)
        if chosen is None:
            raise RolloutFailed(f"unable to find specified revision {to_revision} in history")
    else:
        revisions = sorted({_revision(rs) for rs in owned})
        if len(revisions) < 2:
            raise RolloutFailed(f'no rollout history found for deployment "{name}"')
        chosen = next(rs for rs in owned if _revision(rs) == revisions[-2])
    template = _template_without_hash(chosen)
    if template == deployment["spec"]["template"]:
        return UndoPlan(current, _revision(chosen), None)
    annotations = {
        k: v for k, v in (deployment["metadata"].get("annotations") or {}).items() if k in ANNOTATIONS_TO_SKIP
    }
    annotations.update(
        {k: v for k, v in (chosen["metadata"].get("annotations") or {}).items() if k not in ANNOTATIONS_TO_SKIP}
    )
    return UndoPlan(
        current,
        _revision(chosen),
        [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ],
    )
