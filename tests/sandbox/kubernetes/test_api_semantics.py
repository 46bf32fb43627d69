"""The sandbox API's delete options, paused-deployment scaling and protobuf decoding on their own (no server)."""

from __future__ import annotations

import pytest
from starlette.datastructures import QueryParams

from sandbox.kubernetes import deletion, errors, protobuf
from sandbox.kubernetes.resources import lookup
from sandbox.kubernetes.scaling import DESIRED, MAX_REPLICAS, paused_sizes
from sandbox.kubernetes.store import Store

CONFIGMAPS, PODS, REPLICASETS = (
    lookup("", "v1", "configmaps"),
    lookup("", "v1", "pods"),
    lookup("apps", "v1", "replicasets"),
)


# --- protobuf -------------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + _bytes(1, _bytes(1, api_version) + _bytes(2, kind)) + _bytes(2, raw)


def test_protobuf_deployment_keeps_pointer_zeros_and_drops_go_defaults():
    meta = _bytes(1, "web") + _bytes(2, "") + _bytes(3, "grandmodel") + _bytes(11, _bytes(1, "app") + _bytes(2, "web"))
    container = _bytes(1, "web") + _bytes(2, "nginx:1.25") + _int(16, 0) + _bytes(6, _int(2, 0) + _int(3, 80))
    template = _bytes(1, _bytes(11, _bytes(1, "app") + _bytes(2, "web"))) + _bytes(2, _bytes(2, container))
    rolling = _bytes(1, _int(1, 0) + _int(2, 0)) + _bytes(2, _int(1, 1) + _bytes(3, "30%"))
    spec = (
        _int(1, 0)  # replicas: 0, a pointer
        + _bytes(2, _bytes(1, _bytes(1, "app") + _bytes(2, "web")))
        + _bytes(3, template)
        + _bytes(4, _bytes(1, "RollingUpdate") + _bytes(2, rolling))
        + _int(5, 0)  # minReadySeconds: 0, Go's default
        + _int(7, 0)
    )
    status = _int(1, 0) + _int(2, 0) + _bytes(6, b"")
    decoded = protobuf.decode(_envelope("apps/v1", "Deployment", _bytes(1, meta) + _bytes(2, spec) + _bytes(3, status)))
    assert decoded == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "grandmodel", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]},
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "30%"}},
        },
    }


def test_protobuf_secret_bytes_are_base64_and_map_values_keep_empties():
    meta = _bytes(1, "s") + _bytes(3, "grandmodel")
    data = _bytes(2, _bytes(1, "password") + _bytes(2, b"\x00\xffpw")) + _bytes(2, _bytes(1, "empty"))
    decoded = protobuf.decode(_envelope("v1", "Secret", _bytes(1, meta) + data + _bytes(3, "Opaque") + _int(5, 0)))
    assert decoded["data"] == {"password": "AP9wdw==", "empty": ""}
    assert decoded["type"] == "Opaque" and decoded["immutable"] is False


def test_protobuf_refuses_what_it_cannot_decode_with_415():
    with pytest.raises(errors.ApiError) as unknown_kind:
        protobuf.decode(_envelope("networking.k8s.io/v1", "Ingress", _bytes(1, _bytes(1, "web"))))
    assert unknown_kind.value.code == 415 and unknown_kind.value.reason == "UnsupportedMediaType"
    assert "the body of the request was in an unknown format - accepted media types include" in str(
        unknown_kind.value.body()["message"]
    )
    volumes = _bytes(1, _bytes(1, "data"))  # pod volumes: not modelled, and set
    template = _bytes(3, _bytes(2, volumes))
    with pytest.raises(errors.ApiError, match="field 1 of Deployment.spec.template.spec"):
        protobuf.decode(_envelope("apps/v1", "Deployment", _bytes(2, template)))
    with pytest.raises(errors.ApiError, match="without the Kubernetes envelope"):
        protobuf.decode(b'{"kind":"ConfigMap"}')


