"""Configuration drift, the way a GitOps tool reports "out of sync": live objects against what is declared.

- Deployments against ``tradeops.yaml``: the image, and the replicas for the time of day (market hours or off
  hours, on the exchange calendar; either around the open and the close, while the trading day's runbooks scale).
- TradeOps' own RBAC against the committed manifests (``include/kubernetes/tradeops-rbac.yaml``).
- ConfigMaps against the approved baseline (``security.baseline``: a SHA-256 per key).

Each drift names the field, the expected and the live value, and who changed that field last and when, as the API
server's ``managedFields`` say.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

REPO = Path(__file__).resolve().parents[3]
RBAC_MANIFEST = REPO / "include" / "kubernetes" / "tradeops-rbac.yaml"
RBAC_FIELDS = {"Role": ("rules",), "ClusterRole": ("rules",), "RoleBinding": ("roleRef", "subjects")}
RBAC_FIELDS["ClusterRoleBinding"] = RBAC_FIELDS["RoleBinding"]
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


@dataclass(frozen=True)
class LiveObjects:
    deployments: list[Manifest]
    config_maps: list[Manifest]
    rbac: dict[str, list[Manifest]]
    market_hours: bool | None  # None: around the open or the close, when either replica profile is right
    baseline: dict[str, dict[str, str]]  # namespace/name -> key -> sha256
    manifests: list[Manifest]


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
    """Deployments, TradeOps' RBAC and the ConfigMaps against what is declared (see the module); every difference
    is a finding naming the field, expected, live, and who last wrote it."""

    name = "configuration_drift"
    title = "Configuration drift"
    dependency = "kubernetes_api"
    action = "Put the drifted objects back (or declare the change: the config, the manifests, the baseline)."

    def collect(self, config: TradeOpsConfig) -> LiveObjects:
        from datetime import UTC

        import yaml

        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        namespaces = [ns.name for ns in config.kubernetes.namespaces]
        baseline = yaml.safe_load((REPO / config.security.baseline).read_text()) or {}
        manifests = [doc for doc in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if doc and doc["kind"] in RBAC_FIELDS]
        return LiveObjects(
            [d for ns in namespaces for d in hook.deployments(ns)],
            [c for ns in namespaces for c in hook.config_maps(ns)],
            hook.rbac(),
            profile_at(config, datetime.now(UTC)),
            baseline.get("configmaps") or {},
            manifests,
        )

    def evaluate(self, data: LiveObjects, config: TradeOpsConfig) -> CheckResult:
        findings = [*self._deployments(data, config), *self._config_maps(data), *self._rbac(data)]
        bad = [f for f in findings if f.status is not Status.OK]
        summary = (
            f"{len(bad)} drifted: " + "; ".join(f.message for f in bad)
            if bad
            else f"{len(findings)} objects as declared (deployments, RBAC, ConfigMaps)"
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
            containers = {c["name"]: c.get("image") for c in obj["spec"]["template"]["spec"]["containers"]}
            image = containers.get(declared.container_name)
            path = ["f:spec", "f:template", "f:spec", "f:containers", _key(declared.container_name), "f:image"]
            if image != declared.image:
                out.append(self._drift(f"{key}:image", obj, "image", declared.image, image, path))
            else:
                out.append(Finding(f"{key}:image", Status.OK, f"{declared.name}: {image}"))
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

    def _config_maps(self, data: LiveObjects) -> list[Finding]:
        live = {
            f"{c['metadata']['namespace']}/{c['metadata']['name']}": {**c, "kind": "ConfigMap"}
            for c in data.config_maps
        }
        out = []
        for name in sorted(set(live) | set(data.baseline)):
            key = f"drift:configmap:{name}"
            obj, approved = live.get(name), data.baseline.get(name)
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


def _normal(value: Any) -> Any:
    """Order-insensitive where RBAC is (a list of rules or subjects is a set)."""
    if isinstance(value, list):
        return sorted(json.dumps(_normal(v), sort_keys=True) for v in value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value
