"""Configuration drift, the way a GitOps tool reports "out of sync": live objects against what is declared.

- Deployments against ``tradeops.yaml``: the image, the replicas for the time of day (market hours or off hours,
  on the exchange calendar; either around the open and the close, while the trading day's runbooks scale), and the
  container's requests and limits (cpu, memory; compared as quantities, so ``500m`` is ``0.5``).
- TradeOps' own RBAC against the committed manifests (``include/kubernetes/tradeops-rbac.yaml``).
- ConfigMaps against the approved baseline (``security.baseline``: a SHA-256 per key).
- The platform namespaces' NetworkPolicies against the same baseline (a SHA-256 of each policy's ``spec`` as
  canonical JSON). ``kubectl get networkpolicies -A -o json | python -m tradeops.security.drift`` prints the
  ``networkpolicies:`` section to approve.

Each drift names the field, the expected and the live value, and who changed that field last and when, as the API
server's ``managedFields`` say.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst
from tradeops.config.base import parse_quantity

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.config.model import ContainerResources

REPO = Path(__file__).resolve().parents[3]
RBAC_MANIFEST = REPO / "include" / "kubernetes" / "tradeops-rbac.yaml"
RBAC_FIELDS = {"Role": ("rules",), "ClusterRole": ("rules",), "RoleBinding": ("roleRef", "subjects")}
RBAC_FIELDS["ClusterRoleBinding"] = RBAC_FIELDS["RoleBinding"]
CONTAINERS = ["f:spec", "f:template", "f:spec", "f:containers"]  # where a container's fields are, in managedFields
EDGE = timedelta(hours=2)  # around the open and the close the startup and shutdown scale: either profile is right
Manifest = dict[str, Any]


def sha256(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def last_writer(obj: Manifest, path: list[str]) -> dict[str, str] | None:
    """The manager that last wrote the field at ``path`` (FieldsV1 keys), and when, from managedFields."""
    best = None
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        node = entry.get("fieldsV1") or {}
        for key in path:
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if node is not None and (best is None or entry.get("time", "") > best["time"]):
            best = {
                "manager": entry.get("manager", "?"),
                "operation": entry.get("operation", "?"),
                "time": entry.get("time", ""),
            }
    return best


def _key(name: str) -> str:
    return "k:" + json.dumps({"name": name}, separators=(",", ":"))


def same_quantity(expected: str | None, live: str | None) -> bool:
    """Whether two quantities (None: not set) are equal as numbers; one that does not parse equals only itself."""
    if expected is None or live is None:
        return expected == live
    try:
        return parse_quantity(expected) == parse_quantity(live)
    except ValueError:
        return expected == live


@dataclass(frozen=True)
class LiveObjects:
    deployments: list[Manifest]
    config_maps: list[Manifest]
    rbac: dict[str, list[Manifest]]
    market_hours: bool | None  # None: around the open or the close, when either replica profile is right
    baseline: dict[str, dict[str, str]]  # namespace/name -> key -> sha256
    manifests: list[Manifest]
    network_policies: list[Manifest] = dataclasses.field(default_factory=list)  # the platform namespaces'
    policy_baseline: dict[str, str] = dataclasses.field(default_factory=dict)  # namespace/name -> sha256 of spec


def profile_at(config: TradeOpsConfig, moment: datetime) -> bool | None:
    """Whether ``moment`` is in market hours (True), off hours (False), or near the open or close (None)."""
    from tradeops.calendar.sessions import sessions_for

    table = sessions_for(config.platform.exchange)
    coming, last = table.current_or_next(moment), table.current_or_previous(moment)
    if table.is_open(moment):
        return True
    if coming.open - EDGE <= moment or moment < last.close + EDGE:
        return None
    return False


class ConfigurationDrift(Check[LiveObjects]):
    """Deployments, TradeOps' RBAC, the ConfigMaps and the network policies against what is declared (see the
    module); every difference is a finding naming the field, expected, live, and who last wrote it."""

    name = "configuration_drift"
    title = "Configuration drift"
    dependency = "kubernetes_api"
    action = "Put the drifted objects back (or declare the change: the config, the manifests, the baseline)."

    def collect(self, config: TradeOpsConfig) -> LiveObjects:
        from datetime import UTC

        import yaml

        from tradeops.kubernetes.hooks import KubernetesApiHook
        from tradeops.security.network import platform_namespaces

        hook = KubernetesApiHook(config.connections.kubernetes)
        namespaces = [ns.name for ns in config.kubernetes.namespaces]
        platform = set(platform_namespaces(config, hook))
        baseline = yaml.safe_load((REPO / config.security.baseline).read_text()) or {}
        manifests = [doc for doc in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if doc and doc["kind"] in RBAC_FIELDS]
        return LiveObjects(
            [d for ns in namespaces for d in hook.deployments(ns)],
            [c for ns in namespaces for c in hook.config_maps(ns)],
            hook.rbac(),
            profile_at(config, datetime.now(UTC)),
            baseline.get("configmaps") or {},
            manifests,
            [p for p in hook.network_policies() if p["metadata"]["namespace"] in platform],
            baseline.get("networkpolicies") or {},
        )

    def evaluate(self, data: LiveObjects, config: TradeOpsConfig) -> CheckResult:
        findings = [
            *self._deployments(data, config),
            *self._config_maps(data),
            *self._rbac(data),
            *self._network_policies(data),
        ]
        bad = [f for f in findings if f.status is not Status.OK]
        summary = (
            f"{len(bad)} drifted: " + "; ".join(f.message for f in bad)
            if bad
            else f"{len(findings)} objects as declared (deployments, RBAC, ConfigMaps, network policies)"
        )
        return self.result(worst(f.status for f in findings), summary, findings=findings)

    def _drift(self, key: str, obj: Manifest, field: str, expected: Any, live: Any, path: list[str]) -> Finding:
        writer = last_writer(obj, path)
        meta = obj["metadata"]
        name = f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
        by = f" (last written by {writer['manager']} at {writer['time']})" if writer else ""
        facts = {"object": f"{obj.get('kind', '')} {name}".strip(), "field": field, "expected": expected, "live": live}
        facts["changed_by"] = writer
        return Finding(key, Status.FAIL, f"{name} {field}: expected {expected}, live {live}{by}", facts)

    def _deployments(self, data: LiveObjects, config: TradeOpsConfig) -> list[Finding]:
        live = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): {**d, "kind": "Deployment"} for d in data.deployments
        }
        out = []
        for declared in config.kubernetes.deployments:
            key = f"drift:deployment:{declared.namespace}/{declared.name}"
            obj = live.get((declared.namespace, declared.name))
            if obj is None:
                message = f"{declared.namespace}/{declared.name}: declared, not in the cluster"
                out.append(Finding(f"{key}:missing", Status.FAIL, message))
                continue
            containers = {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}
            container = containers.get(declared.container_name)
            image = container and container.get("image")
            path = [*CONTAINERS, _key(declared.container_name), "f:image"]
            if image != declared.image:
                out.append(self._drift(f"{key}:image", obj, "image", declared.image, image, path))
            else:
                out.append(Finding(f"{key}:image", Status.OK, f"{declared.name}: {image}"))
            resources = config.kubernetes.resources_of(declared)
            if container is not None and resources is not None:
                out.extend(self._resources(key, obj, container, resources))
            replicas = obj["spec"].get("replicas", 1)
            profile = data.market_hours if declared.role in config.trading_day.scale_roles else None
            wanted = {
                True: [declared.replicas.market_hours],
                False: [declared.replicas.off_hours],
                None: sorted({declared.replicas.market_hours, declared.replicas.off_hours}),
            }[profile]
            if replicas not in wanted:
                expected = " or ".join(map(str, wanted))
                out.append(
                    self._drift(f"{key}:replicas", obj, "replicas", expected, replicas, ["f:spec", "f:replicas"])
                )
            else:
                out.append(Finding(f"{key}:replicas", Status.OK, f"{declared.name}: {replicas} replicas"))
        return out

    def _resources(self, key: str, obj: Manifest, container: Manifest, declared: ContainerResources) -> list[Finding]:
        """The container's requests and limits (cpu, memory) against the declared ones, one finding per field."""
        live, wanted = container.get("resources") or {}, declared.manifest()
        out = []
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                expected, actual = wanted.get(section, {}).get(resource), (live.get(section) or {}).get(resource)
                if not same_quantity(expected, actual):
                    name = f"resources.{section}.{resource}"
                    path = [*CONTAINERS, _key(container["name"]), "f:resources", f"f:{section}", f"f:{resource}"]
                    expected, actual = expected or "absent", actual or "absent"
                    out.append(self._drift(f"{key}:{name}", obj, name, expected, actual, path))
        if not out:
            message = f"{obj['metadata']['name']}: requests and limits as declared"
            out.append(Finding(f"{key}:resources", Status.OK, message))
        return out

    def _config_maps(self, data: LiveObjects) -> list[Finding]:
        out = []
        for name, obj, approved in _side_by_side(data.config_maps, "ConfigMap", data.baseline):
            key = f"drift:configmap:{name}"
            if obj is None:
                out.append(Finding(key, Status.FAIL, f"{name}: approved ConfigMap missing from the cluster"))
                continue
            if approved is None:
                out.append(Finding(key, Status.WARN, f"{name}: ConfigMap not in the approved baseline"))
                continue
            values = obj.get("data") or {}
            drifted = False
            for item in sorted(set(values) | set(approved)):
                live_hash = sha256(values[item]) if item in values else None
                if live_hash != approved.get(item):
                    drifted = True
                    shown = values.get(item)
                    shown = None if shown is None else shown if len(shown) <= 80 else shown[:77] + "..."
                    expected = (approved.get(item) or "absent")[:19]
                    drift = self._drift(f"{key}:{item}", obj, f"data.{item}", expected, shown, ["f:data", f"f:{item}"])
                    out.append(drift)
            if not drifted:
                out.append(Finding(key, Status.OK, f"{name}: as approved ({len(values)} keys)"))
        return out

    def _rbac(self, data: LiveObjects) -> list[Finding]:
        out = []
        for manifest in data.manifests:
            kind, meta = manifest["kind"], manifest["metadata"]
            name = f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
            key = f"drift:rbac:{kind}/{name}"
            obj = next(
                (
                    o
                    for o in data.rbac.get(kind, [])
                    if o["metadata"]["name"] == meta["name"] and o["metadata"].get("namespace") == meta.get("namespace")
                ),
                None,
            )
            if obj is None:
                out.append(Finding(key, Status.FAIL, f"{kind} {name}: committed, not in the cluster"))
                continue
            changed = [f for f in RBAC_FIELDS[kind] if _normal(obj.get(f)) != _normal(manifest.get(f))]
            for field in changed:
                expected, live = json.dumps(manifest.get(field))[:300], json.dumps(obj.get(field))[:300]
                out.append(self._drift(f"{key}:{field}", {**obj, "kind": kind}, field, expected, live, [f"f:{field}"]))
            if not changed:
                out.append(Finding(key, Status.OK, f"{kind} {name}: as committed"))
        return out

    def _network_policies(self, data: LiveObjects) -> list[Finding]:
        out = []
        for name, obj, approved in _side_by_side(data.network_policies, "NetworkPolicy", data.policy_baseline):
            key = f"drift:networkpolicy:{name}"
            if obj is None:
                facts = {"object": f"NetworkPolicy {name}", "field": "spec", "expected": approved, "live": "absent"}
                message = f"{name}: approved NetworkPolicy missing from the cluster"
                out.append(Finding(key, Status.FAIL, message, {**facts, "changed_by": None}))
                continue
            live_hash = spec_hash(obj)
            if live_hash == approved:
                out.append(Finding(key, Status.OK, f"{name}: as approved"))
            else:
                # Unlike an unknown ConfigMap's, an unapproved policy fails: policies add up, so it can only open.
                out.append(self._drift(key, obj, "spec", approved or "absent", live_hash, ["f:spec"]))
        return out


