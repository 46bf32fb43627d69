"""Running TradeOps' Kubernetes operators against the sandbox cluster, as TradeOps' own service account."""

from __future__ import annotations

import types

import pytest

NAMESPACE = "grandmodel"


@pytest.fixture
def connect(k8s_connection, airflow_connections):
    """A connection id for an identity of the sandbox (the default TradeOps connection is ``tradeops``)."""
    return k8s_connection


@pytest.fixture
def admin(connect):
    from tradeops.kubernetes.hooks import KubernetesApiHook

    return KubernetesApiHook(connect("admin"))


@pytest.fixture
def context(airflow_connections):
    """What the operators read from the task context: the task instance's ids (and the sandbox's connections)."""
    ti = types.SimpleNamespace(dag_id="tests", run_id="manual__test", task_id="step", try_number=1)
    return {"ti": ti}


@pytest.fixture
def preserved(admin):
    """Puts the named deployments (and services) back as they were after the test."""
    saved: list[tuple[str, str, dict]] = []

    def keep(*names: str, namespace: str = NAMESPACE, services: tuple[str, ...] = ()):
        for name in names:
            obj = admin.deployment(namespace, name)
            saved.append(
                (
                    "deployment",
                    name,
                    {
                        "replicas": obj["spec"]["replicas"],
                        "template": obj["spec"]["template"],
                        "paused": obj["spec"].get("paused", False),
                        "progressDeadlineSeconds": obj["spec"].get("progressDeadlineSeconds", 600),
                        "annotations": obj["metadata"].get("annotations") or {},
                        "ns": namespace,
                    },
                )
            )
        for name in services:
            obj = admin.service(namespace, name)
            saved.append(
                (
                    "service",
                    name,
                    {"type": obj["spec"]["type"], "selector": obj["spec"].get("selector"), "ns": namespace},
                )
            )

    yield keep
    for kind, name, state in saved:
        if kind == "deployment":
            admin.patch_deployment(
                state["ns"],
                name,
                [
                    {"op": "replace", "path": "/spec/replicas", "value": state["replicas"]},
                    {"op": "replace", "path": "/spec/template", "value": state["template"]},
                    {"op": "add", "path": "/spec/paused", "value": state["paused"]},
                    {"op": "add", "path": "/spec/progressDeadlineSeconds", "value": state["progressDeadlineSeconds"]},
                    {"op": "add", "path": "/metadata/annotations", "value": state["annotations"]},
                ],
            )
        else:
            admin.patch_service(
                state["ns"],
                name,
                [
                    {"op": "replace", "path": "/spec/type", "value": state["type"]},
                    {"op": "replace", "path": "/spec/selector", "value": state["selector"]},
                ],
            )
