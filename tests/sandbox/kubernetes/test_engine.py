"""The sandbox API's machinery on its own: patches, selectors, watch semantics, RBAC rules, protobuf reviews, and the
deployment controller's rolling-update arithmetic (driven tick by tick, no server)."""

from __future__ import annotations

import asyncio
import json

import pytest

from sandbox.kubernetes import errors, protobuf
from sandbox.kubernetes.controller import DEPLOYMENTS, PODS, REPLICASETS, Controller
from sandbox.kubernetes.objects import apply_defaults
from sandbox.kubernetes.patch import json_patch, merge_patch, strategic_merge_patch
from sandbox.kubernetes.rbac import Request, rule_allows
from sandbox.kubernetes.store import Store, field_selector, label_selector

POD_SPEC = {
    "containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "proxy:1"},
    ]
}


# --- patches ---------------------------------------------------------------------------------------------------


def test_strategic_merge_merges_containers_by_name():
    patched = strategic_merge_patch({"spec": POD_SPEC}, {"spec": {"containers": [{"name": "app", "image": "app:2"}]}})
    assert patched["spec"]["containers"] == [
        {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "proxy:1"},
    ]


def test_strategic_merge_directives_kubectl_sends():
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [
                {"name": "app", "env": [{"name": "B", "value": "2"}]},
                {"name": "sidecar", "$patch": "delete"},
            ],
        }
    }
    patched = strategic_merge_patch({"spec": POD_SPEC}, patch)
    assert [c["name"] for c in patched["spec"]["containers"]] == ["app"]
    assert patched["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    replaced = strategic_merge_patch({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}})
    assert replaced == {"spec": {"c": 3}}
    assert strategic_merge_patch(
        {"metadata": {"annotations": {"x": "1"}}}, {"metadata": {"annotations": {"x": None}}}
    ) == {"metadata": {"annotations": {}}}


def test_service_ports_merge_by_port():
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}
    patched = strategic_merge_patch(service, {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}, kind="Service")
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]


def test_merge_patch_replaces_lists_and_deletes_nulls():
    assert merge_patch({"spec": POD_SPEC, "x": 1}, {"spec": {"containers": []}, "x": None}) == {
        "spec": {**POD_SPEC, "containers": []}
    }


def test_json_patch_operations_and_errors():
    doc = {"metadata": {"annotations": {"a": "1"}}, "spec": {"list": [1, 2]}}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}},
            {"op": "test", "path": "/spec/list/0", "value": 1},
            {"op": "copy", "from": "/spec/list", "path": "/spec/copy"},
            {"op": "remove", "path": "/spec/list/0"},
        ],
    )
    assert patched == {"metadata": {"annotations": {"b": "2"}}, "spec": {"list": [2, 3], "copy": [1, 2, 3]}}
    with pytest.raises(errors.ApiError) as err:
        json_patch(doc, {"op": "add"})
    assert (err.value.code, err.value.message) == (
        400,
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    )
    with pytest.raises(errors.ApiError, match="doc is missing key"):
        json_patch({"metadata": {}}, [{"op": "replace", "path": "/metadata/annotations", "value": {}}])


# --- selectors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web,tier!=db", {"app": "web", "tier": "db"}, False),
        ("env in (prod, staging),!canary", {"env": "prod"}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("track", {"track": "x"}, True),
        ("", {}, True),
    ],
)
def test_label_selectors(selector, labels, expected):
    assert label_selector(selector)(labels) is expected


def test_field_selectors():
    secret = {"metadata": {"name": "a", "namespace": "ns"}, "type": "kubernetes.io/tls"}
    assert field_selector("type=kubernetes.io/tls,metadata.namespace=ns")(secret)
    assert not field_selector("metadata.name!=a")(secret)


# --- watch semantics -------------------------------------------------------------------------------------------


def test_watch_from_a_resource_version_misses_nothing_and_follows_selectors():
    async def scenario():
        store = Store()
        rtype = DEPLOYMENTS
        store.create(
            rtype,
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "a", "namespace": "ns", "labels": {"tier": "web"}},
                "spec": {},
            },
        )
        listed_at = str(store.rv)
        events = []

        async def consume():
            async for kind, obj in store.watch(rtype, "ns", listed_at, "tier=web", None):
                events.append((kind, obj["metadata"]["name"], obj["metadata"]["labels"].get("tier")))
                if len(events) == 4:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        current = store.get(rtype, "ns", "a")
        current["spec"]["x"] = 1
        store.update(rtype, current)
        current = store.get(rtype, "ns", "a")
        current["metadata"]["labels"]["tier"] = "db"  # leaves the selector: a DELETED event
        store.update(rtype, current)
        store.create(
            rtype,
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "b", "namespace": "ns", "labels": {"tier": "web"}},
                "spec": {},
            },
        )
        store.create(
            rtype,
            {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {"name": "c", "namespace": "other", "labels": {"tier": "web"}},
                "spec": {},
            },
        )
        store.delete(rtype, "ns", "b")
        await asyncio.wait_for(task, 2)
        return events

    assert asyncio.run(scenario()) == [
        ("MODIFIED", "a", "web"),
        ("DELETED", "a", "db"),
        ("ADDED", "b", "web"),
        ("DELETED", "b", "web"),
    ]


def test_stale_resource_version_is_a_conflict_and_unchanged_writes_are_free():
    store = Store()
    obj = store.create(
        DEPLOYMENTS,
        {
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"replicas": 1},
        },
    )
    stale = json.loads(json.dumps(obj))
    fresh = store.get(DEPLOYMENTS, "ns", "a")
    fresh["spec"]["replicas"] = 2
    store.update(DEPLOYMENTS, fresh)
    stale["spec"]["replicas"] = 3
    with pytest.raises(errors.ApiError) as err:
        store.update(DEPLOYMENTS, stale)
    assert err.value.code == 409 and "the object has been modified" in err.value.message
    rv = store.rv
    store.update(DEPLOYMENTS, store.get(DEPLOYMENTS, "ns", "a"))
    assert store.rv == rv, "writing an identical object creates no event"


