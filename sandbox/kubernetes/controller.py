"""Controllers that make the sandbox behave like a cluster: deployments roll out through ReplicaSets under the
rolling-update rules, pods become ready over time (or never, for an image the sandbox is told it cannot pull),
status fields and conditions move as kube-controller-manager moves them, and ``ProgressDeadlineExceeded`` is set
when a rollout stops progressing. StatefulSets get the basic ordered behaviour; owned objects are garbage-collected.

Everything reconciles every ``TICK_S`` from the store's state plus two in-memory clocks: when each pod was born and
became ready, and when each deployment last progressed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sandbox.kubernetes.objects import safe_encode, template_hash
from sandbox.kubernetes.resources import lookup
from sandbox.kubernetes.scaling import paused_sizes
from sandbox.kubernetes.store import Store, now_rfc3339

log = logging.getLogger(__name__)
TICK_S = 0.1
READY_AFTER = "sandbox.tradeops.io/ready-after-seconds"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"

PODS = lookup("", "v1", "pods")
EVENTS = lookup("", "v1", "events")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
REPLICASETS = lookup("apps", "v1", "replicasets")
STATEFULSETS = lookup("apps", "v1", "statefulsets")


def _image_id(image: str) -> str:
    """A running container's imageID, as the kubelet reports it: the image's name and a digest."""
    return f"{image.split(':')[0]}@sha256:{safe_encode(image.encode(), 16)}"


def _owner_ref(obj: dict) -> dict:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controlled_by(obj: dict, owner: dict) -> bool:
    return any(
        ref.get("uid") == owner["metadata"]["uid"] and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def _revision(rs: dict) -> int:
    return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0)


def _same_template(rs_template: dict, template: dict) -> bool:
    stripped = copy.deepcopy(rs_template)
    (stripped.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
    return stripped == template


def _resolve(value, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _omit_zero(status: dict, keep: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in status.items() if v not in (0, None) or k in keep}


class Controller:
    def __init__(self, store: Store, ready_seconds=lambda: 1.0, unpullable=lambda image: False, paused=lambda: False):
        self.store = store
        self.paused = paused
        self.ready_seconds = ready_seconds
        self.unpullable = unpullable
        self.born: dict[str, float] = {}
        self.ready_since: dict[str, float] = {}
        self.progress: dict[str, tuple[tuple, float]] = {}
        self.warned: set[str] = set()
        self.failed: set[str] = set()
        self._pods_by_owner: dict[str, list[dict]] = {}

    # --- loop -----------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.paused():
                try:
                    self.tick()
                except Exception:  # the loop outlives any error: a dead controller is a frozen cluster
                    log.exception("controller tick failed; next tick in %ss", TICK_S)
            try:
                await asyncio.wait_for(stop.wait(), TICK_S)
            except TimeoutError:
                pass

    def tick(self) -> None:
        now = time.monotonic()
        for deployment in self.store.list(DEPLOYMENTS):
            self._reconcile(self._deployment, deployment, now)
        # Pods by controller, listed once a tick: a pod is only ever created or deleted by its own controller below,
        # so each controller's view stays exact (listing per controller copied the whole store dozens of times).
        self._pods_by_owner.clear()
        for pod in self.store.list(PODS):
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("controller"):
                    self._pods_by_owner.setdefault(ref.get("uid"), []).append(pod)
        for sts in self.store.list(STATEFULSETS):
            self._reconcile(self._statefulset, sts, now)
        for rs in self.store.list(REPLICASETS):
            self._reconcile(self._replicaset, rs, now)
        for pod in self.store.list(PODS):
            self._reconcile(self._pod, pod, now)
        self._collect_garbage()

    def _reconcile(self, reconcile: Callable[[dict, float], None], obj: dict, now: float) -> None:
        """One object's reconcile. As in kube-controller-manager, an error is logged (once per object and error)
        and the object is tried again next tick: one bad reconcile (an object deleted through the API meanwhile,
        a spec the sandbox does not model) must never stop the whole cluster from reconciling."""
        try:
            reconcile(obj, now)
        except Exception as err:
            meta = obj.get("metadata") or {}
            key = f"{obj.get('kind')}/{meta.get('namespace')}/{meta.get('name')}: {type(err).__name__}: {err}"
            if key not in self.failed:
                self.failed.add(key)
                log.exception("reconcile of %s failed; retried every tick", key)

    def settle(self, ticks: int = 50) -> None:
        """Run to a steady state with every existing and new pod already ready (seeding a running platform)."""
        long_ago = time.monotonic() - 3600
        for _ in range(ticks):
            for pod in self.store.list(PODS):
                uid = pod["metadata"]["uid"]
                self.born[uid] = min(self.born.get(uid, long_ago), long_ago)
                self.ready_since.setdefault(uid, long_ago)
            for key in self.progress:
                self.progress[key] = (self.progress[key][0], time.monotonic())
            before = self.store.rv
            self.tick()
            if self.store.rv == before:
                return

    # --- events ---------------------------------------------------------------------------------------------

    def event(
        self, obj: dict, reason: str, message: str, kind: str = "Normal", component: str = "deployment-controller"
    ) -> None:
        meta = obj["metadata"]
        stamp = now_rfc3339()
        self.store.create(
            EVENTS,
            {
                "kind": "Event",
                "apiVersion": "v1",
                "metadata": {
                    "name": f"{meta['name']}.{secrets.token_hex(8)}",
                    "namespace": meta.get("namespace", "default"),
                },
                "involvedObject": {
                    "kind": obj["kind"],
                    "namespace": meta.get("namespace"),
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "apiVersion": obj["apiVersion"],
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": reason,
                "message": message,
                "source": {"component": component},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
                "type": kind,
                "eventTime": None,
                "reportingComponent": component,
                "reportingInstance": "",
            },
        )

    # --- deployments ----------------------------------------------------------------------------------------

    def _set_rs_replicas(self, deployment: dict, rs: dict, replicas: int, max_surge: int | None = None) -> dict:
        old = rs["spec"]["replicas"]
        if old == replicas:
            return rs
        rs["spec"]["replicas"] = replicas
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations[DESIRED] = str(deployment["spec"]["replicas"])
        if max_surge is not None:
            annotations[MAX_REPLICAS] = str(deployment["spec"]["replicas"] + max_surge)
        rs = self.store.update(REPLICASETS, rs, check_version=False)
        verb = "up" if replicas > old else "down"
        self.event(
            deployment,
            "ScalingReplicaSet",
            f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {replicas}",
        )
        return rs

    def _deployment(self, d: dict, now: float) -> None:
        meta, spec = d["metadata"], d["spec"]
        namespace, replicas = meta["namespace"], spec["replicas"]
        template = spec["template"]
        all_rs = [rs for rs in self.store.list(REPLICASETS, namespace) if _controlled_by(rs, d)]
        new_rs = next((rs for rs in all_rs if _same_template(rs["spec"]["template"], template)), None)
        max_revision = max((_revision(rs) for rs in all_rs), default=0)
        strategy = spec.get("strategy") or {}
        rolling = strategy.get("rollingUpdate") or {}
        recreate = strategy.get("type") == "Recreate"
        max_surge = 0 if recreate else _resolve(rolling.get("maxSurge", "25%"), replicas, True)
        max_unavailable = 0 if recreate else _resolve(rolling.get("maxUnavailable", "25%"), replicas, False)
        if not recreate and max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1
        created = False

        if new_rs is None and not spec.get("paused"):
            old_pods = sum(rs["spec"]["replicas"] for rs in all_rs)
            pod_hash = template_hash(template)
            rs_template = copy.deepcopy(template)
            rs_template["metadata"].setdefault("labels", {})["pod-template-hash"] = pod_hash
            selector = copy.deepcopy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
            start = replicas if old_pods == 0 and not recreate else 0
            new_rs = self.store.create(
                REPLICASETS,
                {
                    "kind": "ReplicaSet",
                    "apiVersion": "apps/v1",
                    "metadata": {
                        "name": f"{meta['name']}-{pod_hash}",
                        "namespace": namespace,
                        "labels": dict(rs_template["metadata"]["labels"]),
                        "annotations": {
                            DESIRED: str(replicas),
                            MAX_REPLICAS: str(replicas + max_surge),
                            REVISION: str(max_revision + 1),
                        },
                        "ownerReferences": [_owner_ref(d)],
                        "generation": 1,
                    },
                    "spec": {
                        "replicas": start,
                        "minReadySeconds": spec.get("minReadySeconds", 0),
                        "selector": selector,
                        "template": rs_template,
                    },
                    "status": {"replicas": 0},
                },
            )
            created = True
            all_rs.append(new_rs)
            if start:
                self.event(
                    d, "ScalingReplicaSet", f"Scaled up replica set {new_rs['metadata']['name']} from 0 to {start}"
                )
        elif new_rs is not None and _revision(new_rs) < max_revision:
            # A rollback to an older template: the old ReplicaSet becomes the newest revision, and remembers.
            annotations = new_rs["metadata"].setdefault("annotations", {})
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join([*history, str(_revision(new_rs))])
            annotations[REVISION] = str(max_revision + 1)
            new_rs = self.store.update(REPLICASETS, new_rs, check_version=False)

        if new_rs is not None:
            revision = str(_revision(new_rs))
            if (meta.get("annotations") or {}).get(REVISION) != revision:
                meta.setdefault("annotations", {})[REVISION] = revision
                d = self.store.update(DEPLOYMENTS, d, check_version=False)
                meta, spec = d["metadata"], d["spec"]

        old_rs = [rs for rs in all_rs if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        if new_rs is not None and not spec.get("paused"):
            new_rs = self._scale(d, new_rs, old_rs, replicas, max_surge, max_unavailable, recreate)
        elif spec.get("paused"):  # paused deployments do not roll out, but they still scale
            status_replicas = (d.get("status") or {}).get("replicas", 0)
            for rs, size in paused_sizes(new_rs, old_rs, replicas, max_surge, not recreate, status_replicas):
                scaled = self._set_rs_replicas(d, rs, size, max_surge)
                if new_rs is not None and scaled["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                    new_rs = scaled
        self._cleanup(d, old_rs)
        self._deployment_status(d, new_rs, replicas, max_unavailable, now, created)

    def _scale(
        self,
        d: dict,
        new_rs: dict,
        old_rs: list[dict],
        replicas: int,
        max_surge: int,
        max_unavailable: int,
        recreate: bool,
    ) -> dict:
        old_total = sum(rs["spec"]["replicas"] for rs in old_rs)
        if recreate:
            if old_total:
                for rs in old_rs:
                    self._set_rs_replicas(d, rs, 0)
                return new_rs
            if sum(rs.get("status", {}).get("replicas", 0) for rs in old_rs):
                return new_rs  # wait for the old pods to be gone
            return self._set_rs_replicas(d, new_rs, replicas)

        current = new_rs["spec"]["replicas"]
        if current > replicas or old_total == 0:
            target = replicas
        else:
            room = replicas + max_surge - (current + old_total)
            target = min(replicas, current + max(room, 0))
        new_rs = self._set_rs_replicas(d, new_rs, target)

        min_available = replicas - max_unavailable
        all_pods = new_rs["spec"]["replicas"] + old_total
        new_unavailable = new_rs["spec"]["replicas"] - new_rs.get("status", {}).get("availableReplicas", 0)
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return new_rs
        old_rs = sorted(old_rs, key=lambda rs: rs["metadata"]["creationTimestamp"])
        for rs in old_rs:  # unhealthy old replicas go first: they serve nobody
            unhealthy = rs["spec"]["replicas"] - rs.get("status", {}).get("availableReplicas", 0)
            if unhealthy > 0 and budget > 0:
                cut = min(unhealthy, budget)
                budget -= cut
                self._set_rs_replicas(d, rs, rs["spec"]["replicas"] - cut)
        available = new_rs.get("status", {}).get("availableReplicas", 0) + sum(
            rs.get("status", {}).get("availableReplicas", 0) for rs in old_rs
        )
        remaining = min(available - min_available, budget)
        for rs in self.store.list(REPLICASETS, d["metadata"]["namespace"]):
            if remaining <= 0:
                break
            if rs["metadata"]["uid"] in {o["metadata"]["uid"] for o in old_rs} and rs["spec"]["replicas"] > 0:
                cut = min(rs["spec"]["replicas"], remaining)
                remaining -= cut
                self._set_rs_replicas(d, rs, rs["spec"]["replicas"] - cut)
        return new_rs

    def _cleanup(self, d: dict, old_rs: list[dict]) -> None:
        limit = d["spec"].get("revisionHistoryLimit", 10)
        idle = sorted(
            (rs for rs in old_rs if rs["spec"]["replicas"] == 0 and not rs.get("status", {}).get("replicas")),
            key=_revision,
        )
        for rs in idle[: max(len(idle) - limit, 0)]:
            self.store.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _deployment_status(
        self, d: dict, new_rs: dict | None, replicas: int, max_unavailable: int, now: float, created: bool
    ) -> None:
        namespace = d["metadata"]["namespace"]
        all_rs = [rs for rs in self.store.list(REPLICASETS, namespace) if _controlled_by(rs, d)]
        pods = sum(rs.get("status", {}).get("replicas", 0) for rs in all_rs)
        ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in all_rs)
        available = sum(rs.get("status", {}).get("availableReplicas", 0) for rs in all_rs)
        updated = new_rs.get("status", {}).get("replicas", 0) if new_rs else 0
        old = [rs for rs in all_rs if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        old_pods = sum(rs.get("status", {}).get("replicas", 0) for rs in old)
        stamp = now_rfc3339()
        conditions = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}

        def condition(kind: str, status: str, reason: str, message: str, progressed: bool) -> None:
            previous = conditions.get(kind)
            if (
                previous
                and (previous["status"], previous["reason"], previous["message"]) == (status, reason, message)
                and not progressed
            ):
                return
            conditions[kind] = {
                "type": kind,
                "status": status,
                "lastUpdateTime": stamp,
                "lastTransitionTime": previous["lastTransitionTime"]
                if previous and previous["status"] == status
                else stamp,
                "reason": reason,
                "message": message,
            }

        min_available = replicas - max_unavailable
        if available >= min_available:
            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", False)
        else:
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                False,
            )

        uid = d["metadata"]["uid"]
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        signature = (
            rs_name,
            new_rs["spec"]["replicas"] if new_rs else 0,
            updated,
            available,
            old_pods,
            sum(rs["spec"]["replicas"] for rs in old),
        )
        last_signature, last_progress = self.progress.get(uid, (None, now))
        progressed = signature != last_signature
        if progressed:
            self.progress[uid] = (signature, now)
            last_progress = now
        complete = updated == replicas and pods == replicas and available == replicas and old_pods == 0
        deadline = d["spec"].get("progressDeadlineSeconds") or 600  # the API server defaults a null to 600
        current = conditions.get("Progressing")
        if d["spec"].get("paused"):
            condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", False)
        elif created:
            condition("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"', True)
        elif complete:
            condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                progressed and (current or {}).get("reason") != "NewReplicaSetAvailable",
            )
        elif progressed:
            condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.', True)
        elif now - last_progress > deadline and (current or {}).get("reason") != "ProgressDeadlineExceeded":
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                True,
            )

        status = _omit_zero(
            {
                "observedGeneration": d["metadata"].get("generation", 1),
                "replicas": pods,
                "updatedReplicas": updated,
                "readyReplicas": ready,
                "availableReplicas": available,
                "unavailableReplicas": max(replicas - available, 0),
            }
        )
        status["conditions"] = [conditions[k] for k in ("Available", "Progressing") if k in conditions]
        if status != d.get("status"):
            latest = self.store.get(DEPLOYMENTS, namespace, d["metadata"]["name"])
            if latest is not None and latest["metadata"].get("generation") == d["metadata"].get("generation"):
                latest["status"] = status
                self.store.update(DEPLOYMENTS, latest, check_version=False)

    # --- replica sets and pods ------------------------------------------------------------------------------

    def _owned_pods(self, owner: dict) -> list[dict]:
        return list(self._pods_by_owner.get(owner["metadata"]["uid"], []))

    def _is_ready(self, pod: dict) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or []
        )

    def _is_available(self, pod: dict, min_ready: float, now: float) -> bool:
        since = self.ready_since.get(pod["metadata"]["uid"])
        return self._is_ready(pod) and since is not None and now - since >= min_ready

    def _new_pod(self, owner: dict, template: dict, name: str, extra_labels: dict | None = None) -> dict:
        metadata = copy.deepcopy(template.get("metadata") or {})
        metadata.pop("creationTimestamp", None)
        metadata.update(
            {"name": name, "namespace": owner["metadata"]["namespace"], "ownerReferences": [_owner_ref(owner)]}
        )
        metadata.setdefault("labels", {}).update(extra_labels or {})
        spec = copy.deepcopy(template["spec"])
        spec.setdefault("serviceAccountName", "default")
        spec["nodeName"] = "sandbox-node-1"
        pod = self.store.create(
            PODS,
            {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": metadata,
                "spec": spec,
                "status": {"phase": "Pending", "qosClass": "BestEffort"},
            },
        )
        self.born[pod["metadata"]["uid"]] = time.monotonic()
        self.event(owner, "SuccessfulCreate", f"Created pod: {name}", component=f"{owner['kind'].lower()}-controller")
        return pod

    def _replicaset(self, rs: dict, now: float) -> None:
        pods = self._owned_pods(rs)
        want = rs["spec"]["replicas"]
        for _ in range(want - len(pods)):
            pods.append(
                self._new_pod(
                    rs, rs["spec"]["template"], f"{rs['metadata']['name']}-{safe_encode(secrets.token_bytes(8), 5)}"
                )
            )
        if len(pods) > want:
            victims = sorted(pods, key=lambda p: (self._is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in victims[: len(pods) - want]:
                self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.event(
                    rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", component="replicaset-controller"
                )
                pods.remove(pod)
        min_ready = rs["spec"].get("minReadySeconds", 0)
        status = _omit_zero(
            {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": sum(self._is_ready(p) for p in pods),
                "availableReplicas": sum(self._is_available(p, min_ready, now) for p in pods),
                "observedGeneration": rs["metadata"].get("generation", 1),
            },
            keep=("replicas",),
        )
        if status != rs.get("status"):
            latest = self.store.get(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            if latest is not None:
                latest["status"] = status
                self.store.update(REPLICASETS, latest, check_version=False)

    def _pod(self, pod: dict, now: float) -> None:
        uid = pod["metadata"]["uid"]
        born = self.born.setdefault(uid, now)
        annotations = pod["metadata"].get("annotations") or {}
        ready_after = float(annotations.get(READY_AFTER, self.ready_seconds()))
        containers = pod["spec"].get("containers") or []
        blocked = [c for c in containers if self.unpullable(c.get("image", ""))]
        created = pod["metadata"]["creationTimestamp"]
        started = datetime.fromtimestamp(time.time() - (now - born), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = copy.deepcopy(pod.get("status") or {})
        if blocked:
            ready, phase = False, "Pending"
            states = {
                c["name"]: {
                    "waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{c["image"]}"'}
                }
                if c in blocked
                else {"running": {"startedAt": started}}
                for c in containers
            }
            if uid not in self.warned and now - born > 0.5:
                self.warned.add(uid)
                for c in blocked:
                    self.event(
                        pod,
                        "Failed",
                        f'Failed to pull image "{c["image"]}": rpc error: code = NotFound '
                        f"desc = failed to pull and unpack image: not found",
                        kind="Warning",
                        component="kubelet",
                    )
        elif now - born >= ready_after:
            ready, phase = True, "Running"
            states = {c["name"]: {"running": {"startedAt": started}} for c in containers}
        else:
            ready, phase = False, "Pending"
            states = {c["name"]: {"waiting": {"reason": "ContainerCreating"}} for c in containers}
        if ready:
            self.ready_since.setdefault(uid, now)
        else:
            self.ready_since.pop(uid, None)
        previous = {c["type"]: c for c in status.get("conditions") or []}

        def cond(kind: str, value: bool) -> dict:
            text = "True" if value else "False"
            old = previous.get(kind)
            since = old["lastTransitionTime"] if old and old["status"] == text else now_rfc3339()
            return {"type": kind, "status": text, "lastProbeTime": None, "lastTransitionTime": since}

        status.update(
            {
                "phase": phase,
                "conditions": [
                    cond("Initialized", True),
                    cond("Ready", ready),
                    cond("ContainersReady", ready),
                    cond("PodScheduled", True),
                ],
                "hostIP": "10.0.0.11",
                "podIP": f"10.244.0.{int(uid.replace('-', '')[:6], 16) % 250 + 2}",
                "startTime": created,
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "imageID": "" if c in blocked else _image_id(c.get("image", "")),
                        "ready": ready and c not in blocked,
                        "restartCount": 0,
                        "started": c not in blocked and ready,
                        "state": states[c["name"]],
                    }
                    for c in containers
                ],
            }
        )
        if status != pod.get("status"):
            pod["status"] = status
            self.store.update(PODS, pod, check_version=False)

    # --- stateful sets --------------------------------------------------------------------------------------

    def _statefulset(self, sts: dict, now: float) -> None:
        meta, spec = sts["metadata"], sts["spec"]
        replicas = spec["replicas"]
        update_revision = f"{meta['name']}-{template_hash(spec['template'])}"
        status = copy.deepcopy(sts.get("status") or {})
        current_revision = status.get("currentRevision") or update_revision
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
        pods = {int(p["metadata"]["name"].rsplit("-", 1)[1]): p for p in self._owned_pods(sts)}

        def revision(pod: dict) -> str:
            return pod["metadata"].get("labels", {}).get("controller-revision-hash", "")

        for ordinal in sorted(pods, reverse=True):
            if ordinal >= replicas:
                self.store.delete(PODS, meta["namespace"], pods.pop(ordinal)["metadata"]["name"])
                break
        for ordinal in range(replicas):
            if ordinal not in pods:
                if all(self._is_ready(pods[o]) for o in range(ordinal) if o in pods) and len(pods) == ordinal:
                    wanted = update_revision if ordinal >= partition else current_revision
                    pods[ordinal] = self._new_pod(
                        sts,
                        spec["template"],
                        f"{meta['name']}-{ordinal}",
                        {
                            "controller-revision-hash": wanted,
                            "statefulset.kubernetes.io/pod-name": f"{meta['name']}-{ordinal}",
                        },
                    )
                break
        outdated = [o for o, p in pods.items() if o >= partition and revision(p) != update_revision]
        if outdated and all(self._is_ready(p) for p in pods.values()) and len(pods) == replicas:
            victim = pods.pop(max(outdated))
            self.store.delete(PODS, meta["namespace"], victim["metadata"]["name"])
        ready = sum(self._is_ready(p) for p in pods.values())
        updated = sum(revision(p) == update_revision for p in pods.values())
        if updated == replicas and ready == replicas:
            current_revision = update_revision
        new_status = _omit_zero(
            {
                "observedGeneration": meta.get("generation", 1),
                "replicas": len(pods),
                "readyReplicas": ready,
                "currentReplicas": sum(revision(p) == current_revision for p in pods.values()),
                "updatedReplicas": updated,
                "availableReplicas": ready,
                "currentRevision": current_revision,
                "updateRevision": update_revision,
                "collisionCount": 0,
            },
            keep=("replicas", "collisionCount"),
        )
        if new_status != sts.get("status"):
            latest = self.store.get(STATEFULSETS, meta["namespace"], meta["name"])
            if latest is not None and latest["metadata"].get("generation") == meta.get("generation"):
                latest["status"] = new_status
                self.store.update(STATEFULSETS, latest, check_version=False)

    # --- garbage collection ---------------------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        alive = {
            obj["metadata"]["uid"]
            for rtype in (DEPLOYMENTS, REPLICASETS, STATEFULSETS)
            for obj in self.store.list(rtype)
        }
        for rtype in (REPLICASETS, PODS):
            for obj in self.store.list(rtype):
                owners = [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("controller")]
                if owners and not any(uid in alive for uid in owners):
                    self.store.delete(rtype, obj["metadata"]["namespace"], obj["metadata"]["name"])
