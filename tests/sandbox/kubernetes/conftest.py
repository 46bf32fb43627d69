"""Helpers for driving the sandbox's Kubernetes API: the real kubectl, and the provider's KubernetesHook."""

from __future__ import annotations

import json
import time
import uuid

import pytest

NAMESPACE = "grandmodel"


@pytest.fixture
def hook(k8s_connection):
    """The provider's KubernetesHook on a connection holding the sandbox's kubeconfig, as production does."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    def make(context: str = "admin", asynchronous: bool = False):
        conn_id = k8s_connection(context)
        if asynchronous:
            from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

            return AsyncKubernetesHook(conn_id=conn_id)
        return KubernetesHook(conn_id=conn_id)

    return make


def deployment_manifest(name: str, image: str = "nginx:1.25", replicas: int = 3, **spec) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "web", "image": image}]},
                },
                **spec,
            },
        }
    )


@pytest.fixture
def deployment(kubectl):
    """A fresh deployment for one test (rolled out), deleted afterwards."""
    created = []

    def make(image: str = "nginx:1.25", replicas: int = 3, **spec) -> str:
        name = f"web-{uuid.uuid4().hex[:6]}"
        kubectl.ok("create", "-f", "-", stdin=deployment_manifest(name, image, replicas, **spec))
        created.append(name)
        kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=60s")
        return name

    yield make
    for name in created:
        kubectl("delete", "deployment", name, "--wait=false")


def _wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


@pytest.fixture(scope="session")
def wait_for():
    return _wait_for


@pytest.fixture(scope="session")
def manifest():
    return deployment_manifest
