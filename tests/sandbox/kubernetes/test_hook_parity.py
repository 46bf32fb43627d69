"""The same rollout scenario driven by kubectl, by the provider's KubernetesHook (sync client) and by its
AsyncKubernetesHook (kubernetes_asyncio) ends in the same state."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

NAMESPACE = "grandmodel"
REVISION = "deployment.kubernetes.io/revision"


def rolled_out(d: dict) -> bool:
    """kubectl's rules, in kubectl's order (see shared/reference/kubernetes.md)."""
    status, spec = d.get("status") or {}, d["spec"]
    if d["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return False
    updated = status.get("updatedReplicas", 0)
    return not (
        updated < spec["replicas"]
        or status.get("replicas", 0) > updated
        or status.get("availableReplicas", 0) < updated
    )


def summary(deployment: dict, replica_sets: list[dict]) -> dict:
    """What must agree: spec, revision, status counts, and the ReplicaSet history."""
    status = deployment.get("status") or {}
    return {
        "replicas": deployment["spec"]["replicas"],
        "image": deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "revision": deployment["metadata"]["annotations"][REVISION],
        "status": {k: status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")},
        "replica_sets": sorted(
            (
                int(rs["metadata"]["annotations"][REVISION]),
                rs["spec"]["template"]["spec"]["containers"][0]["image"],
                rs["spec"]["replicas"],
                rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision-history", ""),
            )
            for rs in replica_sets
        ),
    }


def undo_patch(replica_sets: list[dict], revision: int) -> list[dict]:
    """kubectl's client-side undo: the chosen ReplicaSet's template without its pod-template-hash."""
    chosen = next(rs for rs in replica_sets if rs["metadata"]["annotations"][REVISION] == str(revision))
    template = copy.deepcopy(chosen["spec"]["template"])
    template["metadata"]["labels"].pop("pod-template-hash", None)
    return [{"op": "replace", "path": "/spec/template", "value": template}]


def test_kubectl_sync_hook_and_async_hook_agree(kubectl, manifest, hook, wait_for):
    names = {"kubectl": "parity-kubectl", "sync": "parity-sync", "async": "parity-async"}
    results = {}
    try:
        # --- kubectl ---
        name = names["kubectl"]
        kubectl.ok("create", "-f", "-", stdin=manifest(name))
        kubectl.ok("rollout", "status", f"deployment/{name}")
        kubectl.ok("scale", f"deployment/{name}", "--replicas=4")
        kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:1.26")
        kubectl.ok("rollout", "status", f"deployment/{name}")
        kubectl.ok("rollout", "undo", f"deployment/{name}", "--to-revision=1")
        kubectl.ok("rollout", "status", f"deployment/{name}")
        results["kubectl"] = summary(
            kubectl.json("get", "deployment", name), kubectl.json("get", "rs", "-l", f"app={name}")["items"]
        )

        # --- KubernetesHook, sync client ---
        sync = hook("admin")
        apps = sync.apps_v1_client
        api = sync.api_client
        name = names["sync"]

        def read(deployment_name):
            return api.sanitize_for_serialization(apps.read_namespaced_deployment(deployment_name, NAMESPACE))

        def settle(deployment_name):
            wait_for(lambda: rolled_out(read(deployment_name)), timeout=60)

        apps.create_namespaced_deployment(NAMESPACE, json.loads(manifest(name)))
        settle(name)
        apps.patch_namespaced_deployment_scale(name, NAMESPACE, {"spec": {"replicas": 4}})
        apps.patch_namespaced_deployment(
            name, NAMESPACE, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}}
        )
        settle(name)
        replica_sets = api.sanitize_for_serialization(
            apps.list_namespaced_replica_set(NAMESPACE, label_selector=f"app={name}")
        )["items"]
        apps.patch_namespaced_deployment(name, NAMESPACE, undo_patch(replica_sets, 1))
        settle(name)
        results["sync"] = summary(
            read(name),
            api.sanitize_for_serialization(apps.list_namespaced_replica_set(NAMESPACE, label_selector=f"app={name}"))[
                "items"
            ],
        )

        # --- AsyncKubernetesHook ---
        async def drive():
            from kubernetes_asyncio import client

            async with hook("admin", asynchronous=True).get_conn() as api_client:
                aapps = client.AppsV1Api(api_client)
                name = names["async"]

                async def read_async():
                    return api_client.sanitize_for_serialization(
                        await aapps.read_namespaced_deployment(name, NAMESPACE)
                    )

                async def settle_async():
                    for _ in range(600):
                        if rolled_out(await read_async()):
                            return
                        await asyncio.sleep(0.1)
                    raise TimeoutError(name)

                async def replica_sets_async():
                    return api_client.sanitize_for_serialization(
                        await aapps.list_namespaced_replica_set(NAMESPACE, label_selector=f"app={name}")
                    )["items"]

                await aapps.create_namespaced_deployment(NAMESPACE, json.loads(manifest(name)))
                await settle_async()
                await aapps.patch_namespaced_deployment_scale(name, NAMESPACE, {"spec": {"replicas": 4}})
                await aapps.patch_namespaced_deployment(
                    name,
                    NAMESPACE,
                    {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}},
                )
                await settle_async()
                await aapps.patch_namespaced_deployment(name, NAMESPACE, undo_patch(await replica_sets_async(), 1))
                await settle_async()
                return summary(await read_async(), await replica_sets_async())

        results["async"] = asyncio.run(drive())
    finally:
        for name in names.values():
            kubectl("delete", "deployment", name, "--wait=false")

    assert results["kubectl"] == results["sync"] == results["async"]
    assert results["kubectl"]["image"] == "nginx:1.25" and results["kubectl"]["revision"] == "3"
    assert results["kubectl"]["replica_sets"] == [(2, "nginx:1.26", 0, ""), (3, "nginx:1.25", 4, "1")]


def test_hook_test_connection_and_deployment_status(hook):
    sync = hook("viewer")
    ok, message = sync.test_connection()
    assert ok and "v1.33.0-tradeops-sandbox" in message
    status = sync.get_deployment_status("api-gateway", namespace=NAMESPACE)  # sends pretty=true
    assert status.status.ready_replicas == status.spec.replicas


def test_least_privileged_token_gets_real_403s(hook):
    from kubernetes.client.exceptions import ApiException

    viewer = hook("viewer")
    with pytest.raises(ApiException) as err:
        viewer.core_v1_client.list_namespaced_secret(NAMESPACE)
    body = json.loads(err.value.body)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'secrets is forbidden: User "viewer" cannot list resource "secrets" in API group "" '
        'in the namespace "grandmodel"'
    )
