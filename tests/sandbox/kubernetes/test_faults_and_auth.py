"""Fault knobs of the sandbox Kubernetes API (over HTTPS), and its authentication modes."""

from __future__ import annotations

import json
import time

import pytest
import requests
from fastapi.testclient import TestClient

from sandbox.kubernetes.service import KubernetesSandbox

DEPLOYMENTS = "/apis/apps/v1/namespaces/grandmodel/deployments"


@pytest.fixture
def api(k8s):
    def call(method, path, token: str | None = "admin", headers: dict | None = None, **kwargs):
        auth = {"Authorization": f"Bearer {k8s['tokens'][token]}"} if token else {}
        return requests.request(
            method, k8s["url"] + path, verify=k8s["ca_file"], headers={**auth, **(headers or {})}, timeout=30, **kwargs
        )

    return call


def test_latency_knob(api, sandbox):
    sandbox.set_faults("kubernetes", latency_ms=400)
    started = time.monotonic()
    assert api("GET", DEPLOYMENTS).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_burst_of_5xx_answers_status_bodies_then_recovers(api, sandbox):
    sandbox.set_faults("kubernetes", error_burst=3, error_status=503)
    answers = [api("GET", DEPLOYMENTS) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 503, 200]
    body = answers[0].json()
    assert (body["kind"], body["status"], body["reason"], body["code"]) == (
        "Status",
        "Failure",
        "ServiceUnavailable",
        503,
    )


def test_watch_drop_knob_ends_streams_early(api, sandbox):
    sandbox.set_faults("kubernetes", watch_drop_after_s=1)
    started = time.monotonic()
    response = api("GET", DEPLOYMENTS, stream=True, params={"watch": "true", "timeoutSeconds": "30"})
    events = [json.loads(line) for line in response.iter_lines() if line]
    assert 0.9 <= time.monotonic() - started < 5, "the server closed the watch, as a dropped connection would"
    assert events and all(e["type"] == "ADDED" for e in events)


def test_watch_resumes_from_a_resource_version(api, kubectl, manifest):
    listed = api("GET", DEPLOYMENTS).json()["metadata"]["resourceVersion"]
    kubectl.ok("create", "-f", "-", stdin=manifest("watch-resume", replicas=1))
    try:
        response = api(
            "GET",
            DEPLOYMENTS,
            stream=True,
            params={
                "watch": "true",
                "resourceVersion": listed,
                "fieldSelector": "metadata.name=watch-resume",
                "timeoutSeconds": "2",
            },
        )
        events = [json.loads(line) for line in response.iter_lines() if line]
        assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "watch-resume"
        assert {e["type"] for e in events} <= {"ADDED", "MODIFIED"}
        assert [int(e["object"]["metadata"]["resourceVersion"]) for e in events] == sorted(
            int(e["object"]["metadata"]["resourceVersion"]) for e in events
        )
    finally:
        kubectl("delete", "deployment", "watch-resume")


def test_unauthenticated_and_bad_tokens(api, k8s):
    assert api("GET", DEPLOYMENTS, token=None).status_code == 403, "anonymous is not an admin by default"
    bad = requests.get(
        k8s["url"] + DEPLOYMENTS, verify=k8s["ca_file"], timeout=10, headers={"Authorization": "Bearer not-a-token"}
    )
    assert bad.status_code == 401 and bad.json()["reason"] == "Unauthorized"


def test_dry_run_and_pretty(api):
    before = api("GET", f"{DEPLOYMENTS}/api-gateway").json()
    dry = api(
        "PATCH",
        f"{DEPLOYMENTS}/api-gateway",
        params={"dryRun": "All", "pretty": "true"},
        data=json.dumps({"spec": {"replicas": 7}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert dry.status_code == 200 and dry.json()["spec"]["replicas"] == 7
    assert dry.text.startswith("{\n"), "pretty=true indents"
    after = api("GET", f"{DEPLOYMENTS}/api-gateway").json()
    assert after["spec"]["replicas"] == before["spec"]["replicas"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_anonymous_admin_mode_for_the_demo(config, tmp_path):
    sandbox = KubernetesSandbox(config, tmp_path, "127.0.0.1", 6443, anonymous_admin=True)
    client = TestClient(sandbox.app)
    assert client.get(DEPLOYMENTS).status_code == 200
    assert client.get(DEPLOYMENTS, headers={"Authorization": "Bearer wrong"}).status_code == 401