# --- delete options -------------------------------------------------------------------------------------------


def _configmap(store: Store) -> dict:
    return store.create(CONFIGMAPS, {"kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}})


def test_delete_options_come_from_the_body_else_the_query():
    assert deletion.options({"dryRun": ["All"], "propagationPolicy": "Background"}, QueryParams(""))["dryRun"] == [
        "All"
    ]
    query = QueryParams("dryRun=All&propagationPolicy=Orphan&gracePeriodSeconds=0")
    assert deletion.options(None, query) == {"dryRun": ["All"], "propagationPolicy": "Orphan", "gracePeriodSeconds": 0}
    assert deletion.options({"propagationPolicy": "Foreground"}, query).get("dryRun") is None, "a body wins whole"
    typed = protobuf.decode(_envelope("meta.k8s.io/v1", "DeleteOptions", _bytes(4, "Background") + _bytes(5, "All")))
    assert deletion.options(typed, QueryParams(""))["dryRun"] == ["All"], "a typed client's protobuf body"
    with pytest.raises(errors.ApiError) as invalid:
        deletion.options({"dryRun": ["Some"], "propagationPolicy": "Sideways"}, QueryParams(""))
    assert invalid.value.code == 422 and invalid.value.body()["message"] == (
        'DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: "Some": supported values: "All", '
        'propagationPolicy: Unsupported value: "Sideways": supported values: "Foreground", "Background", "Orphan"'
    )


def test_delete_dry_run_preconditions_and_answers():
    store = Store()
    cm = _configmap(store)
    answer = deletion.delete(store, CONFIGMAPS, "ns", "cm", {"dryRun": ["All"]})
    assert answer["kind"] == "Status" and answer["details"] == {
        "name": "cm",
        "kind": "configmaps",
        "uid": cm["metadata"]["uid"],
    }
    assert store.get(CONFIGMAPS, "ns", "cm") == cm, "a dry run changes nothing"
    with pytest.raises(errors.ApiError) as stale:
        deletion.delete(store, CONFIGMAPS, "ns", "cm", {"preconditions": {"resourceVersion": "999"}})
    assert stale.value.code == 409 and stale.value.body()["message"] == (
        'Operation cannot be fulfilled on configmaps "cm": Precondition failed: ResourceVersion in precondition: 999, '
        f"ResourceVersion in object meta: {cm['metadata']['resourceVersion']}"
    )
    deletion.delete(store, CONFIGMAPS, "ns", "cm", {"preconditions": {"uid": cm["metadata"]["uid"]}})
    assert store.get(CONFIGMAPS, "ns", "cm") is None
    pod = store.create(PODS, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "ns"}})
    assert deletion.delete(store, PODS, "ns", "p", {})["metadata"]["uid"] == pod["metadata"]["uid"], "pods: the object"


def _family(store: Store) -> None:
    """A configmap standing in for an owner, its ReplicaSet (also owned by another object) and that one's pod."""
    owner = {"uid": "d-uid", "controller": True, "kind": "Deployment", "name": "d", "apiVersion": "apps/v1"}
    other = {"uid": "x-uid", "kind": "Thing", "name": "x", "apiVersion": "v1"}
    rs = store.create(
        REPLICASETS,
        {"kind": "ReplicaSet", "metadata": {"name": "d-1", "namespace": "ns", "ownerReferences": [owner, other]}},
    )
    rs_ref = {"uid": rs["metadata"]["uid"], "controller": True, "kind": "ReplicaSet", "name": "d-1"}
    store.create(PODS, {"kind": "Pod", "metadata": {"name": "d-1-a", "namespace": "ns", "ownerReferences": [rs_ref]}})
    store.create(CONFIGMAPS, {"kind": "ConfigMap", "metadata": {"name": "d", "namespace": "ns", "uid": "d-uid"}})


