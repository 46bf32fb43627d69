"""monthly_access_review under the real scheduler and api-server, the reviewer answering through the REST API
(``PATCH .../hitlDetails``) as a person would, the real kubectl confirming each end state: "Remove nothing" → every
binding still there; the user39 binding picked (of the two planned) → exactly that one deleted, recorded with the
authenticated user who answered; the stale binding, not picked, stays."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from psycopg.rows import dict_row

from devstack.hitl import answer, parked
from tradeops.access.operators import NOTHING

pytestmark = pytest.mark.e2e
DAG = "monthly_access_review"
TASK = "pick_removals"
PICKED = "RoleBinding/grandmodel/user39-edit"


@pytest.fixture(scope="module")
def kubectl(stack, kubectl_for):
    kubectl = kubectl_for(stack.settings["kubernetes"]["kubeconfig"])
    stack.client.wait_for_dags({DAG})
    stack.client.set_paused(DAG, False)
    yield kubectl
    if "user39-edit" not in bindings(kubectl):  # put the planted binding back for the tests after these
        kubectl.ok("-n", "grandmodel", "create", "rolebinding", "user39-edit", "--clusterrole=edit", "--user=user39")


def bindings(kubectl) -> set[str]:
    return {b["metadata"]["name"] for b in kubectl.json("get", "rolebindings", "-n", "grandmodel")["items"]}


def finished(stack, run_id: str) -> tuple[dict, dict[str, str]]:
    run = stack.client.wait_for_run(DAG, run_id, timeout=240)
    return run, stack.client.task_states(DAG, run_id)


def removals(stack, run_id: str) -> list[dict]:
    with psycopg.connect(stack.settings["postgres"]["state_dsn"], row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT binding, approved_by, outcome FROM tradeops.access_removals WHERE run_id = %s", (run_id,)
        ).fetchall()


def test_remove_nothing_leaves_every_binding(stack, kubectl):
    before = bindings(kubectl)
    run_id = stack.client.trigger(DAG, {"dry_run": False})
    answer(stack, DAG, run_id, TASK, [NOTHING])
    run, states = finished(stack, run_id)
    assert run["state"] == "success", states
    assert states == {"review": "success", "pick_removals": "success", "apply_removals": "success"}
    assert bindings(kubectl) == before and removals(stack, run_id) == []


def test_only_the_picked_removal_is_applied_and_recorded_with_who_approved_it(stack, kubectl):
    run_id = stack.client.trigger(DAG, {"dry_run": False})
    parked(stack, DAG, run_id, TASK)
    review = stack.client.xcom(DAG, run_id, "review")
    labels = {r["id"]: r["label"] for r in review["removals"]}
    assert set(labels) == {PICKED, "RoleBinding/grandmodel/legacy-reporter"}
    answer(stack, DAG, run_id, TASK, [labels[PICKED]])
    run, states = finished(stack, run_id)
    assert run["state"] == "success", states

    left = bindings(kubectl)
    assert "user39-edit" not in left and "legacy-reporter" in left, "exactly the approved item"
    detail = stack.client.session.get(
        f"{stack.client.url}/api/v2/dags/{DAG}/dagRuns/{quote(run_id)}/taskInstances/{TASK}/-1/hitlDetails",
        timeout=30,
    ).json()
    who = detail["responded_by_user"]
    assert removals(stack, run_id) == [
        {"binding": PICKED, "approved_by": who.get("id") or who.get("name"), "outcome": "removed"}
    ]
