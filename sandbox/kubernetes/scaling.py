"""How kube-controller-manager sizes the ReplicaSets of a paused Deployment: it does not roll out, but it still
scales (pkg/controller/deployment/sync.go, ``DeploymentController.scale``):

1. one active ReplicaSet (or none: then the newest) takes the whole replica count;
2. a saturated new ReplicaSet has the old active ones scaled to zero;
3. otherwise, for a rolling update, every active ReplicaSet grows or shrinks in proportion to its share of the
   deployment's previous maximum (its ``max-replicas`` annotation), leftovers to the largest
   (``GetProportion``/``getReplicaSetFraction`` in pkg/controller/deployment/util).
"""

from __future__ import annotations

DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


def _replicas(rs: dict) -> int:
    return rs["spec"]["replicas"]


def _created(rs: dict) -> str:
    return rs["metadata"]["creationTimestamp"]


def find_active_or_latest(new_rs: dict | None, old_rs: list[dict]) -> dict | None:
    """The one active ReplicaSet; with none active the new one, else the newest old one; with several, None."""
    everyone = [*old_rs, *([new_rs] if new_rs is not None else [])]
    active = [rs for rs in everyone if _replicas(rs) > 0]
    if len(active) == 1:
        return active[0]
    if not active and everyone:
        return new_rs if new_rs is not None else max(old_rs, key=_created)
    return None


def _saturated(new_rs: dict | None, replicas: int) -> bool:
    if new_rs is None:
        return False
    desired = (new_rs["metadata"].get("annotations") or {}).get(DESIRED)
    return (
        _replicas(new_rs) == replicas
        and desired == str(replicas)
        and (new_rs.get("status") or {}).get("availableReplicas", 0) == replicas
    )


def _fraction(rs: dict, replicas: int, max_surge: int, status_replicas: int) -> int:
    if replicas == 0:
        return -_replicas(rs)
    before = int((rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS) or 0) or status_replicas
    if before == 0:
        return 0
    exact = _replicas(rs) * (replicas + max_surge) / before
    return int(exact + 0.5) - _replicas(rs)  # Go's integer.RoundToInt32: halves away from zero (sizes are >= 0)


def paused_sizes(
    new_rs: dict | None, old_rs: list[dict], replicas: int, max_surge: int, rolling: bool, status_replicas: int
) -> list[tuple[dict, int]]:
    """(ReplicaSet, replicas it should have) for those whose size changes."""
    if (single := find_active_or_latest(new_rs, old_rs)) is not None:
        return [(single, replicas)] if _replicas(single) != replicas else []
    if _saturated(new_rs, replicas):
        return [(rs, 0) for rs in old_rs if _replicas(rs) > 0]
    if not rolling:
        return []
    active = [rs for rs in [*old_rs, *([new_rs] if new_rs is not None else [])] if _replicas(rs) > 0]
    allowed = replicas + max_surge if replicas > 0 else 0
    to_add = allowed - sum(_replicas(rs) for rs in active)
    if to_add == 0:
        return []
    # Largest first; among equals the newer first when growing, the older first when shrinking.
    active.sort(key=_created, reverse=to_add > 0)
    active.sort(key=_replicas, reverse=True)
    sizes, added = {}, 0
    for rs in active:
        proportion = 0
        if _replicas(rs) and to_add != added:
            fraction = _fraction(rs, replicas, max_surge, status_replicas)
            proportion = min(fraction, to_add - added) if to_add > 0 else max(fraction, to_add - added)
        sizes[rs["metadata"]["uid"]] = _replicas(rs) + proportion
        added += proportion
    largest = active[0]["metadata"]["uid"]
    sizes[largest] = max(sizes[largest] + to_add - added, 0)
    return [(rs, sizes[rs["metadata"]["uid"]]) for rs in active if sizes[rs["metadata"]["uid"]] != _replicas(rs)]