def test_orphan_and_foreground_answer_the_marked_object_and_settle_the_dependents():
    store = Store()
    _family(store)
    dry = deletion.delete(store, CONFIGMAPS, "ns", "d", {"propagationPolicy": "Foreground", "dryRun": ["All"]})
    assert dry["metadata"]["finalizers"] == ["foregroundDeletion"] and dry["metadata"]["deletionTimestamp"]
    assert "deletionTimestamp" not in store.get(CONFIGMAPS, "ns", "d")["metadata"]

    orphaned = deletion.delete(store, CONFIGMAPS, "ns", "d", {"propagationPolicy": "Orphan"})
    assert orphaned["metadata"]["finalizers"] == ["orphan"] and orphaned["metadata"]["deletionGracePeriodSeconds"] == 0
    assert store.get(CONFIGMAPS, "ns", "d") is None
    assert [r["uid"] for r in store.get(REPLICASETS, "ns", "d-1")["metadata"]["ownerReferences"]] == ["x-uid"]
    assert store.get(PODS, "ns", "d-1-a") is not None

    store = Store()
    _family(store)
    deletion.delete(store, CONFIGMAPS, "ns", "d", {"propagationPolicy": "Foreground"})
    assert [store.get(t, "ns", n) for t, n in ((CONFIGMAPS, "d"), (REPLICASETS, "d-1"), (PODS, "d-1-a"))] == [None] * 3


# --- paused deployments ---------------------------------------------------------------------------------------


def _rs(uid: str, replicas: int, created: str, available: int = 0, desired: int = 0, max_replicas: int = 0) -> dict:
    annotations = {DESIRED: str(desired), MAX_REPLICAS: str(max_replicas)}
    return {
        "metadata": {"uid": uid, "creationTimestamp": created, "annotations": annotations},
        "spec": {"replicas": replicas},
        "status": {"availableReplicas": available},
    }


def _sizes(changes) -> dict[str, int]:
    return {rs["metadata"]["uid"]: size for rs, size in changes}


def test_paused_scaling_gives_the_single_active_replica_set_everything():
    old, new = _rs("old", 0, "2026-01-01T00:00:00Z"), _rs("new", 3, "2026-01-02T00:00:00Z")
    assert _sizes(paused_sizes(new, [old], 5, 1, True, 3)) == {"new": 5}
    assert _sizes(paused_sizes(None, [old, new], 2, 1, True, 3)) == {"new": 2}, "template changed while paused"
    idle = [_rs("a", 0, "2026-01-01T00:00:00Z"), _rs("b", 0, "2026-01-02T00:00:00Z")]
    assert _sizes(paused_sizes(None, idle, 2, 1, True, 0)) == {"b": 2}, "none active: the newest"
    assert paused_sizes(new, [old], 3, 1, True, 3) == []


def test_paused_scaling_mid_rollout_is_proportional():
    """The Kubernetes documentation's example: 10 replicas, maxSurge 3, paused with 8 old and 5 new, scaled to 15:
    3 more go to the old ReplicaSet and 2 to the new one."""
    old = _rs("old", 8, "2026-01-01T00:00:00Z", desired=10, max_replicas=13)
    new = _rs("new", 5, "2026-01-02T00:00:00Z", desired=10, max_replicas=13)
    assert _sizes(paused_sizes(new, [old], 15, 3, True, 13)) == {"old": 11, "new": 7}
    assert _sizes(paused_sizes(new, [old], 0, 3, True, 13)) == {"old": 0, "new": 0}
    assert paused_sizes(new, [old], 15, 3, False, 13) == [], "Recreate: no proportional scaling"
    saturated = _rs("new", 10, "2026-01-02T00:00:00Z", available=10, desired=10)
    assert _sizes(paused_sizes(saturated, [_rs("old", 2, "2026-01-01T00:00:00Z")], 10, 3, True, 12)) == {"old": 0}
