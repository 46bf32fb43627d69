"""The rollback's plan as pure functions of Kubernetes objects: the target image of a version, the previous
revision's template, images outside the allowed pattern refused before anything changes, and the plan object by
object (stop, images, restore)."""

from __future__ import annotations

import pytest

from tradeops.changes.plans import PlannedChange, plan_from_xcom, render_plan
from tradeops.kubernetes.patches import SAVED_REPLICAS
from tradeops.kubernetes.rollout import REVISION
from tradeops.rollback.forms import tag_pattern, trading_services
from tradeops.rollback.plans import RollbackRefused, image_at, rollback_plan, rollback_target, state_of

ALLOWED = r"^registry\.quantnova\.internal/grandmodel/[a-z0-9-]+:[0-9]+\.[0-9]+\.[0-9]+$"
REPO = "registry.quantnova.internal/grandmodel/tactical-marl"


def deployment(image: str, revision: int = 3, replicas: int = 2, **annotations: str) -> dict:
    return {
        "metadata": {
            "name": "tactical-marl",
            "namespace": "grandmodel",
            "uid": "u-1",
            "annotations": {REVISION: str(revision), **annotations},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "tactical-marl"}},
            "template": {
                "metadata": {"labels": {"app": "tactical-marl"}},
                "spec": {"containers": [{"name": "tactical-marl", "image": image}]},
            },
        },
    }


def replica_set(image: str, revision: int) -> dict:
    rs = deployment(image, revision)
    rs["metadata"]["ownerReferences"] = [{"uid": "u-1", "controller": True}]
    rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = f"h{revision}"
    return rs


def test_the_forms_version_pattern_is_the_tag_of_the_allowed_image_pattern():
    assert tag_pattern(ALLOWED) == r"[0-9]+\.[0-9]+\.[0-9]+"
    with pytest.raises(ValueError, match="does not end with"):
        tag_pattern(r"^registry\.internal/.*$")


def test_a_version_replaces_only_the_tag():
    assert image_at(f"{REPO}:1.8.2", "1.8.1") == f"{REPO}:1.8.1"
    assert image_at("localhost:5000/x/api:1.0.0", "0.9.9") == "localhost:5000/x/api:0.9.9"


def test_state_records_images_revision_and_the_replicas_a_pending_stop_saved():
    assert state_of(deployment(f"{REPO}:1.8.2")) == {
        "name": "tactical-marl",
        "namespace": "grandmodel",
        "images": {"tactical-marl": f"{REPO}:1.8.2"},
        "revision": 3,
        "replicas": 2,
    }
    assert state_of(deployment(f"{REPO}:1.8.2", replicas=0, **{SAVED_REPLICAS: "3"}))["replicas"] == 3


def test_a_saved_count_beside_running_replicas_is_stale_and_the_live_count_wins():
    assert state_of(deployment(f"{REPO}:1.8.2", replicas=1, **{SAVED_REPLICAS: "3"}))["replicas"] == 1


def test_a_version_target_sets_the_configs_container():
    target = rollback_target(deployment(f"{REPO}:1.8.2"), "tactical-marl", "1.8.1", ALLOWED)
    assert target == {
        "name": "tactical-marl",
        "mode": "version",
        "images": {"tactical-marl": f"{REPO}:1.8.1"},
        "to_revision": None,
    }


@pytest.mark.parametrize("version", ["latest", "1.2.3; rm -rf /", "../../x", "1.2"])
def test_an_image_outside_the_allowed_pattern_is_refused(version):
    with pytest.raises(RollbackRefused, match="refusing image"):
        rollback_target(deployment(f"{REPO}:1.8.2"), "tactical-marl", version, ALLOWED)


def test_previous_is_the_previous_revisions_template():
    current = deployment(f"{REPO}:1.8.2", revision=3)
    history = [replica_set(f"{REPO}:1.8.0", 1), replica_set(f"{REPO}:1.8.1", 2), replica_set(f"{REPO}:1.8.2", 3)]

    target = rollback_target(current, "tactical-marl", "previous", ALLOWED, history)

    assert target == {
        "name": "tactical-marl",
        "mode": "previous",
        "images": {"tactical-marl": f"{REPO}:1.8.1"},
        "to_revision": 2,
    }


def test_previous_without_history_or_to_an_unallowed_image_is_refused():
    current = deployment(f"{REPO}:1.8.2", revision=1)
    with pytest.raises(RollbackRefused, match="no rollout history"):
        rollback_target(current, "tactical-marl", "previous", ALLOWED, [replica_set(f"{REPO}:1.8.2", 1)])
    history = [replica_set(f"{REPO.replace('grandmodel/', 'grandmodel/')}:latest", 1), replica_set(f"{REPO}:1.8.2", 2)]
    with pytest.raises(RollbackRefused, match="refusing image"):
        rollback_target(deployment(f"{REPO}:1.8.2", revision=2), "tactical-marl", "previous", ALLOWED, history)


def test_the_plan_stops_then_rolls_back_then_restores_object_by_object():
    before = [
        {"name": "tactical-marl", "images": {"tactical-marl": f"{REPO}:1.8.2"}, "replicas": 3},
        {"name": "data-handler", "images": {"data-handler": "d:2.4.1"}, "replicas": 0},
    ]
    targets = [{"name": "tactical-marl", "images": {"tactical-marl": f"{REPO}:1.8.1"}}]

    plan = rollback_plan("grandmodel", before, targets, ["data-handler", "tactical-marl"])

    assert plan == [
        PlannedChange("Deployment", "grandmodel", "tactical-marl", "spec.replicas", 3, 0),
        PlannedChange(
            "Deployment", "grandmodel", "tactical-marl", "image[tactical-marl]", f"{REPO}:1.8.2", f"{REPO}:1.8.1"
        ),
        PlannedChange("Deployment", "grandmodel", "tactical-marl", "spec.replicas", 0, 3),
    ], "data-handler is at 0 already: nothing to stop or restore"
    assert plan_from_xcom([c.as_dict() for c in plan]) == plan
    table = render_plan(plan).splitlines()
    assert table[0] == "| object | field | from | to |"
    assert table[3] == f"| Deployment/grandmodel/tactical-marl | image[tactical-marl] | {REPO}:1.8.2 | {REPO}:1.8.1 |"
    assert render_plan([]) == "No changes."


def test_trading_services_are_the_scale_roles_deployments_and_only_a_namespace_s_when_asked(config):
    trading = trading_services(config)
    roles = config.trading_day.scale_roles
    assert trading and all(config.kubernetes.deployment(name).role in roles for name in trading)
    namespace = config.kubernetes.deployment(trading[0]).namespace
    assert trading_services(config, namespace=namespace) == [
        name for name in trading if config.kubernetes.deployment(name).namespace == namespace
    ]
    assert trading_services(config, namespace="no-such-namespace") == []
