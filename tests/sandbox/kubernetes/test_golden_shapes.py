"""The sandbox's answers have the structure of the ones recorded from a real kube-apiserver (``golden/``, a copy of
the team's shared k8s-golden recordings).

Every key a recorded object has, ours has too, with a value of the same JSON type, recursively (the first element of a
recorded list must match one of ours). Two recorded keys are deliberately absent: ``selfLink`` (removed from API
servers in 1.24) and ``managedFields`` (server-side-apply bookkeeping, which the sandbox does not track); newer
servers add fields, and so may the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

GOLDEN = Path(__file__).parent / "golden"
NOT_EMULATED = {"selfLink", "managedFields"}


def shape_differences(golden, ours, path="") -> list[str]:
    problems = []
    if isinstance(golden, dict):
        if not isinstance(ours, dict):
            return [f"{path or '.'}: expected an object, got {type(ours).__name__}"]
        for key, value in golden.items():
            if key in NOT_EMULATED:
                continue
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += shape_differences(value, ours[key], f"{path}.{key}")
    elif isinstance(golden, list):
        if not isinstance(ours, list):
            return [f"{path}: expected a list, got {type(ours).__name__}"]
        if golden and ours:
            problems += min((shape_differences(golden[0], item, f"{path}[*]") for item in ours), key=len)
    elif (
        golden is not None
        and ours is not None
        and type(golden) is not type(ours)
        and not (isinstance(golden, (int, float)) and isinstance(ours, (int, float)))
    ):
        problems.append(f"{path}: expected {type(golden).__name__}, got {type(ours).__name__}")
    return problems


def golden(name: str):
    text = (GOLDEN / name).read_text()
    return (
        [json.loads(line) for line in text.splitlines() if line.strip()]
        if name.endswith(".ndjson")
        else json.loads(text)
    )


@pytest.fixture(scope="module")
def web(kubectl, manifest):
    """A deployment taken through the same history as the recorded one: created, restarted, image set."""
    kubectl("delete", "deployment", "golden-web", "--wait=false")
    kubectl.ok("create", "-f", "-", stdin=manifest("golden-web", replicas=5))
    kubectl.ok("rollout", "status", "deployment/golden-web")
    kubectl.ok("rollout", "restart", "deployment/golden-web")
    kubectl.ok("rollout", "status", "deployment/golden-web")
    kubectl.ok("set", "image", "deployment/golden-web", "web=nginx:1.26")
    kubectl.ok("rollout", "status", "deployment/golden-web")
    yield "golden-web"
    kubectl("delete", "deployment", "golden-web", "--wait=false")


@pytest.fixture(scope="module")
def api(k8s):
    session = requests.Session()

    def call(method, path, token="admin", headers=None, **kwargs):
        return session.request(
            method,
            k8s["url"] + path,
            timeout=10,
            verify=k8s["ca_file"],
            headers={"Authorization": f"Bearer {k8s['tokens'][token]}", **(headers or {})},
            **kwargs,
        )

    return call


def check(name: str, ours) -> None:
    problems = shape_differences(golden(name), ours)
    assert problems == [], f"{name}: " + "; ".join(problems)


def test_deployment(api, web):
    check("deployment_web.json", api("GET", f"/apis/apps/v1/namespaces/grandmodel/deployments/{web}").json())


def test_replicasets(api, web):
    check(
        "replicasets_web.json",
        api("GET", "/apis/apps/v1/namespaces/grandmodel/replicasets", params={"labelSelector": f"app={web}"}).json(),
    )


def test_scale(api, web):
    check("scale_web.json", api("GET", f"/apis/apps/v1/namespaces/grandmodel/deployments/{web}/scale").json())


def test_tls_secrets(api):
    check(
        "secrets_tls.json",
        api("GET", "/api/v1/namespaces/grandmodel/secrets", params={"fieldSelector": "type=kubernetes.io/tls"}).json(),
    )


def test_discovery(api):
    check("discovery_api.json", api("GET", "/api").json())
    check("discovery_apis.json", api("GET", "/apis").json())
    check("discovery_apps_v1.json", api("GET", "/apis/apps/v1").json())


def test_access_reviews(api):
    denied = api(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": "grandmodel",
                    "verb": "delete",
                    "group": "apps",
                    "resource": "deployments",
                },
                "user": "system:serviceaccount:grandmodel:deployer",
            },
        },
    ).json()
    check("sar_denied.json", denied)
    assert denied["status"]["allowed"] is False
    rules = api(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        token="deployer",
        json={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "grandmodel"},
        },
    ).json()
    check("ssrr_deployer.json", rules)
    assert {
        "verbs": ["get", "list", "watch", "patch", "update"],
        "apiGroups": ["apps"],
        "resources": ["deployments", "deployments/scale", "replicasets"],
    } in rules["status"]["resourceRules"]


def test_watch_stream(api, web, kubectl):
    response = api(
        "GET",
        "/apis/apps/v1/namespaces/grandmodel/deployments",
        stream=True,
        params={"watch": "true", "fieldSelector": f"metadata.name={web}", "timeoutSeconds": "2"},
    )
    events = [json.loads(line) for line in response.iter_lines() if line]
    recorded = golden("watch_web.ndjson")
    assert events and events[0]["type"] == recorded[0]["type"] == "ADDED"
    problems = shape_differences(recorded[0], events[0])
    assert problems == [], problems


@pytest.mark.parametrize(
    ("name", "request_args"),
    [
        ("err_404.json", ("GET", "/apis/apps/v1/namespaces/grandmodel/deployments/nope", {})),
        ("err_403.json", ("GET", "/api/v1/namespaces/grandmodel/secrets", {"token": "viewer"})),
        (
            "err_400_jsonpatch_not_list.json",
            (
                "PATCH",
                "/apis/apps/v1/namespaces/grandmodel/deployments/api-gateway",
                {"data": "{}", "headers": {"Content-Type": "application/json-patch+json"}},
            ),
        ),
    ],
)
def test_error_status_bodies(api, name, request_args):
    method, path, kwargs = request_args
    token = kwargs.pop("token", "admin")
    response = api(method, path, token=token, **kwargs)
    body = response.json()
    assert response.status_code == golden(name)["code"] == body["code"]
    check(name, body)


def test_conflict_and_invalid_bodies(api, web):
    current = api("GET", f"/apis/apps/v1/namespaces/grandmodel/deployments/{web}").json()
    created = api("POST", "/apis/apps/v1/namespaces/grandmodel/deployments", json=current)
    assert created.status_code == 409
    check("err_409.json", created.json())
    invalid = api(
        "PATCH",
        f"/apis/apps/v1/namespaces/grandmodel/deployments/{web}",
        data='{"spec":{"replicas":-1}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert invalid.status_code == 422
    check("err_422.json", invalid.json())
    assert invalid.json()["details"]["causes"][0]["field"] == "spec.replicas"
