"""kubectl's rollout rules (pure), the RolloutStatusTrigger against the sandbox (success, broken image, dropped
watches, 5xx, 403, timeout, StatefulSets), the sensor's modes, and a step-by-step cross-check with the real kubectl."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from airflow.triggers.base import TaskSuccessEvent

from tradeops.exceptions import RolloutFailed
from tradeops.kubernetes.rollout import rollout_state, undo_plan
from tradeops.kubernetes.sensors import RolloutStatusSensor
from tradeops.kubernetes.triggers import RolloutStatusTrigger

NAMESPACE = "grandmodel"
REGISTRY = "registry.quantnova.internal/grandmodel"


def deployment(generation=2, observed=2, replicas=3, updated=3, total=3, available=3, reason=None):
    status = {
        "observedGeneration": observed,
        "updatedReplicas": updated,
        "replicas": total,
        "availableReplicas": available,
    }
    if reason:
        status["conditions"] = [{"type": "Progressing", "status": "False", "reason": reason}]
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {k: v for k, v in status.items() if v},
    }


@pytest.mark.parametrize(
    ("obj", "done", "message"),
    [
        (deployment(generation=3, observed=2), False, "Waiting for deployment spec update to be observed..."),
        (
            deployment(updated=1),
            False,
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...',
        ),
        (
            deployment(total=4),
            False,
            'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...',
        ),
        (
            deployment(available=2),
            False,
            'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...',
        ),
        (deployment(), True, 'deployment "web" successfully rolled out'),
        (deployment(replicas=0, updated=0, total=0, available=0), True, 'deployment "web" successfully rolled out'),
    ],
)
def test_deployment_rules_in_kubectls_order(obj, done, message):
    assert rollout_state(obj) == (rollout_state(obj).__class__(done, message))


def test_observed_generation_is_checked_before_the_deadline():
    stale = deployment(generation=3, observed=2, reason="ProgressDeadlineExceeded")
    assert rollout_state(stale).message == "Waiting for deployment spec update to be observed..."
    with pytest.raises(RolloutFailed, match='deployment "web" exceeded its progress deadline'):
        rollout_state(deployment(updated=1, reason="ProgressDeadlineExceeded"))


def statefulset(generation=1, observed=1, replicas=3, ready=3, updated=3, partition=None, current="a", update="a"):
    strategy = {"type": "RollingUpdate"}
    if partition is not None:
        strategy["rollingUpdate"] = {"partition": partition}
    return {
        "metadata": {"name": "db", "generation": generation},
        "spec": {"replicas": replicas, "updateStrategy": strategy},
        "status": {
            "observedGeneration": observed,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "currentReplicas": updated,
            "currentRevision": current,
            "updateRevision": update,
        },
    }


@pytest.mark.parametrize(
    ("obj", "done", "message"),
    [
        (statefulset(observed=0), False, "Waiting for statefulset spec update to be observed..."),
        (statefulset(ready=1), False, "Waiting for 2 pods to be ready..."),
        (
            statefulset(partition=1, updated=1),
            False,
            "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...",
        ),
        (statefulset(partition=0), True, "partitioned roll out complete: 3 new pods have been updated..."),
        (
            statefulset(updated=1, update="b"),
            False,
            "waiting for statefulset rolling update to complete 1 pods at revision b...",
        ),
        (statefulset(), True, "statefulset rolling update complete 3 pods at revision a..."),
    ],
)
def test_statefulset_rules(obj, done, message):
    state = rollout_state(obj, "StatefulSet")
    assert (state.done, state.message) == (done, message)


def test_statefulset_on_delete_strategy_is_refused():
    obj = statefulset()
    obj["spec"]["updateStrategy"] = {"type": "OnDelete"}
    with pytest.raises(RolloutFailed, match="only available for RollingUpdate"):
        rollout_state(obj, "StatefulSet")


def test_undo_plan_picks_the_previous_revision_and_keeps_the_deployments_own_annotations():
    def rs(revision, image, uid="d-uid"):
        return {
            "metadata": {
                "annotations": {"deployment.kubernetes.io/revision": str(revision), "note": image},
                "ownerReferences": [{"uid": uid, "controller": True}],
            },
            "spec": {
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": f"h{revision}"}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                }
            },
        }

    current = {
        "metadata": {
            "name": "web",
            "uid": "d-uid",
            "annotations": {
                "deployment.kubernetes.io/revision": "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "v3"}]}}
        },
    }
    sets = [rs(1, "v1"), rs(2, "v2"), rs(3, "v3"), rs(9, "foreign", uid="other")]
    plan = undo_plan(current, sets)
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    template, annotations = plan.patch[0]["value"], plan.patch[1]["value"]
    assert template["metadata"]["labels"] == {"app": "web"} and template["spec"]["containers"][0]["image"] == "v2"
    assert annotations == {
        "deployment.kubernetes.io/revision": "3",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "note": "v2",
    }
    assert undo_plan(current, sets, to_revision=3).skipped
    with pytest.raises(RolloutFailed, match="unable to find specified revision 9 in history"):
        undo_plan(current, sets, to_revision=9)
    with pytest.raises(RolloutFailed, match="no rollout history found"):
        undo_plan(current, [rs(3, "v3")])


# --- the trigger against the sandbox -----------------------------------------------------------------------------


def first_event(trigger: RolloutStatusTrigger):
    async def run():
        return await trigger.run().__anext__()

    return asyncio.run(run())


def set_image(admin, name: str, image: str) -> None:
    admin.patch_deployment(
        NAMESPACE, name, {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    )


def test_trigger_ends_the_task_within_moments_of_the_api_showing_done(admin, connect, preserved):
    preserved("risk-management")
    conn = connect("tradeops")
    set_image(admin, "risk-management", f"{REGISTRY}/risk-management:3.1.1")
    admin.patch_deployment(NAMESPACE, "risk-management", {"spec": {"replicas": 3}})
    seen_done: list[float] = []

    async def scenario():
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
        from kubernetes_asyncio import client

        trigger = RolloutStatusTrigger(["risk-management"], NAMESPACE, conn, timeout_s=60)
        event_task = asyncio.create_task(trigger.run().__anext__())
        async with AsyncKubernetesHook(conn_id=conn).get_conn() as api:
            apps = client.AppsV1Api(api)
            while not event_task.done():
                response = await apps.read_namespaced_deployment("risk-management", NAMESPACE, _preload_content=False)
                if not seen_done and rollout_state(await response.json()).done:
                    seen_done.append(time.monotonic())
                await asyncio.sleep(0.05)
        return await event_task, time.monotonic()

    event, fired = asyncio.run(scenario())
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["return_value"]["messages"] == {
        "risk-management": 'deployment "risk-management" successfully rolled out'
    }
    assert seen_done and fired - seen_done[0] < 2.0


def test_trigger_fails_with_kubectls_message_for_a_broken_image(admin, connect, preserved, sandbox):
    preserved("execution-engine")
    broken = f"{REGISTRY}/execution-engine:9.9.9"
    sandbox.set_faults("kubernetes", unpullable_images=[broken])
    admin.patch_deployment(NAMESPACE, "execution-engine", {"spec": {"progressDeadlineSeconds": 3}})
    set_image(admin, "execution-engine", broken)
    event = first_event(RolloutStatusTrigger(["execution-engine"], NAMESPACE, connect("tradeops"), timeout_s=60))
    assert event.payload["status"] == "failed"
    assert event.payload["message"] == 'deployment "execution-engine" exceeded its progress deadline'


def test_trigger_survives_dropped_watches_and_5xx(admin, connect, preserved, sandbox):
    preserved("data-handler", "auth-service")
    sandbox.set_faults("kubernetes", watch_drop_after_s=0.3, error_burst=2, pod_ready_seconds=1.5)
    set_image(admin, "data-handler", f"{REGISTRY}/data-handler:2.4.2")
    set_image(admin, "auth-service", f"{REGISTRY}/auth-service:2.2.8")
    started = time.monotonic()
    event = first_event(
        RolloutStatusTrigger(["data-handler", "auth-service"], NAMESPACE, connect("tradeops"), timeout_s=60)
    )
    assert isinstance(event, TaskSuccessEvent), event.payload
    assert set(event.xcoms["return_value"]["messages"]) == {"data-handler", "auth-service"}
    assert time.monotonic() - started > 1.0, "it waited across several dropped watches"


def test_trigger_reports_403_and_timeouts(admin, connect, preserved, sandbox):
    refused = first_event(
        RolloutStatusTrigger(["prometheus"], "grandmodel-monitoring", connect("deployer"), timeout_s=10)
    )
    assert refused.payload["status"] == "failed" and "HTTP 403" in refused.payload["message"]

    preserved("strategic-marl")
    sandbox.set_faults("kubernetes", pod_ready_seconds=30)
    set_image(admin, "strategic-marl", f"{REGISTRY}/strategic-marl:1.8.3")
    slow = first_event(RolloutStatusTrigger(["strategic-marl"], NAMESPACE, connect("tradeops"), timeout_s=1))
    assert slow.payload["status"] == "timeout"
    assert slow.payload["message"].startswith(
        'timed out after 1s waiting for the rollout: Waiting for deployment "strategic-marl" rollout to finish'
    )


def test_trigger_serializes():
    trigger = RolloutStatusTrigger(["a", "b"], "ns", "conn", "statefulset", timeout_s=30)
    path, kwargs = trigger.serialize()
    assert path == "tradeops.kubernetes.triggers.RolloutStatusTrigger"
    assert RolloutStatusTrigger(**kwargs).serialize() == (path, kwargs)


def test_statefulsets_follow_kubectls_statefulset_rules(admin, connect):
    from kubernetes import client as k8s

    apps = admin.apps
    body = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "ledger-db", "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "serviceName": "ledger-db",
            "selector": {"matchLabels": {"app": "ledger-db"}},
            "template": {
                "metadata": {"labels": {"app": "ledger-db"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
            },
        },
    }
    admin.call("create", "statefulsets", "ledger-db", NAMESPACE, apps.create_namespaced_stateful_set, NAMESPACE, body)
    try:
        event = first_event(
            RolloutStatusTrigger(["ledger-db"], NAMESPACE, connect("tradeops"), "statefulset", timeout_s=60)
        )
        assert isinstance(event, TaskSuccessEvent)
        assert (
            event.xcoms["return_value"]["messages"]["ledger-db"]
            == "partitioned roll out complete: 2 new pods have been updated..."
        )
    finally:
        admin.call(
            "delete",
            "statefulsets",
            "ledger-db",
            NAMESPACE,
            apps.delete_namespaced_stateful_set,
            "ledger-db",
            NAMESPACE,
            body=k8s.V1DeleteOptions(),
        )


# --- the sensor ------------------------------------------------------------------------------------------------


def test_sensor_returns_at_once_when_already_rolled_out_and_defers_otherwise(admin, preserved):
    done = RolloutStatusSensor(task_id="w", names=["api-gateway"]).execute({})
    assert done["status"] == "success"
    preserved("auth-service")
    set_image(admin, "auth-service", f"{REGISTRY}/auth-service:2.2.9")
    with pytest.raises(TaskDeferred) as deferred:
        RolloutStatusSensor(task_id="w", names=["auth-service"], timeout=120).execute({})
    assert isinstance(deferred.value.trigger, RolloutStatusTrigger)
    assert deferred.value.trigger.names == ["auth-service"]
    with pytest.raises(AirflowFailException, match="exceeded its progress deadline"):
        RolloutStatusSensor(task_id="w", names=["auth-service"]).execute_complete(
            {}, {"status": "failed", "message": 'deployment "auth-service" exceeded its progress deadline'}
        )


def test_poke_mode_fails_with_kubectls_message(admin, preserved, sandbox):
    preserved("execution-engine")
    broken = f"{REGISTRY}/execution-engine:9.9.8"
    sandbox.set_faults("kubernetes", unpullable_images=[broken])
    admin.patch_deployment(NAMESPACE, "execution-engine", {"spec": {"progressDeadlineSeconds": 2}})
    set_image(admin, "execution-engine", broken)
    sensor = RolloutStatusSensor(
        task_id="w", names=["execution-engine"], deferrable=False, mode="poke", poke_interval=0.2, timeout=30
    )
    with pytest.raises(AirflowFailException, match='deployment "execution-engine" exceeded its progress deadline'):
        sensor.execute({})


# --- kubectl and the sensor agree at every step ------------------------------------------------------------------


def test_kubectl_and_the_sensor_agree_at_every_step_of_a_rollout(admin, kubectl, sandbox, preserved, connect):
    """Freeze the controllers between steps, then ask kubectl and the sensor's rules about the same still picture."""
    from tradeops.kubernetes.hooks import KubernetesApiHook

    preserved("tactical-marl")
    hook = KubernetesApiHook(connect("tradeops"))
    admin.patch_deployment(NAMESPACE, "tactical-marl", {"spec": {"replicas": 4, "progressDeadlineSeconds": 8}})
    kubectl.ok("rollout", "status", "deployment/tactical-marl", "--timeout=60s")
    broken = f"{REGISTRY}/tactical-marl:9.9.9"

    def compare(step: str) -> str:
        sandbox.set_faults("kubernetes", controller_paused=True, unpullable_images=[broken])
        verdict = kubectl("rollout", "status", "deployment/tactical-marl", "--watch=false")
        theirs = (
            "failed" if verdict.returncode else ("done" if "successfully rolled out" in verdict.stdout else "waiting")
        )
        try:
            ours = "done" if rollout_state(hook.deployment(NAMESPACE, "tactical-marl")).done else "waiting"
        except RolloutFailed:
            ours = "failed"
        assert ours == theirs, f"{step}: kubectl says {theirs} ({verdict.stdout or verdict.stderr}), we say {ours}"
        sandbox.set_faults("kubernetes", controller_paused=False, unpullable_images=[broken])
        return ours

    seen = [compare("before")]
    set_image(admin, "tactical-marl", f"{REGISTRY}/tactical-marl:1.9.1")
    for step in range(80):
        seen.append(compare(f"good image, step {step}"))
        if seen[-1] == "done" and "waiting" in seen:
            break
        time.sleep(0.15)
    set_image(admin, "tactical-marl", broken)
    for step in range(120):
        seen.append(compare(f"broken image, step {step}"))
        if seen[-1] == "failed":
            break
        time.sleep(0.15)
    assert seen[0] == "done" and "waiting" in seen and seen[-1] == "failed"
