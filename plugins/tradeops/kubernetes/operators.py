"""Operators for the runbooks' kubectl steps, through the provider's KubernetesHook (no shell, no string-built
commands). Each one is idempotent (running it again changes nothing more) and returns what it changed, so the run
has an audit record and an undo has what it needs.

Deployments are named as in ``tradeops.yaml``; their namespace and container come from there.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import TradeOpsConfig, load_config

SAVED_REPLICAS = "tradeops.io/replicas-before-scale"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_ID = "tradeops.io/restart-id"
PROFILES = ("market_hours", "off_hours", "zero", "restore")


def _check_names(config: TradeOpsConfig, names: Sequence[str]) -> None:
    known = {d.name for d in config.kubernetes.deployments}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown deployment(s) {unknown}; the TradeOps config declares {sorted(known)}")


class _KubernetesOperator(BaseOperator):
    """Shared: the connection (``connections.kubernetes`` in the config unless given) and the client."""

    ui_color = "#e3ecfa"

    def __init__(self, *, kubernetes_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id

    def client(self, config: TradeOpsConfig):
        from tradeops.kubernetes.client import KubernetesClient

        return KubernetesClient(self.kubernetes_conn_id or config.connections.kubernetes)


class ScaleDeploymentsOperator(_KubernetesOperator):
    """Scale deployments to a replica profile from the config: ``market_hours``, ``off_hours``, ``zero`` (stop
    trading), or ``restore``.

    Every scale records the count it replaced in the ``tradeops.io/replicas-before-scale`` annotation, in the same
    write as the new count; ``restore`` puts that count back and removes the annotation. A deployment already at its
    target is left alone. Returns ``[{deployment, namespace, from, to, changed}]``.
    """

    template_fields: Sequence[str] = ("deployments", "profile")

    def __init__(self, *, deployments: Sequence[str], profile: str, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)
        self.profile = profile
        self.dry_run = dry_run

    def _change(self, config: TradeOpsConfig, name: str, obj: dict) -> dict | None:
        """The strategic-merge patch that scales ``obj`` (guarded by its resourceVersion), or None if at target."""
        current = obj["spec"]["replicas"]
        guard = {"resourceVersion": obj["metadata"]["resourceVersion"]}
        if self.profile == "restore":
            saved = (obj["metadata"].get("annotations") or {}).get(SAVED_REPLICAS)
            if saved is None:
                return None
            return {"metadata": {**guard, "annotations": {SAVED_REPLICAS: None}}, "spec": {"replicas": int(saved)}}
        target = 0 if self.profile == "zero" else getattr(config.kubernetes.deployment(name).replicas, self.profile)
        if target == current:
            return None
        return {"metadata": {**guard, "annotations": {SAVED_REPLICAS: str(current)}}, "spec": {"replicas": target}}

    def execute(self, context) -> list[dict]:
        if self.profile not in PROFILES:
            raise AirflowFailException(f"profile must be one of {PROFILES}, got {self.profile!r}")
        config = load_config()
        _check_names(config, self.deployments)
        client = self.client(config)
        results = []
        for name in self.deployments:
            namespace = config.kubernetes.deployment(name).namespace

            def read(name=name, namespace=namespace) -> dict:
                return client.deployment(namespace, name)

            def change(obj: dict, name=name) -> dict | None:
                return self._change(config, name, obj)

            def write(obj: dict, body: dict, name=name, namespace=namespace) -> dict:
                return client.patch_deployment(namespace, name, body)

            if self.dry_run:
                before = read()
                patch = change(before)
                after = patch["spec"]["replicas"] if patch else before["spec"]["replicas"]
            else:
                before, obj, patch = client.update(read, change, write)
                after = obj["spec"]["replicas"]
            record = {"deployment": name, "namespace": namespace, "from": before["spec"]["replicas"], "to": after,
                      "changed": after != before["spec"]["replicas"], "dry_run": self.dry_run}
            self.log.info("%s/%s: %s -> %s replicas%s", namespace, name, record["from"], record["to"],
                          "" if record["changed"] else " (already there)")
            results.append(record)
        return results


class SetImageOperator(_KubernetesOperator):
    """Set container images (``{deployment: image}`` for the deployment's container from the config, or
    ``{"deployment/container": image}``). Every image must match ``kubernetes.allowed_image_pattern``: one that
    doesn't fails the task before anything changes. Returns ``[{deployment, container, from, to, changed}]``."""

    template_fields: Sequence[str] = ("images",)

    def __init__(self, *, images: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images = images

    def execute(self, context) -> list[dict]:
        config = load_config()
        targets = []
        for key, image in self.images.items():
            name, _, container = key.partition("/")
            _check_names(config, [name])
            targets.append((name, container or config.kubernetes.deployment(name).container_name, image))
        pattern = re.compile(config.kubernetes.allowed_image_pattern)
        refused = [image for _, _, image in targets if not pattern.match(image)]
        if refused:
            raise AirflowFailException(f"refusing image(s) outside the allowed registry/pattern "
                                       f"{config.kubernetes.allowed_image_pattern!r}: {refused}")
        client = self.client(config)
        results = []
        for name, container, image in targets:
            namespace = config.kubernetes.deployment(name).namespace
            before = client.deployment(namespace, name)
            containers = {c["name"]: c["image"] for c in before["spec"]["template"]["spec"]["containers"]}
            if container not in containers:
                raise AirflowFailException(f"deployment {namespace}/{name} has no container {container!r} "
                                           f"(it has {sorted(containers)})")
            changed = containers[container] != image
            if changed:
                client.patch_deployment(namespace, name, {"spec": {"template": {"spec": {"containers": [
                    {"name": container, "image": image}]}}}})
            self.log.info("%s/%s %s: %s -> %s%s", namespace, name, container, containers[container], image,
                          "" if changed else " (already set)")
            results.append({"deployment": name, "namespace": namespace, "container": container,
                            "from": containers[container], "to": image, "changed": changed})
        return results


class RolloutRestartOperator(_KubernetesOperator):
    """``kubectl rollout restart``: stamp ``kubectl.kubernetes.io/restartedAt`` on the pod template. A paused
    deployment is refused, as kubectl does. A retry of the same task run does not restart twice (the template also
    records which run restarted it). Returns ``[{deployment, restarted_at, changed}]``."""

    template_fields: Sequence[str] = ("deployments",)

    def __init__(self, *, deployments: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)

    def execute(self, context) -> list[dict]:
        config = load_config()
        _check_names(config, self.deployments)
        client = self.client(config)
        restart_id = f"{context['ti'].dag_id}/{context['ti'].run_id}"
        results = []
        for name in self.deployments:
            namespace = config.kubernetes.deployment(name).namespace
            obj = client.deployment(namespace, name)
            if obj["spec"].get("paused"):
                raise AirflowFailException(f"can't restart paused deployment {namespace}/{name} (run rollout resume "
                                           "first)")
            annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
            if annotations.get(RESTART_ID) == restart_id:
                results.append({"deployment": name, "namespace": namespace,
                                "restarted_at": annotations.get(RESTARTED_AT), "changed": False})
                continue
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            client.patch_deployment(namespace, name, {"spec": {"template": {"metadata": {"annotations": {
                RESTARTED_AT: stamp, RESTART_ID: restart_id}}}}})
            self.log.info("%s/%s restarted at %s", namespace, name, stamp)
            results.append({"deployment": name, "namespace": namespace, "restarted_at": stamp, "changed": True})
        return results


class RolloutUndoOperator(_KubernetesOperator):
    """``kubectl rollout undo``: back to the previous revision, or ``to_revision``, with kubectl's client-side
    algorithm. Refuses a paused deployment; does nothing when the template already matches. Returns
    ``{deployment, from_revision, to_revision, image_before, image_after, changed}``."""

    template_fields: Sequence[str] = ("deployment", "to_revision")

    def __init__(self, *, deployment: str, to_revision: int | str = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.to_revision = to_revision

    def execute(self, context) -> dict:
        from tradeops.kubernetes.rollout import RolloutFailed, undo_plan

        config = load_config()
        _check_names(config, [self.deployment])
        namespace = config.kubernetes.deployment(self.deployment).namespace
        client = self.client(config)
        obj = client.deployment(namespace, self.deployment)
        selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"].get("matchLabels", {}).items())
        try:
            plan = undo_plan(obj, client.replica_sets(namespace, selector), int(self.to_revision or 0))
        except RolloutFailed as err:
            raise AirflowFailException(f"{namespace}/{self.deployment}: {err}") from None
        image_before = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        if plan.skipped:
            self.log.info("skipped rollback (current template already matches revision %d)", plan.to_revision)
            image_after = image_before
        else:
            after = client.patch_deployment(namespace, self.deployment, plan.patch)
            image_after = after["spec"]["template"]["spec"]["containers"][0]["image"]
            self.log.info("%s/%s rolled back from revision %d to %d (%s -> %s)", namespace, self.deployment,
                          plan.from_revision, plan.to_revision, image_before, image_after)
        return {"deployment": self.deployment, "namespace": namespace, "from_revision": plan.from_revision,
                "to_revision": plan.to_revision, "image_before": image_before, "image_after": image_after,
                "changed": not plan.skipped}


class PatchServiceOperator(_KubernetesOperator):
    """Change a Service's ``type`` (``ClusterIP`` isolates it from outside traffic) and/or replace its ``selector``
    (blue-green switching). Returns ``{service, before, after, changed}`` (``before`` is what an undo restores)."""

    template_fields: Sequence[str] = ("service", "namespace", "service_type", "selector")

    def __init__(self, *, service: str, namespace: str | None = None, service_type: str | None = None,
                 selector: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if service_type is None and selector is None:
            raise ValueError("PatchServiceOperator needs service_type and/or selector")
        self.service = service
        self.namespace = namespace
        self.service_type = service_type
        self.selector = selector

    def execute(self, context) -> dict:
        config = load_config()
        namespace = self.namespace or config.kubernetes.namespaces[0].name
        client = self.client(config)
        current = client.service(namespace, self.service)
        before = {"type": current["spec"].get("type"), "selector": current["spec"].get("selector") or {}}
        operations = []
        if self.service_type is not None and before["type"] != self.service_type:
            if self.service_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
                raise AirflowFailException(f"unsupported service type {self.service_type!r}")
            operations.append({"op": "replace", "path": "/spec/type", "value": self.service_type})
        if self.selector is not None and before["selector"] != self.selector:
            operations.append({"op": "replace", "path": "/spec/selector", "value": dict(self.selector)})
        after = before
        if operations:
            patched = client.patch_service(namespace, self.service, operations)
            after = {"type": patched["spec"].get("type"), "selector": patched["spec"].get("selector") or {}}
        self.log.info("service %s/%s: %s -> %s", namespace, self.service, before, after)
        return {"service": self.service, "namespace": namespace, "before": before, "after": after,
                "changed": bool(operations)}


class CollectDiagnosticsOperator(_KubernetesOperator):
    """Collect the last ``tail_lines`` log lines of every container of every pod of the given deployments, plus the
    namespace's recent events, into one ``.tar.gz`` under the reports folder. Sizes are bounded: at most
    ``max_bytes_per_container`` per log and ``max_total_bytes`` in all (what is cut is marked in the manifest).
    Returns ``{archive, files, bytes, truncated, errors}``."""

    template_fields: Sequence[str] = ("deployments",)

    def __init__(self, *, deployments: Sequence[str], tail_lines: int = 1000,
                 max_bytes_per_container: int = 1024 * 1024, max_total_bytes: int = 20 * 1024 * 1024,
                 max_events: int = 500, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)
        self.tail_lines = tail_lines
        self.max_bytes_per_container = max_bytes_per_container
        self.max_total_bytes = max_total_bytes
        self.max_events = max_events

    def execute(self, context) -> dict:
        from tradeops.kubernetes.client import KubernetesError
        from tradeops.reporting.files import reports_dir

        config = load_config()
        _check_names(config, self.deployments)
        client = self.client(config)
        files: dict[str, bytes] = {}
        manifest: dict[str, Any] = {"collected_at": datetime.now(UTC).isoformat(), "logs": [], "errors": [],
                                    "truncated": False}
        budget = self.max_total_bytes
        namespaces = []
        for name in self.deployments:
            deployment = config.kubernetes.deployment(name)
            namespaces.append(deployment.namespace)
            try:
                obj = client.deployment(deployment.namespace, name)
                labels = obj["spec"]["selector"].get("matchLabels", {})
                pods = client.pods(deployment.namespace, ",".join(f"{k}={v}" for k, v in labels.items()))
            except KubernetesError as err:
                manifest["errors"].append(str(err))
                continue
            for pod in pods:
                for container in pod["spec"]["containers"]:
                    path = f"logs/{name}/{pod['metadata']['name']}/{container['name']}.log"
                    if budget <= 0:
                        manifest["truncated"] = True
                        manifest["logs"].append({"file": path, "skipped": "total size budget reached"})
                        continue
                    limit = min(self.max_bytes_per_container, budget)
                    try:
                        text = client.pod_log(deployment.namespace, pod["metadata"]["name"], container["name"],
                                              self.tail_lines, limit).encode()
                    except KubernetesError as err:
                        manifest["errors"].append(str(err))
                        continue
                    text = text[:limit]
                    budget -= len(text)
                    files[path] = text
                    cut = len(text) >= limit
                    manifest["truncated"] |= cut
                    manifest["logs"].append({"file": path, "bytes": len(text), "truncated": cut})
        for namespace in dict.fromkeys(namespaces):
            try:
                events = client.events(namespace)
            except KubernetesError as err:
                manifest["errors"].append(str(err))
                continue
            events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
            files[f"events/{namespace}.json"] = json.dumps(events[-self.max_events:], indent=1).encode()
        files["manifest.json"] = json.dumps(manifest, indent=2).encode()

        folder = reports_dir() / "diagnostics"
        folder.mkdir(parents=True, exist_ok=True)
        ti = context["ti"]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{ti.dag_id}_{ti.run_id}_{ti.task_id}")
        archive = folder / f"{safe}.tar.gz"
        tmp = archive.with_suffix(".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for path, data in files.items():
                info = tarfile.TarInfo(path)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        tmp.replace(archive)
        total = sum(len(data) for data in files.values())
        self.log.info("Diagnostics: %d files, %d bytes (uncompressed) in %s%s", len(files), total, archive,
                      " (truncated)" if manifest["truncated"] else "")
        return {"archive": str(archive), "files": len(files), "bytes": total, "truncated": manifest["truncated"],
                "errors": manifest["errors"]}
