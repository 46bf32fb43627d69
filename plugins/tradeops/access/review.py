"""The monthly access review, as pure functions of what was read: who can do what where (the access matrix), who
gained or lost what since the last review, which platform users are inactive, and the removals to propose.

A removal is offered only where deleting one binding takes access from nobody else: a binding that names only
inactive users, or a stale one (its role is gone, or every service account it names is). A binding that also
names active subjects is listed for a person to edit by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from tradeops.security.privileges import binding_name, role_rules, subject_name

Manifest = dict[str, Any]
CLUSTER_WIDE = "*"


@dataclass(frozen=True)
class Entry:
    """One row of the access matrix: ``subject`` may ``verbs`` in ``namespace`` (``*``: every one) via ``binding``."""

    subject: str
    namespace: str
    binding: str
    role: str
    verbs: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject, self.namespace, self.binding)


@dataclass(frozen=True)
class Removal:
    """A binding to delete, and why. ``label`` is what the reviewer picks."""

    id: str
    kind: str
    namespace: str | None
    name: str
    reason: str
    subjects: tuple[str, ...]
    resource_version: str

    @property
    def label(self) -> str:
        return f"Delete {self.id} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def _is_system(binding: Manifest) -> bool:
    """Kubernetes' own bootstrap bindings (``system:*``): reviewed by the cluster's owners, not per platform."""
    return binding["metadata"]["name"].startswith("system:")


def platform_bindings(rbac: dict[str, list[Manifest]], namespaces: Iterable[str]) -> list[Manifest]:
    """The bindings that touch the platform: RoleBindings in its namespaces and every ClusterRoleBinding (which
    reach all namespaces), each with its ``kind``."""
    platform = set(namespaces)
    out = [
        {**b, "kind": "RoleBinding"}
        for b in rbac.get("RoleBinding", [])
        if b["metadata"].get("namespace") in platform and not _is_system(b)
    ]
    out += [{**b, "kind": "ClusterRoleBinding"} for b in rbac.get("ClusterRoleBinding", []) if not _is_system(b)]
    return sorted(out, key=binding_name)


def _role_exists(rbac: dict[str, list[Manifest]], ref: dict, namespace: str | None) -> bool:
    kind = "Role" if ref.get("kind") == "Role" else "ClusterRole"
    return any(
        r["metadata"]["name"] == ref.get("name")
        and (kind == "ClusterRole" or r["metadata"].get("namespace") == namespace)
        for r in rbac.get(kind, [])
    )


def access_matrix(rbac: dict[str, list[Manifest]], namespaces: Iterable[str]) -> list[Entry]:
    """Subject × namespace × verbs, one entry per binding that grants them (RBAC is additive)."""
    entries = []
    for binding in platform_bindings(rbac, namespaces):
        namespace = binding["metadata"].get("namespace")
        ref = binding.get("roleRef") or {}
        verbs = sorted({verb for rule in role_rules(rbac, ref, namespace) for verb in rule.get("verbs") or []})
        for subject in binding.get("subjects") or []:
            entries.append(
                Entry(
                    subject_name(subject, namespace),
                    namespace or CLUSTER_WIDE,
                    binding_name(binding),
                    f"{ref.get('kind')}/{ref.get('name')}",
                    tuple(verbs),
                )
            )
    return sorted(entries, key=lambda e: e.key)


def diff(previous: list[Entry], current: list[Entry]) -> dict[str, list[Entry]]:
    """Who gained and who lost what since ``previous`` (a changed set of verbs is both)."""
    before = {(e.key, e.verbs): e for e in previous}
    after = {(e.key, e.verbs): e for e in current}
    return {
        "gained": [after[k] for k in sorted(set(after) - set(before))],
        "lost": [before[k] for k in sorted(set(before) - set(after))],
    }


def recently_created(bindings: list[Manifest], since: datetime) -> list[str]:
    """Bindings created after ``since`` (what "added since last month" means before a first snapshot exists)."""
    return [
        binding_name(b)
        for b in bindings
        if (created := b["metadata"].get("creationTimestamp"))
        and datetime.fromisoformat(created.replace("Z", "+00:00")) > since
    ]


@dataclass(frozen=True)
class UserActivity:
    """A platform user (the ``users`` table) and the last time they did anything (login or audited action)."""

    username: str
    created_at: datetime
    enabled: bool
    last_activity: datetime | None


def inactive_users(users: Iterable[UserActivity], now: datetime, inactive_after: timedelta) -> dict[str, str]:
    """Each inactive platform user and why: disabled, never active, or idle past ``inactive_after`` (a user
    created more recently than that is not inactive yet)."""
    out = {}
    for user in users:
        if not user.enabled:
            out[user.username] = "disabled"
        elif user.last_activity is None and now - user.created_at > inactive_after:
            out[user.username] = "no activity ever recorded"
        elif user.last_activity is not None and now - user.last_activity > inactive_after:
            out[user.username] = f"no activity for {(now - user.last_activity).days} days"
    return out


def plan_removals(
    rbac: dict[str, list[Manifest]],
    namespaces: Iterable[str],
    inactive: dict[str, str],
    service_accounts: set[str],
) -> tuple[list[Removal], list[str]]:
    """The bindings to delete (each taking access from nobody active), and those a person must edit by hand."""
    removals, by_hand = [], []
    for binding in platform_bindings(rbac, namespaces):
        meta, namespace = binding["metadata"], binding["metadata"].get("namespace")
        subjects = [subject_name(s, namespace) for s in binding.get("subjects") or []]
        users = [s.split(":", 1)[1] for s in subjects if s.startswith("User:")]
        gone = [s for s in subjects if s.startswith("ServiceAccount:") and s.split(":", 1)[1] not in service_accounts]
        if not _role_exists(rbac, binding.get("roleRef") or {}, namespace):
            reason = f"stale: {binding['roleRef'].get('kind')} {binding['roleRef'].get('name')} no longer exists"
        elif subjects and len(gone) == len(subjects):
            reason = "stale: every service account it names is gone"
        elif users and all(u in inactive for u in users) and len(users) == len(subjects):
            reason = "; ".join(f"User {u}: {inactive[u]}" for u in users)
        else:
            stuck = [u for u in users if u in inactive]
            if stuck:
                by_hand.append(f"{binding_name(binding)}: remove {', '.join(stuck)} by hand (it names others too)")
            continue
        removals.append(
            Removal(
                binding_name(binding),
                binding["kind"],
                namespace,
                meta["name"],
                reason,
                tuple(subjects),
                meta.get("resourceVersion", ""),
            )
        )
    return removals, by_hand
