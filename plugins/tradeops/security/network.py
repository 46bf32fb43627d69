"""Network isolation: every platform namespace denies ingress by default, and no policy lets every source reach
the trading services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.kubernetes.hooks import KubernetesApiHook

Manifest = dict[str, Any]
OPEN_CIDRS = {"0.0.0.0/0", "::/0"}


def platform_namespaces(config: TradeOpsConfig, hook: KubernetesApiHook) -> list[str]:
    """The config's namespaces, then those the cluster labels ``security.namespace_label`` (made outside the
    config)."""
    labelled = [ns["metadata"]["name"] for ns in hook.namespaces(config.security.namespace_label)]
    return list(dict.fromkeys([ns.name for ns in config.kubernetes.namespaces] + sorted(labelled)))


def selects(selector: dict | None, labels: dict[str, str]) -> bool:
    """A LabelSelector as the API server applies it: an empty selector selects everything, values match exactly."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not matched:
            return False
    return True


def is_default_deny(policy: Manifest) -> bool:
    """Selects every pod of its namespace, governs ingress, and allows none."""
    spec = policy.get("spec") or {}
    selector = spec.get("podSelector") or {}
    governs_ingress = "Ingress" in (spec.get("policyTypes") or ["Ingress"])
    return (
        not selector.get("matchLabels")
        and not selector.get("matchExpressions")
        and governs_ingress
        and not (spec.get("ingress") or [])
    )


def open_to_all(rule: dict) -> bool:
    """An ingress rule with no ``from`` (every source), or one whose ipBlock is the whole internet."""
    peers = rule.get("from") or []
    if not peers:
        return True
    return any((peer.get("ipBlock") or {}).get("cidr") in OPEN_CIDRS for peer in peers)


@dataclass(frozen=True)
class NetworkState:
    namespaces: list[str]
    policies: list[Manifest]
    trading_pods: dict[str, dict[str, str]]  # namespace/deployment -> its pods' labels


class NetworkPolicies(Check[NetworkState]):
    """Default-deny ingress in every platform namespace (the config's, and any labelled
    ``security.namespace_label``), and no NetworkPolicy opening a trading deployment
    (``kubernetes.trading_deployments``) to every source."""

    name = "network_policies"
    title = "Network policies"
    dependency = "kubernetes_api"
    action = "Add a default-deny ingress policy to the namespaces named; narrow the open policies to their peers."

    def collect(self, config: TradeOpsConfig) -> NetworkState:
        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        trading = set(config.kubernetes.trading_deployments)
        pods = {}
        for namespace in {d.namespace for d in config.kubernetes.deployments if d.name in trading}:
            for deployment in hook.deployments(namespace):
                if deployment["metadata"]["name"] in trading:
                    labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
                    pods[f"{namespace}/{deployment['metadata']['name']}"] = labels
        return NetworkState(platform_namespaces(config, hook), hook.network_policies(), pods)

    def evaluate(self, data: NetworkState, config: TradeOpsConfig) -> CheckResult:
        exempt = {ns.name for ns in config.kubernetes.namespaces if not ns.default_deny_required}
        findings = []
        for namespace in data.namespaces:
            mine = [p for p in data.policies if p["metadata"].get("namespace") == namespace]
            deny = next((p["metadata"]["name"] for p in mine if is_default_deny(p)), None)
            key = f"netpol:default-deny:{namespace}"
            if deny:
                findings.append(Finding(key, Status.OK, f"{namespace}: default-deny ingress ({deny})"))
            elif namespace in exempt:
                findings.append(Finding(key, Status.OK, f"{namespace}: no default-deny (not required by the config)"))
            else:
                message = f"{namespace}: no default-deny ingress policy, every pod accepts traffic from anywhere"
                findings.append(Finding(key, Status.FAIL, message, {"namespace": namespace}))
        for pod, labels in data.trading_pods.items():
            namespace = pod.split("/", 1)[0]
            for policy in data.policies:
                if policy["metadata"].get("namespace") != namespace:
                    continue
                spec = policy.get("spec") or {}
                if not selects(spec.get("podSelector"), labels):
                    continue
                if any(open_to_all(rule) for rule in spec.get("ingress") or []):
                    name = f"{namespace}/{policy['metadata']['name']}"
                    findings.append(
                        Finding(
                            f"netpol:open:{name}:{pod.split('/', 1)[1]}",
                            Status.FAIL,
                            f"{name} lets every source reach {pod}",
                            {"policy": name, "deployment": pod},
                            critical=True,
                        )
                    )
        bad = [f for f in findings if f.status is not Status.OK]
        summary = (
            "; ".join(f.message for f in bad)
            if bad
            else f"{len(data.namespaces)} namespaces deny ingress by default; no trading service open to all"
        )
        return self.result(worst(f.status for f in findings), summary, findings=findings)
