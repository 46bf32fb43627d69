"""Operators for the runbooks' kubectl steps, through the provider's KubernetesHook (no shell, no string-built
commands). Each one is idempotent (running it again changes nothing more) and returns what it changed, so the run
has an audit record and an undo has what it needs.

Deployments are named as in ``tradeops.yaml``; their namespace and container come from there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from tradeops.config import TradeOpsConfig, load_config
from tradeops.kubernetes.patches import RESTARTED_AT, label_selector, restart_patch, scale_patch, service_patch

if TYPE_CHECKING:
    from airflow.sdk import Context

    from tradeops.kubernetes.diagnostics import DiagnosticsBundle
    from tradeops.kubernetes.hooks import KubernetesApiHook

PROFILES = ("market_hours", "off_hours", "zero", "restore")


def _check_names(config: TradeOpsConfig, names: Sequence[str]) -> None:
    known = {d.name for d in config.kubernetes.deployments}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown deployment(s) {unknown}; the TradeOps config declares {sorted(known)}")


class _KubernetesOperator(BaseOperator):
    """Shared: the cluster's hook, on ``kubernetes_conn_id`` (the config's ``connections.kubernetes`` unless given).

    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    ui_color = "#e3ecfa"

    def __init__(self, *, kubernetes_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def hook(self) -> KubernetesApiHook:
        from tradeops.kubernetes.hooks import KubernetesApiHook

        return KubernetesApiHook(self.kubernetes_conn_id or load_config().connections.kubernetes)


class ScaleDeploymentsOperator(_KubernetesOperator):
    """Scale deployments to a replica profile from the config: ``market_hours``, ``off_hours``, ``zero`` (stop
    trading), or ``restore``.

    Every scale records the count it replaced in the ``tradeops.io/replicas-before-scale`` annotation, in the same
    write as the new count; ``restore`` puts that count back and removes the annotation. A deployment already at its
    target is left alone. Returns ``[{deployment, namespace, from, to, changed}]``.

    :param deployments: the deployments to scale, by their name in the config. (templated)
    :param profile: ``market_hours`` or ``off_hours`` (the config's replica counts), ``zero`` or ``restore``.
        (templated)
    :param dry_run: report what would change and change nothing.
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("deployments", "profile")

    def __init__(self, *, deployments: Sequence[str], profile: str, dry_run: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)
        self.profile = profile
        self.is_dry_run = dry_run  # not `dry_run`: BaseOperator has a method of that name

    def execute(self, context: Context) -> list[dict]:
        if self.profile not in PROFILES:
            raise AirflowFailException(f"profile must be one of {PROFILES}, got {self.profile!r}")
        config = load_config()
        _check_names(config, self.deployments)
        results = []
        for name in self.deployments:
            deployment = config.kubernetes.deployment(name)
            profile = self.profile
            target = None if profile == "restore" else 0 if profile == "zero" else getattr(deployment.replicas, profile)

            def read(name: str = name, namespace: str = deployment.namespace) -> dict:
                return self.hook.deployment(namespace, name)

            def change(obj: dict, target: int | None = target) -> dict | None:
                return scale_patch(obj, target)

            def write(obj: dict, body: dict, name: str = name, namespace: str = deployment.namespace) -> dict:
                return self.hook.patch_deployment(namespace, name, body)

            if self.is_dry_run:
                before = read()
                patch = change(before)
                after = patch["spec"]["replicas"] if patch else before["spec"]["replicas"]
            else:
                before, obj, patch = self.hook.update(read, change, write)
                after = obj["spec"]["replicas"]
            replicas = before["spec"]["replicas"]
            target = {"deployment": name, "namespace": deployment.namespace}
            record = {**target, "from": replicas, "to": after, "changed": after != replicas, "dry_run": self.is_dry_run}
            done = "" if record["changed"] else " (already there)"
            self.log.info("%s/%s: %s -> %s replicas%s", deployment.namespace, name, replicas, after, done)
            results.append(record)
        return results


class SetImageOperator(_KubernetesOperator):
    """Set container images (``{deployment: image}`` for the deployment's container from the config, or
    ``{"deployment/container": image}``). Every image must match ``kubernetes.allowed_image_pattern``: one that
    doesn't fails the task before anything changes. Returns ``[{deployment, container, from, to, changed}]``.

    :param images: the image of each deployment (``{deployment: image}``) or container
        (``{"deployment/container": image}``). (templated)
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("images",)

    def __init__(self, *, images: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.images = images

    def execute(self, context: Context) -> list[dict]:
        config = load_config()
        targets = []
        for key, image in self.images.items():
            name, _, container = key.partition("/")
            _check_names(config, [name])
            targets.append((name, container or config.kubernetes.deployment(name).container_name, image))
        pattern = re.compile(config.kubernetes.allowed_image_pattern)
        refused = [image for _, _, image in targets if not pattern.fullmatch(image)]
        if refused:
            raise AirflowFailException(
                f"refusing image(s) outside the allowed registry/pattern "
                f"{config.kubernetes.allowed_image_pattern!r}: {refused}"
            )
        results = []
        for name, container, image in targets:
            namespace = config.kubernetes.deployment(name).namespace
            before = self.hook.deployment(namespace, name)
            containers = {c["name"]: c["image"] for c in before["spec"]["template"]["spec"]["containers"]}
            if container not in containers:
                raise AirflowFailException(
                    f"deployment {namespace}/{name} has no container {container!r} (it has {sorted(containers)})"
                )
            current, changed = containers[container], containers[container] != image
            if changed:
                template = {"spec": {"containers": [{"name": container, "image": image}]}}
                self.hook.patch_deployment(namespace, name, {"spec": {"template": template}})
            done = "" if changed else " (already set)"
            self.log.info("%s/%s %s: %s -> %s%s", namespace, name, container, current, image, done)
            target = {"deployment": name, "namespace": namespace, "container": container}
            results.append({**target, "from": current, "to": image, "changed": changed})
        return results


class RolloutRestartOperator(_KubernetesOperator):
    """``kubectl rollout restart``: stamp ``kubectl.kubernetes.io/restartedAt`` on the pod template. A paused
    deployment is refused, as kubectl does. A retry of the same task run does not restart twice (the template also
    records which run restarted it). Returns ``[{deployment, restarted_at, changed}]``.

    :param deployments: the deployments to restart, by their name in the config. (templated)
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("deployments",)

    def __init__(self, *, deployments: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)

    def execute(self, context: Context) -> list[dict]:
        config = load_config()
        _check_names(config, self.deployments)
        restart_id = f"{context['ti'].dag_id}/{context['ti'].run_id}"
        results = []
        for name in self.deployments:
            namespace = config.kubernetes.deployment(name).namespace
            obj = self.hook.deployment(namespace, name)
            if obj["spec"].get("paused"):
                raise AirflowFailException(
                    f"can't restart paused deployment {namespace}/{name} (run rollout resume first)"
                )
            patch = restart_patch(obj, restart_id, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if patch is None:
                stamp = obj["spec"]["template"]["metadata"]["annotations"].get(RESTARTED_AT)
            else:
                self.hook.patch_deployment(namespace, name, patch)
                stamp = patch["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
                self.log.info("%s/%s restarted at %s", namespace, name, stamp)
            results.append(
                {"deployment": name, "namespace": namespace, "restarted_at": stamp, "changed": patch is not None}
            )
        return results


class RolloutUndoOperator(_KubernetesOperator):
    """``kubectl rollout undo``: back to the previous revision, or ``to_revision``, with kubectl's client-side
    algorithm. Refuses a paused deployment; does nothing when the template already matches. Returns
    ``{deployment, from_revision, to_revision, image_before, image_after, changed}``.

    :param deployment: the deployment to roll back, by its name in the config. (templated)
    :param to_revision: the revision to go back to; ``0`` (the default) is the previous one. (templated)
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("deployment", "to_revision")

    def __init__(self, *, deployment: str, to_revision: int | str = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment = deployment
        self.to_revision = to_revision

    def execute(self, context: Context) -> dict:
        from tradeops.exceptions import RolloutFailed
        from tradeops.kubernetes.rollout import undo_plan

        config = load_config()
        _check_names(config, [self.deployment])
        namespace = config.kubernetes.deployment(self.deployment).namespace
        obj = self.hook.deployment(namespace, self.deployment)
        try:
            plan = undo_plan(obj, self.hook.replica_sets(namespace, label_selector(obj)), int(self.to_revision or 0))
        except RolloutFailed as err:
            raise AirflowFailException(f"{namespace}/{self.deployment}: {err}") from None
        image_before = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        if plan.patch is None:
            self.log.info("skipped rollback (current template already matches revision %d)", plan.to_revision)
            image_after = image_before
        else:
            after = self.hook.patch_deployment(namespace, self.deployment, plan.patch)
            image_after = after["spec"]["template"]["spec"]["containers"][0]["image"]
            change = f"{plan.from_revision} to {plan.to_revision} ({image_before} -> {image_after})"
            self.log.info("%s/%s rolled back from revision %s", namespace, self.deployment, change)
        revisions = {"from_revision": plan.from_revision, "to_revision": plan.to_revision}
        images = {"image_before": image_before, "image_after": image_after}
        return {
            "deployment": self.deployment,
            "namespace": namespace,
            **revisions,
            **images,
            "changed": not plan.skipped,
        }


class PatchServiceOperator(_KubernetesOperator):
    """Change a Service's ``type`` (``ClusterIP`` isolates it from outside traffic) and/or replace its ``selector``
    (blue-green switching). Returns ``{service, before, after, changed}`` (``before`` is what an undo restores).

    :param service: the Service's name. (templated)
    :param namespace: its namespace; defaults to the config's first namespace. (templated)
    :param service_type: the type to set (``ClusterIP``, ``NodePort`` or ``LoadBalancer``). (templated)
    :param selector: the selector to set, in place of the current one. (templated)
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("service", "namespace", "service_type", "selector")

    def __init__(
        self,
        *,
        service: str,
        namespace: str | None = None,
        service_type: str | None = None,
        selector: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if service_type is None and selector is None:
            raise ValueError("PatchServiceOperator needs service_type and/or selector")
        self.service = service
        self.namespace = namespace
        self.service_type = service_type
        self.selector = selector

    def execute(self, context: Context) -> dict:
        config = load_config()
        namespace = self.namespace or config.kubernetes.namespaces[0].name
        current = self.hook.service(namespace, self.service)
        before = {"type": current["spec"].get("type"), "selector": current["spec"].get("selector") or {}}
        try:
            operations = service_patch(current, self.service_type, self.selector)
        except ValueError as err:
            raise AirflowFailException(str(err)) from None
        after = before
        if operations:
            patched = self.hook.patch_service(namespace, self.service, operations)
            after = {"type": patched["spec"].get("type"), "selector": patched["spec"].get("selector") or {}}
        self.log.info("service %s/%s: %s -> %s", namespace, self.service, before, after)
        target = {"service": self.service, "namespace": namespace}
        return {**target, "before": before, "after": after, "changed": bool(operations)}


class CollectDiagnosticsOperator(_KubernetesOperator):
    """Collect the last ``tail_lines`` log lines of every container of every pod of the given deployments, plus the
    namespace's recent events, into one ``.tar.gz`` under the reports folder. Sizes are bounded: at most
    ``max_bytes_per_container`` per log and ``max_total_bytes`` in all (what is cut is marked in the manifest).
    Returns ``{archive, files, bytes, sha256, truncated, errors}`` (``sha256``: of the written ``.tar.gz``).

    :param deployments: the deployments whose pods' logs to collect, by their name in the config. (templated)
    :param tail_lines: the last lines of each container's log to collect.
    :param max_bytes_per_container: the most bytes kept of one container's log.
    :param max_total_bytes: the most bytes of logs in all.
    :param max_events: the most recent events kept per namespace.
    :param kubernetes_conn_id: the cluster's Airflow connection; defaults to the config's ``connections.kubernetes``.
    """

    template_fields: Sequence[str] = ("deployments",)

    def __init__(
        self,
        *,
        deployments: Sequence[str],
        tail_lines: int = 1000,
        max_bytes_per_container: int = 1024 * 1024,
        max_total_bytes: int = 20 * 1024 * 1024,
        max_events: int = 500,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployments = list(deployments)
        self.tail_lines = tail_lines
        self.max_bytes_per_container = max_bytes_per_container
        self.max_total_bytes = max_total_bytes
        self.max_events = max_events

    def execute(self, context: Context) -> dict:
        from tradeops.reporting.files import sha256_of, write_archive

        bundle = self.collect(load_config())
        files = bundle.contents()
        ti = context["ti"]
        archive = write_archive("diagnostics", f"{ti.dag_id}_{ti.run_id}_{ti.task_id}", files)
        total = sum(len(data) for data in files.values())
        cut = " (truncated)" if bundle.truncated else ""
        self.log.info("Diagnostics: %d files, %d bytes (uncompressed) in %s%s", len(files), total, archive, cut)
        written = {"archive": str(archive), "files": len(files), "bytes": total, "sha256": sha256_of(archive)}
        return {**written, "truncated": bundle.truncated, "errors": bundle.errors}

    def collect(self, config: TradeOpsConfig) -> DiagnosticsBundle:
        """Read the logs and events into a bundle, within its budgets (what could not be read noted in it)."""
        from tradeops.exceptions import KubernetesError
        from tradeops.kubernetes.diagnostics import DiagnosticsBundle

        _check_names(config, self.deployments)
        bundle = DiagnosticsBundle(
            max_bytes_per_container=self.max_bytes_per_container,
            max_total_bytes=self.max_total_bytes,
            max_events=self.max_events,
            collected_at=datetime.now(UTC),
        )
        for name in self.deployments:
            namespace = config.kubernetes.deployment(name).namespace
            try:
                pods = self.hook.pods(namespace, label_selector(self.hook.deployment(namespace, name)))
            except KubernetesError as err:
                bundle.add_error(err)
                continue
            for pod, container in ((p, c["name"]) for p in pods for c in p["spec"]["containers"]):
                path = f"logs/{name}/{pod['metadata']['name']}/{container}.log"
                limit = bundle.log_limit(path)
                if limit is None:
                    continue
                try:
                    text = self.hook.pod_log(namespace, pod["metadata"]["name"], container, self.tail_lines, limit)
                except KubernetesError as err:
                    bundle.add_error(err)
                    continue
                bundle.add_log(path, text.encode(), limit)
        for namespace in dict.fromkeys(config.kubernetes.deployment(name).namespace for name in self.deployments):
            try:
                bundle.add_events(namespace, self.hook.events(namespace))
            except KubernetesError as err:
                bundle.add_error(err)
        return bundle