# --- RBAC rules ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
            Request("get", "apps", "deployments"),
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
            Request("get", "apps", "deployments", subresource="scale"),
            False,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["deployments/*"], "verbs": ["patch"]},
            Request("patch", "apps", "deployments", subresource="scale"),
            True,
        ),
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, Request("delete", "", "secrets"), True),
        (
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["tls"]},
            Request("get", "", "secrets", name="tls"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"], "resourceNames": ["tls"]},
            Request("list", "", "secrets"),
            False,
        ),
        ({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, Request("get", path="/apis/apps/v1"), True),
    ],
)
def test_rbac_rule_matching(rule, request_, allowed):
    assert rule_allows(rule, request_) is allowed


# --- protobuf --------------------------------------------------------------------------------------------------


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_access_review_decoding():
    attributes = _field(1, b"grandmodel") + _field(2, b"delete") + _field(3, b"apps") + _field(5, b"deployments")
    review = _field(2, _field(1, attributes))
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")
    body = protobuf.MAGIC + _field(1, type_meta) + _field(2, review)
    assert protobuf.decode(body) == {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": {
            "resourceAttributes": {
                "namespace": "grandmodel",
                "verb": "delete",
                "group": "apps",
                "resource": "deployments",
            }
        },
    }
    with pytest.raises(errors.ApiError, match="the sandbox decodes no protobuf Ingress"):
        protobuf.decode(protobuf.MAGIC + _field(1, _field(2, b"Ingress")))


# --- the deployment controller, tick by tick -------------------------------------------------------------------


def deployment(replicas: int, image: str, **strategy) -> dict:
    obj = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "d", "namespace": "ns", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": image}]}},
            **strategy,
        },
    }
    return apply_defaults(DEPLOYMENTS, obj)


def set_image(store: Store, image: str) -> None:
    d = store.get(DEPLOYMENTS, "ns", "d")
    d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    d["metadata"]["generation"] += 1
    store.update(DEPLOYMENTS, d)


def pod_counts(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pod in store.list(PODS, "ns"):
        image = pod["spec"]["containers"][0]["image"]
        counts[image] = counts.get(image, 0) + 1
    return counts


def test_rolling_update_respects_max_surge_and_max_unavailable():
    """4 replicas, maxSurge 1, maxUnavailable 0: never more than 5 pods, never fewer than 4 available."""
    store = Store()
    store.create(
        DEPLOYMENTS,
        deployment(4, "v1", strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
    )
    controller = Controller(store, ready_seconds=lambda: 0)
    controller.settle()
    assert pod_counts(store) == {"v1": 4}
    set_image(store, "v2")
    seen = []
    for _ in range(60):
        controller.tick()
        counts = pod_counts(store)
        status = store.get(DEPLOYMENTS, "ns", "d")["status"]
        seen.append(sum(counts.values()))
        assert sum(counts.values()) <= 5
        assert status.get("availableReplicas", 0) >= 4 or status.get("observedGeneration") != 2
        if counts == {"v2": 4} and status.get("updatedReplicas") == 4 and status.get("availableReplicas") == 4:
            break
    assert pod_counts(store) == {"v2": 4}
    assert max(seen) == 5
    revisions = sorted(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in store.list(REPLICASETS, "ns")
    )
    assert revisions == ["1", "2"]


def test_recreate_strategy_stops_everything_first():
    store = Store()
    store.create(DEPLOYMENTS, deployment(3, "v1", strategy={"type": "Recreate"}))
    controller = Controller(store, ready_seconds=lambda: 0)
    controller.settle()
    set_image(store, "v2")
    mixed = False
    for _ in range(40):
        controller.tick()
        counts = pod_counts(store)
        mixed |= len(counts) > 1
    assert pod_counts(store) == {"v2": 3} and not mixed


def test_revision_history_limit_prunes_old_replica_sets():
    store = Store()
    store.create(DEPLOYMENTS, deployment(1, "v0", revisionHistoryLimit=2))
    controller = Controller(store, ready_seconds=lambda: 0)
    controller.settle()
    for version in range(1, 6):
        set_image(store, f"v{version}")
        for _ in range(20):
            controller.tick()
    assert len(store.list(REPLICASETS, "ns")) == 3  # the current one plus two of history


def test_one_object_that_fails_to_reconcile_never_stops_the_others(caplog):
    """kube-controller-manager logs a failed reconcile and retries it; the rest of the cluster goes on. A
    deployment the sandbox cannot reconcile (here one whose replicas are not a number) is logged once, and the
    sandbox keeps rolling out every other deployment."""
    store = Store()
    store.create(DEPLOYMENTS, deployment(2, "v1"))
    broken = deployment(1, "v1")
    broken["metadata"]["name"] = "broken"
    broken["spec"]["replicas"] = None
    store.create(DEPLOYMENTS, broken)
    controller = Controller(store, ready_seconds=lambda: 0)
    controller.settle()
    set_image(store, "v2")
    for _ in range(40):
        controller.tick()
    assert pod_counts(store) == {"v2": 2}
    assert store.get(DEPLOYMENTS, "ns", "d")["status"]["observedGeneration"] == 2
    failures = [r for r in caplog.records if "reconcile of" in r.getMessage()]
    assert len(failures) == 1 and "broken" in failures[0].getMessage()
