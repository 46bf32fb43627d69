"""Who may do what: bindings to cluster-admin outside the allowed subjects, and each platform service account's
permissions against the least-privilege set the config declares for it, confirmed by asking the API server
(SubjectAccessReview) about the dangerous ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradeops.checks.base import Check, CheckResult, Finding, Status, worst
from tradeops.security.network import platform_namespaces

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.config.security import ServiceAccountPolicy

Manifest = dict[str, Any]
Grant = tuple[str, str, str, str]  # namespace ("*": every namespace), API group, resource, verb
DANGEROUS_VERBS = {"escalate", "bind", "impersonate", "*"}
# What the API server is asked about each platform service account, in its own namespace.
PROBES = [
    ("get", "secrets", ""),
    ("create", "pods/exec", ""),
    ("escalate", "roles", "rbac.authorization.k8s.io"),
    ("impersonate", "users", ""),
]


def subject_name(subject: dict, binding_namespace: str | None) -> str:
    """``ServiceAccount:<namespace>/<name>`` (a binding's own namespace when the subject has none), or
    ``<kind>:<name>``."""
    if subject.get("kind") == "ServiceAccount":
        return f"ServiceAccount:{subject.get('namespace') or binding_namespace}/{subject['name']}"
    return f"{subject.get('kind')}:{subject['name']}"


def binding_name(binding: Manifest) -> str:
    """``<kind>/[<namespace>/]<name>``: a binding's id in findings and reports."""
    meta = binding["metadata"]
    return (
        f"{binding.get('kind', 'RoleBinding')}/{meta['namespace'] + '/' if meta.get('namespace') else ''}{meta['name']}"
    )


def role_rules(rbac: dict[str, list[Manifest]], ref: dict, namespace: str | None) -> list[dict]:
    """The rules of the Role (in ``namespace``) or ClusterRole a binding's ``roleRef`` names; none when it is gone."""
    kind = "Role" if ref.get("kind") == "Role" else "ClusterRole"
    for role in rbac.get(kind, []):
        if role["metadata"]["name"] == ref["name"] and (
            kind == "ClusterRole" or role["metadata"].get("namespace") == namespace
        ):
            return role.get("rules") or []
    return []


def _expand(rules: list[dict], namespace: str) -> set[Grant]:
    return {
        (namespace, group, resource, verb)
        for rule in rules
        if rule.get("resources")
        for group in rule.get("apiGroups") or [""]
        for resource in rule["resources"]
        for verb in rule.get("verbs") or []
    }


def _covered(grant: Grant, allowed: set[Grant]) -> bool:
    """Literal: a granted wildcard is covered only by an allowed wildcard, never the other way round."""
    return grant in allowed


def _dangerous(grant: Grant) -> bool:
    _, group, resource, verb = grant
    return verb in DANGEROUS_VERBS or "*" in (group, resource) or resource == "secrets" or resource == "pods/exec"


def _describe(grants: set[Grant]) -> str:
    by: dict[tuple[str, str], list[str]] = {}
    for namespace, group, resource, verb in sorted(grants):
        by.setdefault((namespace, f"{group + '/' if group else ''}{resource}"), []).append(verb)
    return "; ".join(
        f"{','.join(verbs)} {what}{' in every namespace' if ns == '*' else ''}" for (ns, what), verbs in by.items()
    )


@dataclass(frozen=True)
class AccessState:
    namespaces: list[str]
    rbac: dict[str, list[Manifest]]
    allowed_by_api: dict[str, dict[str, bool]]  # service account -> probe -> the API server's answer


def grants_by_service_account(state: AccessState) -> dict[str, dict[Grant, str]]:
    """Each platform service account's grants, each with the binding that gives it (RBAC is additive)."""
    out: dict[str, dict[Grant, str]] = {}
    platform = set(state.namespaces)
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in state.rbac.get(kind, []):
            namespace = binding["metadata"].get("namespace")
            if kind == "RoleBinding" and namespace not in platform:
                continue
            rules = role_rules(state.rbac, binding.get("roleRef") or {}, namespace)
            for subject in binding.get("subjects") or []:
                subject_id = subject_name(subject, namespace)
                if not subject_id.startswith("ServiceAccount:"):
                    continue
                account = subject_id.split(":", 1)[1]
                if account.split("/", 1)[0] not in platform:
                    continue
                for grant in _expand(rules, namespace or "*"):
                    out.setdefault(account, {}).setdefault(grant, binding_name({**binding, "kind": kind}))
    return out


def allowed_grants(account: str, policy: ServiceAccountPolicy | None, rbac: dict[str, list[Manifest]]) -> set[Grant]:
    if policy is None:
        return set()
    namespace = account.split("/", 1)[0]
    rules = [{"apiGroups": p.api_groups, "resources": p.resources, "verbs": p.verbs} for p in policy.rules]
    for role in policy.cluster_roles:
        rules += role_rules(rbac, {"kind": "ClusterRole", "name": role}, None)
    return _expand(rules, namespace)


class Privileges(Check[AccessState]):
    """Every binding to ``cluster-admin`` names only ``security.cluster_admin_subjects`` (critical otherwise); each
    platform service account (declared in ``security.service_accounts``, or bound in a platform namespace) holds
    no permission beyond its declared least privilege, and those that grant wildcards, ``escalate``/``bind``/
    ``impersonate``, secrets or ``pods/exec`` are critical. The API server's own answer for the dangerous probes
    (SubjectAccessReview) is in each finding."""

    name = "privileges"
    title = "Permissions (RBAC)"
    dependency = "kubernetes_api"
    action = "Remove the bindings named, or declare the permission in security.service_accounts if it is meant."

    def collect(self, config: TradeOpsConfig) -> AccessState:
        from tradeops.kubernetes.hooks import KubernetesApiHook

        hook = KubernetesApiHook(config.connections.kubernetes)
        namespaces = platform_namespaces(config, hook)
        rbac = hook.rbac()
        state = AccessState(namespaces, rbac, {})
        accounts = set(config.security.service_accounts) | set(grants_by_service_account(state))
        answers = {}
        for account in sorted(accounts):
            namespace, name = account.split("/", 1)
            user = f"system:serviceaccount:{namespace}:{name}"
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]
            answers[account] = {
                f"{verb} {resource}": hook.can(user, groups, namespace, verb, resource, group)
                for verb, resource, group in PROBES
            }
        return AccessState(namespaces, rbac, answers)

    def evaluate(self, data: AccessState, config: TradeOpsConfig) -> CheckResult:
        findings = []
        allowed_admins = {(s.kind, s.name, s.namespace) for s in config.security.cluster_admin_subjects}
        for kind in ("ClusterRoleBinding", "RoleBinding"):
            for binding in data.rbac.get(kind, []):
                ref = binding.get("roleRef") or {}
                if ref.get("kind") != "ClusterRole" or ref.get("name") != "cluster-admin":
                    continue
                binding_id = binding_name({**binding, "kind": kind})
                namespace = binding["metadata"].get("namespace")
                for subject in binding.get("subjects") or []:
                    sub_ns = subject.get("namespace") or (
                        namespace if subject.get("kind") == "ServiceAccount" else None
                    )
                    if (subject.get("kind"), subject["name"], sub_ns) in allowed_admins:
                        continue
                    who = subject_name(subject, namespace)
                    findings.append(
                        Finding(
                            f"rbac:cluster-admin:{binding_id}:{who}",
                            Status.FAIL,
                            f"{binding_id} gives cluster-admin to {who}",
                            {"binding": binding_id, "subject": who},
                            critical=True,
                        )
                    )
        granted = grants_by_service_account(data)
        declared = config.security.service_accounts
        for account in sorted(set(declared) | set(granted) | set(data.allowed_by_api)):
            allowed = allowed_grants(account, declared.get(account), data.rbac)
            grants = granted.get(account, {})
            excess = {g for g in grants if not _covered(g, allowed)}
            probes = data.allowed_by_api.get(account, {})
            risky = {p for p, yes in probes.items() if yes}
            facts = {
                "can": _describe(set(grants)) or "nothing",
                "declared": account in declared,
                "api_server_allows": sorted(risky),
            }
            key = f"rbac:sa:{account}"
            if excess:
                via = sorted({grants[g] for g in excess})
                facts.update(excess=_describe(excess), via=via)
                critical = any(_dangerous(g) for g in excess) or bool(risky)
                message = f"{account} can {_describe(excess)} beyond its least privilege (via {', '.join(via)})"
                findings.append(Finding(key, Status.FAIL, message, facts, critical=critical))
            elif risky:  # granted in a way the RBAC objects read here do not show (aggregation, a webhook)
                message = f"{account}: the API server allows {', '.join(sorted(risky))}"
                findings.append(Finding(key, Status.FAIL, message, facts, critical=True))
            else:
                findings.append(Finding(key, Status.OK, f"{account}: within its least privilege", facts))
        bad = [f for f in findings if f.status is not Status.OK]
        summary = (
            "; ".join(f.message for f in bad)
            if bad
            else f"{len(findings)} service accounts within their least privilege; cluster-admin only where allowed"
        )
        return self.result(worst(f.status for f in findings), summary, findings=findings)
