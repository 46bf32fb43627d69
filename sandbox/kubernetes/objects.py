"""Defaulting and validation on write, as the API server does them for the fields clients rely on."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from sandbox.kubernetes import errors
from sandbox.kubernetes.resources import ResourceType
from sandbox.kubernetes.store import selector_matches

DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet"}
_cluster_ips = iter(ipaddress.ip_network("10.96.0.0/16").hosts())


def safe_encode(data: bytes, length: int) -> str:
    """Kubernetes' "safe" alphabet (no vowels, no look-alikes), as in pod-template-hash and generated names."""
    number = int.from_bytes(hashlib.sha256(data).digest(), "big")
    out = ""
    for _ in range(length):
        number, index = divmod(number, len(SAFE_ALPHABET))
        out += SAFE_ALPHABET[index]
    return out


def template_hash(template: dict) -> str:
    stripped = json.loads(json.dumps(template))
    (stripped.get("metadata", {}).get("labels") or {}).pop("pod-template-hash", None)
    return safe_encode(json.dumps(stripped, sort_keys=True).encode(), 10)


def _default_pod_spec(spec: dict) -> None:
    for container in spec.get("containers") or []:
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = container.get("image", "")
        container.setdefault(
            "imagePullPolicy",
            "Always" if image.endswith(":latest") or ":" not in image.split("/")[-1] else "IfNotPresent",
        )
        for port in container.get("ports") or []:
            port.setdefault("protocol", "TCP")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def _default_template(template: dict) -> None:
    template.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    _default_pod_spec(template.setdefault("spec", {}))


def apply_defaults(rtype: ResourceType, obj: dict) -> dict:
    kind = rtype.kind
    spec = (
        obj.setdefault("spec", {})
        if kind
        not in (
            "Secret",
            "ConfigMap",
            "ServiceAccount",
            "Event",
            "Role",
            "ClusterRole",
            "RoleBinding",
            "ClusterRoleBinding",
        )
        else None
    )
    if kind in WORKLOADS:
        spec.setdefault("replicas", 1)
        if kind != "ReplicaSet":  # a ReplicaSet has no history
            spec.setdefault("revisionHistoryLimit", 10)
        _default_template(spec.setdefault("template", {}))
    if kind == "Deployment":
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("progressDeadlineSeconds", 600)
    if kind == "StatefulSet":
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("serviceName", obj["metadata"].get("name", ""))
    if kind == "Pod":
        _default_pod_spec(spec)
        obj.setdefault("status", {"phase": "Pending"})
    if kind == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", str(next(_cluster_ips)))
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for index, port in enumerate(spec.get("ports") or []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                port.setdefault(
                    "nodePort",
                    30000
                    + int(
                        hashlib.sha256(
                            f"{obj['metadata'].get('namespace')}/{obj['metadata'].get('name')}/{index}".encode()
                        ).hexdigest(),
                        16,
                    )
                    % 2767,
                )
            else:
                port.pop("nodePort", None)  # isolating a service (type: ClusterIP) closes its node ports
        status = obj.setdefault("status", {"loadBalancer": {}})
        if spec["type"] != "LoadBalancer":
            status["loadBalancer"] = {}
    if kind == "Secret":
        obj.setdefault("type", "Opaque")
    if kind == "Namespace":
        spec.setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {"phase": "Active"})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    return obj


def validate(rtype: ResourceType, obj: dict, old: dict | None = None) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    causes: list[tuple[str, str]] = []
    pattern = DNS_1123_LABEL if rtype.kind in ("Namespace", "Service") else DNS_1123_SUBDOMAIN
    if rtype.plural not in ("clusterroles", "clusterrolebindings", "roles", "rolebindings", "events") and (
        not pattern.match(name) or len(name) > 253
    ):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 name must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )
        )
    spec = obj.get("spec") or {}
    if rtype.kind in WORKLOADS:
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "Required value"))
        elif not selector_matches(selector, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                )
            )
        if old is not None and old.get("spec", {}).get("selector") != selector:
            causes.append(("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable"))
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        for index, container in enumerate(containers):
            if not container.get("name"):
                causes.append((f"spec.template.spec.containers[{index}].name", "Required value"))
            if not container.get("image"):
                causes.append((f"spec.template.spec.containers[{index}].image", "Required value"))
    if rtype.kind == "Secret" and obj.get("type") == "kubernetes.io/tls":
        data = obj.get("data") or {}
        causes += [(f"data[{key}]", "Required value") for key in ("tls.crt", "tls.key") if key not in data]
    if rtype.kind == "Service" and spec.get("type") not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(("spec.type", f'Unsupported value: "{spec.get("type")}"'))
    if causes:
        raise errors.invalid(rtype, name, causes)


def bumps_generation(kind: str, old: dict, new: dict) -> bool:
    """Whether an update bumps ``metadata.generation``, as the registry strategies' PrepareForUpdate decide: a spec
    change for every workload, and for a Deployment an annotation change too (pkg/registry/apps/deployment/
    strategy.go: "annotation updates bump the generation because annotations are copied from deployments to their
    replica sets"); ReplicaSets and StatefulSets bump on spec changes only, and labels never bump. Missing and empty
    compare equal, as apimachinery's Semantic.DeepEqual has it."""
    if old.get("spec") != new.get("spec"):
        return True
    return kind == "Deployment" and (old["metadata"].get("annotations") or {}) != (
        new["metadata"].get("annotations") or {}
    )
