"""The access review's pure logic on hand-made RBAC: the matrix, the diff, inactivity, and the removal plan (only
bindings whose deletion takes access from nobody active)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradeops.access.review import (
    Entry,
    UserActivity,
    access_matrix,
    diff,
    inactive_users,
    plan_removals,
    platform_bindings,
    recently_created,
)

NOW = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)
RBAC_GROUP = "rbac.authorization.k8s.io"


def binding(kind, name, role, subjects, namespace=None, role_kind="ClusterRole", created="2026-05-01T00:00:00Z"):
    meta = {"name": name, "resourceVersion": "7", "creationTimestamp": created}
    if namespace:
        meta["namespace"] = namespace
    return {
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def user(name):
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


def sa(name, namespace):
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


RBAC = {
    "ClusterRole": [
        {
            "metadata": {"name": "edit"},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]}],
        },
        {"metadata": {"name": "view"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
    ],
    "Role": [],
    "RoleBinding": [
        binding("RoleBinding", "alice-edit", "edit", [user("alice")], "trading"),
        binding("RoleBinding", "bob-edit", "edit", [user("bob")], "trading"),
        binding("RoleBinding", "shared-view", "view", [user("bob"), user("carol")], "trading"),
        binding("RoleBinding", "old-job", "old-job", [sa("old-job", "trading")], "trading", role_kind="Role"),
        binding("RoleBinding", "gone-sa", "view", [sa("gone", "trading")], "trading"),
        binding("RoleBinding", "elsewhere", "edit", [user("bob")], "other-team"),
    ],
    "ClusterRoleBinding": [
        binding("ClusterRoleBinding", "system:discovery", "view", [{"kind": "Group", "name": "system:authenticated"}]),
        binding("ClusterRoleBinding", "dana-view", "view", [user("dana")], created="2026-11-25T00:00:00Z"),
    ],
}
ACCOUNTS = {"trading/default"}


def test_the_matrix_has_a_row_per_subject_namespace_and_binding_and_leaves_out_system_and_other_namespaces():
    entries = access_matrix(RBAC, ["trading"])
    assert [(e.subject, e.namespace, e.binding, e.verbs) for e in entries] == [
        ("ServiceAccount:trading/gone", "trading", "RoleBinding/trading/gone-sa", ("get", "list")),
        ("ServiceAccount:trading/old-job", "trading", "RoleBinding/trading/old-job", ()),
        ("User:alice", "trading", "RoleBinding/trading/alice-edit", ("get", "patch")),
        ("User:bob", "trading", "RoleBinding/trading/bob-edit", ("get", "patch")),
        ("User:bob", "trading", "RoleBinding/trading/shared-view", ("get", "list")),
        ("User:carol", "trading", "RoleBinding/trading/shared-view", ("get", "list")),
        ("User:dana", "*", "ClusterRoleBinding/dana-view", ("get", "list")),
    ]


def test_the_diff_says_who_gained_and_who_lost_and_a_changed_role_is_both():
    before = [
        Entry("User:a", "ns", "RoleBinding/ns/a", "ClusterRole/view", ("get",)),
        Entry("User:b", "ns", "RoleBinding/ns/b", "ClusterRole/view", ("get",)),
    ]
    after = [
        Entry("User:a", "ns", "RoleBinding/ns/a", "ClusterRole/edit", ("get", "patch")),
        Entry("User:c", "ns", "RoleBinding/ns/c", "ClusterRole/view", ("get",)),
    ]
    changes = diff(before, after)
    assert [e.subject for e in changes["gained"]] == ["User:a", "User:c"]
    assert [e.subject for e in changes["lost"]] == ["User:a", "User:b"]
    assert diff(after, after) == {"gained": [], "lost": []}


def test_bindings_created_since_a_moment_are_the_ones_added():
    added = recently_created(platform_bindings(RBAC, ["trading"]), NOW - timedelta(days=31))
    assert added == ["ClusterRoleBinding/dana-view"]


def test_inactive_is_disabled_never_active_or_idle_past_the_limit_and_a_new_user_is_not():
    users = [
        UserActivity("active", NOW - timedelta(days=400), True, NOW - timedelta(days=2)),
        UserActivity("idle", NOW - timedelta(days=400), True, NOW - timedelta(days=120)),
        UserActivity("never", NOW - timedelta(days=200), True, None),
        UserActivity("newcomer", NOW - timedelta(days=10), True, None),
        UserActivity("disabled", NOW - timedelta(days=400), False, NOW - timedelta(days=1)),
        UserActivity("edge", NOW - timedelta(days=400), True, NOW - timedelta(days=90)),
    ]
    assert inactive_users(users, NOW, timedelta(days=90)) == {
        "idle": "no activity for 120 days",
        "never": "no activity ever recorded",
        "disabled": "disabled",
    }


def test_removals_take_access_from_nobody_active_and_a_shared_binding_is_left_to_a_person():
    removals, by_hand = plan_removals(RBAC, ["trading"], {"bob": "no activity for 120 days"}, ACCOUNTS)
    assert {r.id: r.reason for r in removals} == {
        "RoleBinding/trading/bob-edit": "User bob: no activity for 120 days",
        "RoleBinding/trading/gone-sa": "stale: every service account it names is gone",
        "RoleBinding/trading/old-job": "stale: Role old-job no longer exists",
    }
    assert by_hand == ["RoleBinding/trading/shared-view: remove bob by hand (it names others too)"]
    assert {r.resource_version for r in removals} == {"7"}, "each deletion is guarded by what the review read"
    assert plan_removals(RBAC, ["trading"], {}, ACCOUNTS | {"trading/gone", "trading/old-job"})[0][0].id == (
        "RoleBinding/trading/old-job"
    )
