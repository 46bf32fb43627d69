"""managedFields as the API server keeps them: each write's fields under its manager, taken over fields leave the
previous owner, and the real kubectl's field managers are recorded (``kubectl-set``, ``kubectl-edit``...)."""

from __future__ import annotations

import copy

from sandbox.kubernetes.managed import manager_of, record

CONTAINER = 'k:{"name":"app"}'


def deployment(image: str, replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}, "resourceVersion": "1"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"replicas": replicas},
    }


def test_a_create_owns_every_field_it_set_and_nothing_of_the_servers():
    obj = deployment("a:1")
    record(None, obj, "helm")
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == ("helm", "Update", "FieldsV1")
    fields = entry["fieldsV1"]
    assert fields["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}  # not resourceVersion
    assert fields["f:spec"]["f:template"]["f:spec"]["f:containers"][CONTAINER]["f:image"] == {}
    assert "f:status" not in fields


def test_a_change_moves_the_field_to_its_writer_and_a_no_op_records_nothing():
    old = deployment("a:1")
    record(None, old, "helm")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    record(old, new, "kubectl-set")
    helm, kubectl = new["metadata"]["managedFields"]
    assert kubectl["manager"] == "kubectl-set"
    assert kubectl["fieldsV1"] == {"f:spec": {"f:template": {"f:spec": {"f:containers": {CONTAINER: {"f:image": {}}}}}}}
    assert "f:image" not in helm["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"][CONTAINER]
    assert "f:replicas" in helm["fieldsV1"]["f:spec"]  # what it still owns

    again = copy.deepcopy(new)
    record(new, again, "someone")
    assert again["metadata"]["managedFields"] == new["metadata"]["managedFields"]


def test_the_manager_is_the_field_manager_else_the_user_agents_product():
    assert manager_of("kubectl-edit", "kubectl/v1.31.0 (linux/amd64)") == "kubectl-edit"
    assert manager_of(None, "kubectl/v1.31.0 (linux/amd64) kubernetes/abc") == "kubectl"
    assert manager_of(None, "OpenAPI-Generator/31.0.0/python") == "OpenAPI-Generator"
    assert manager_of(None, None) == "unknown"


def test_the_real_kubectl_records_its_field_managers(kubectl):
    kubectl.ok("create", "configmap", "managed-fields-probe", "--from-literal=a=1")
    try:
        kubectl.ok("patch", "configmap", "managed-fields-probe", "-p", '{"data":{"a":"2"}}')
        cm = kubectl.json("get", "configmap", "managed-fields-probe", "--show-managed-fields")
        owners = {e["manager"]: e["fieldsV1"] for e in cm["metadata"]["managedFields"]}
        assert owners["kubectl-patch"] == {"f:data": {"f:a": {}}}
        assert "kubectl-create" not in owners  # its only field was taken over
    finally:
        kubectl("delete", "configmap", "managed-fields-probe")