def _side_by_side(objects: list[Manifest], kind: str, baseline: dict[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """``(namespace/name, live object or None, baseline entry or None)`` for every object in either, by name."""
    live = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": {**o, "kind": kind} for o in objects}
    for name in sorted(set(live) | set(baseline)):
        yield name, live.get(name), baseline.get(name)


def spec_hash(policy: Manifest) -> str:
    """The SHA-256 of a NetworkPolicy's ``spec`` as canonical JSON (sorted keys, no spaces): its baseline entry."""
    return sha256(json.dumps(policy.get("spec") or {}, sort_keys=True, separators=(",", ":")))


def policy_baseline(policies: list[Manifest]) -> dict[str, str]:
    """The ``networkpolicies:`` baseline of ``policies``: namespace/name -> :func:`spec_hash`."""
    return {f"{p['metadata']['namespace']}/{p['metadata']['name']}": spec_hash(p) for p in policies}


def _normal(value: Any) -> Any:
    """Order-insensitive where RBAC is (a list of rules or subjects is a set)."""
    if isinstance(value, list):
        return sorted(json.dumps(_normal(v), sort_keys=True) for v in value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    # kubectl get networkpolicies -A -o json | python -m tradeops.security.drift: the section to approve.
    import sys

    import yaml

    print(yaml.safe_dump({"networkpolicies": policy_baseline(json.load(sys.stdin)["items"])}, width=200), end="")
