"""monthly_access_review run in-process (``dag.test()``) against the sandbox's seeded platform (Kubernetes API,
platform database, state database, Slack): the planted inactive user, stale binding and binding added since last
month are found and nothing else; a dry run plans, reports and changes nothing; a review after a stored snapshot
says who gained and who lost what. The approval and the apply step run under the real scheduler
(tests/e2e/test_monthly_access_review_e2e.py): ``dag.test()`` never resolves a human-in-the-loop task."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from tradeops.access import store as access_store
from tradeops.access.review import access_matrix
from tradeops.security.network import platform_namespaces

PLANTED_REMOVALS = {
    "RoleBinding/grandmodel/user39-edit": "User user39: no activity ever recorded",
    "RoleBinding/grandmodel/legacy-reporter": "stale: Role legacy-reporter no longer exists",
}


def bindings(kubectl) -> set[str]:
    listed = kubectl.json("get", "rolebindings", "-n", "grandmodel")["items"]
    return {b["metadata"]["name"] for b in listed}


def review_of(run) -> dict:
    return run.get_task_instance("review").xcom_pull(task_ids="review")


def test_a_dry_run_finds_what_is_planted_plans_it_and_changes_nothing(access_dag, state_dsn, reports, slack, kubectl):
    before = bindings(kubectl)
    run = access_dag.test(run_conf={"dry_run": True})

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success"
    assert states == {"review": "success", "pick_removals": "skipped", "apply_removals": "skipped"}
    review = review_of(run)
    assert review["inactive_with_access"] == {"user39": "no activity ever recorded"}
    assert {r["id"]: r["reason"] for r in review["removals"]} == PLANTED_REMOVALS
    assert [(e["subject"], e["binding"]) for e in review["gained"]] == [
        ("User:user05", "RoleBinding/grandmodel/user05-view")
    ]
    assert review["lost"] == [] and review["by_hand"] == []
    assert "grandmodel/deployer" in review["service_accounts"]
    assert bindings(kubectl) == before, "a dry run removes nothing"
    assert access_store.last_snapshot(state_dsn, "") is None, "a dry run stores no snapshot"

    html = (reports / next(reports.glob("*.html")).name).read_text()
    assert "user39-edit" in html and "dry run" in html
    rows = list(csv.DictReader(next(reports.glob("*.csv")).open()))
    assert {
        "subject": "User:user39",
        "namespace": "grandmodel",
        "binding": "RoleBinding/grandmodel/user39-edit",
    }.items() <= rows[[r["binding"] for r in rows].index("RoleBinding/grandmodel/user39-edit")].items()
    (message,) = [m for m in slack() if "Monthly access review" in m.get("text", "")]
    assert message["channel_name"] == "#security-incidents" and "2 removals planned: dry run" in message["text"]


def test_after_a_stored_review_the_next_says_who_gained_and_who_lost_what(
    access_dag, state_dsn, kubectl, k8s_connection, config
):
    from tradeops.kubernetes.hooks import KubernetesApiHook

    hook = KubernetesApiHook(k8s_connection("admin"))
    namespaces = platform_namespaces(config, hook)
    kubectl.ok("-n", "grandmodel", "create", "rolebinding", "user13-view", "--clusterrole=view", "--user=user13")
    access_store.save_snapshot(state_dsn, "last-month", datetime.now(UTC), access_matrix(hook.rbac(), namespaces))
    kubectl.ok("-n", "grandmodel", "delete", "rolebinding", "user13-view")
    kubectl.ok("-n", "grandmodel", "create", "rolebinding", "user12-edit", "--clusterrole=edit", "--user=user12")
    try:
        review = review_of(access_dag.test(run_conf={"dry_run": True}))
    finally:
        kubectl.ok("-n", "grandmodel", "delete", "rolebinding", "user12-edit")
    assert review["since"].startswith("the review of ")
    assert [(e["subject"], e["binding"]) for e in review["gained"]] == [
        ("User:user12", "RoleBinding/grandmodel/user12-edit")
    ]
    assert [(e["subject"], e["binding"]) for e in review["lost"]] == [
        ("User:user13", "RoleBinding/grandmodel/user13-view")
    ]
