"""TradeOps' Kubernetes operators against the sandbox cluster, run as TradeOps' own service account (bound only to
include/kubernetes/tradeops-rbac.yaml): success, already done, refusal, 5xx bursts, 409 conflicts, 403 and 404."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from tradeops.exceptions import KubernetesForbidden, KubernetesNotFound
from tradeops.kubernetes.hooks import KubernetesApiHook
from tradeops.kubernetes.operators import (
    CollectDiagnosticsOperator,
    PatchServiceOperator,
    RolloutRestartOperator,
    RolloutUndoOperator,
    ScaleDeploymentsOperator,
    SetImageOperator,
)
from tradeops.kubernetes.patches import SAVED_REPLICAS
from tradeops.kubernetes.sensors import RolloutStatusSensor

NAMESPACE = "grandmodel"
REGISTRY = "registry.quantnova.internal/grandmodel"
REPO = Path(__file__).resolve().parents[3]


def wait_rolled_out(*names: str) -> None:
    RolloutStatusSensor(
        task_id="wait", names=list(names), deferrable=False, poke_interval=0.2, timeout=60, mode="poke"
    ).execute({})


def settled_resource_version(admin, name: str, timeout: float = 60) -> str:
    """The deployment's resourceVersion once its controller has stopped writing status (rollout done, pods ready)."""
    import time

    from tradeops.kubernetes.rollout import rollout_state

    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        obj = admin.deployment(NAMESPACE, name)
        rv = obj["metadata"]["resourceVersion"]
        if rollout_state(obj).done and rv == previous:
            return rv
        previous = rv
        time.sleep(1)
    raise TimeoutError(f"{name} never settled")


def test_scale_profiles_record_and_restore_the_previous_count(admin, context, preserved, config):
    preserved("strategic-marl", "tactical-marl")
    names = ["strategic-marl", "tactical-marl"]
    before = {n: admin.deployment(NAMESPACE, n)["spec"]["replicas"] for n in names}

    up = ScaleDeploymentsOperator(task_id="up", deployments=names, profile="market_hours").execute(context)
    assert [(r["deployment"], r["from"], r["to"], r["changed"]) for r in up] == [
        (n, before[n], config.kubernetes.deployment(n).replicas.market_hours, True) for n in names
    ]
    for name in names:
        obj = admin.deployment(NAMESPACE, name)
        assert obj["spec"]["replicas"] == config.kubernetes.deployment(name).replicas.market_hours
        assert obj["metadata"]["annotations"][SAVED_REPLICAS] == str(before[name])

    rv = settled_resource_version(admin, "tactical-marl")
    again = ScaleDeploymentsOperator(task_id="up", deployments=names, profile="market_hours").execute(context)
    assert [r["changed"] for r in again] == [False, False]
    assert admin.deployment(NAMESPACE, "tactical-marl")["metadata"]["resourceVersion"] == rv, "a no-op writes nothing"

    stop = ScaleDeploymentsOperator(task_id="stop", deployments=names, profile="zero").execute(context)
    assert [r["to"] for r in stop] == [0, 0]
    restored = ScaleDeploymentsOperator(task_id="restore", deployments=names, profile="restore").execute(context)
    assert [(r["from"], r["to"]) for r in restored] == [
        (0, config.kubernetes.deployment(n).replicas.market_hours) for n in names
    ]
    assert SAVED_REPLICAS not in (admin.deployment(NAMESPACE, "strategic-marl")["metadata"].get("annotations") or {})
    assert [
        r["changed"]
        for r in ScaleDeploymentsOperator(task_id="restore", deployments=names, profile="restore").execute(context)
    ] == [False, False]


def test_scale_dry_run_changes_nothing(admin, context, preserved):
    preserved("execution-engine")
    rv = admin.deployment(NAMESPACE, "execution-engine")["metadata"]["resourceVersion"]
    [record] = ScaleDeploymentsOperator(
        task_id="s", deployments=["execution-engine"], profile="zero", dry_run=True
    ).execute(context)
    assert record["to"] == 0 and record["dry_run"] is True
    assert admin.deployment(NAMESPACE, "execution-engine")["metadata"]["resourceVersion"] == rv


def test_unknown_deployments_and_profiles_are_refused_before_anything_runs(context):
    with pytest.raises(ValueError, match="unknown deployment"):
        ScaleDeploymentsOperator(task_id="s", deployments=["alpha-bot"], profile="zero").execute(context)
    with pytest.raises(AirflowFailException, match="profile must be one of"):
        ScaleDeploymentsOperator(task_id="s", deployments=["data-handler"], profile="max").execute(context)


def test_a_conflicting_write_is_reread_and_retried(admin, connect, preserved):
    """Someone scales the deployment between our read and our write: the 409 makes us read again."""
    preserved("risk-management")
    hook = KubernetesApiHook(connect("tradeops"))
    calls = []

    def change(obj):
        calls.append(obj["spec"]["replicas"])
        if len(calls) == 1:  # a real concurrent writer, after we read
            admin.patch_deployment(NAMESPACE, "risk-management", {"spec": {"replicas": 4}})
        return {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "spec": {"replicas": obj["spec"]["replicas"] + 1},
        }

    before, after, _ = hook.update(
        lambda: hook.deployment(NAMESPACE, "risk-management"),
        change,
        lambda obj, body: hook.patch_deployment(NAMESPACE, "risk-management", body),
    )
    assert calls[1] == 4 and after["spec"]["replicas"] == 5


def test_a_burst_of_5xx_is_retried(context, preserved, sandbox, admin):
    preserved("data-handler")
    sandbox.set_faults("kubernetes", error_burst=2, error_status=503)
    [record] = ScaleDeploymentsOperator(
        task_id="s",
        deployments=["data-handler"],
        profile="market_hours",
    ).execute(context)
    assert record["changed"] and admin.deployment(NAMESPACE, "data-handler")["spec"]["replicas"] == 3


def test_403_names_the_verb_resource_and_the_role(connect, context, preserved):
    preserved("data-handler")
    viewer = connect("viewer")
    with pytest.raises(KubernetesForbidden) as err:
        ScaleDeploymentsOperator(
            task_id="s", deployments=["data-handler"], profile="market_hours", kubernetes_conn_id=viewer
        ).execute(context)
    message = str(err.value)
    assert "Kubernetes refused to patch deployments 'data-handler' in namespace \"grandmodel\"" in message
    assert 'User "viewer" cannot patch resource "deployments"' in message
    assert "include/kubernetes/tradeops-rbac.yaml" in message


def test_404_fails_at_once(context):
    with pytest.raises(KubernetesNotFound, match='services "no-such-service" not found'):
        PatchServiceOperator(task_id="p", service="no-such-service", service_type="ClusterIP").execute(context)


def test_set_image_refuses_images_outside_the_registry_before_changing_anything(admin, context, preserved):
    preserved("tactical-marl")
    image = admin.deployment(NAMESPACE, "tactical-marl")["spec"]["template"]["spec"]["containers"][0]["image"]
    with pytest.raises(AirflowFailException, match="refusing image"):
        SetImageOperator(
            task_id="i",
            images={
                "tactical-marl": f"{REGISTRY}/tactical-marl:1.9.0",
                "strategic-marl": "docker.io/evil/strategic-marl:latest",
            },
        ).execute(context)
    assert admin.deployment(NAMESPACE, "tactical-marl")["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_set_image_undo_and_restart(admin, context, preserved):
    preserved("tactical-marl")
    original = admin.deployment(NAMESPACE, "tactical-marl")["spec"]["template"]["spec"]["containers"][0]["image"]
    new = f"{REGISTRY}/tactical-marl:1.9.0"
    [changed] = SetImageOperator(task_id="i", images={"tactical-marl": new}).execute(context)
    assert (changed["container"], changed["from"], changed["to"], changed["changed"]) == (
        "tactical-marl",
        original,
        new,
        True,
    )
    wait_rolled_out("tactical-marl")
    [same] = SetImageOperator(task_id="i", images={"tactical-marl": new}).execute(context)
    assert same["changed"] is False

    undo = RolloutUndoOperator(task_id="u", deployment="tactical-marl").execute(context)
    assert (undo["image_before"], undo["image_after"], undo["changed"]) == (new, original, True)
    assert undo["to_revision"] == undo["from_revision"] - 1
    wait_rolled_out("tactical-marl")
    current = admin.deployment(NAMESPACE, "tactical-marl")["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"
    ]
    skipped = RolloutUndoOperator(task_id="u", deployment="tactical-marl", to_revision=current).execute(context)
    assert skipped["changed"] is False

    [restart] = RolloutRestartOperator(task_id="r", deployments=["tactical-marl"]).execute(context)
    assert restart["changed"]
    template = admin.deployment(NAMESPACE, "tactical-marl")["spec"]["template"]["metadata"]["annotations"]
    assert template["kubectl.kubernetes.io/restartedAt"] == restart["restarted_at"]
    [retried] = RolloutRestartOperator(task_id="r", deployments=["tactical-marl"]).execute(context)
    assert retried["changed"] is False, "a retry of the same run does not restart twice"
    wait_rolled_out("tactical-marl")


def test_paused_deployments_refuse_undo_and_restart(admin, context, preserved):
    preserved("strategic-marl")
    admin.patch_deployment(NAMESPACE, "strategic-marl", {"spec": {"paused": True}})
    with pytest.raises(AirflowFailException, match="you cannot rollback a paused deployment"):
        RolloutUndoOperator(task_id="u", deployment="strategic-marl").execute(context)
    with pytest.raises(AirflowFailException, match="can't restart paused deployment"):
        RolloutRestartOperator(task_id="r", deployments=["strategic-marl"]).execute(context)


def test_isolate_and_switch_a_service(admin, context, preserved):
    preserved(services=("api-gateway",))
    isolated = PatchServiceOperator(task_id="p", service="api-gateway", service_type="ClusterIP").execute(context)
    assert isolated["before"]["type"] == "LoadBalancer" and isolated["after"]["type"] == "ClusterIP"
    service = admin.service(NAMESPACE, "api-gateway")
    assert all("nodePort" not in port for port in service["spec"]["ports"]), "isolation closes the node ports"
    assert (
        PatchServiceOperator(task_id="p", service="api-gateway", service_type="ClusterIP").execute(context)["changed"]
        is False
    )
    switched = PatchServiceOperator(
        task_id="p", service="api-gateway", selector={"app": "api-gateway", "color": "green"}
    ).execute(context)
    assert admin.service(NAMESPACE, "api-gateway")["spec"]["selector"] == {"app": "api-gateway", "color": "green"}
    assert switched["before"]["selector"] == {"app": "api-gateway"}


def test_diagnostics_archive_is_complete_and_bounded(context, tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEOPS_REPORTS_DIR", str(tmp_path))
    result = CollectDiagnosticsOperator(
        task_id="d", deployments=["auth-service", "api-gateway"], tail_lines=100
    ).execute(context)
    with tarfile.open(result["archive"]) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        auth_log = next(n for n in names if n.startswith("logs/auth-service/"))
        text = tar.extractfile(auth_log).read().decode()
        events = json.load(tar.extractfile("events/grandmodel.json"))
    assert len(text.splitlines()) == 100 and "FAILED_LOGIN" in text
    assert sum(n.startswith("logs/") for n in names) == 4  # 2 pods each
    assert events and manifest["errors"] == [] and manifest["truncated"] is False

    small = CollectDiagnosticsOperator(
        task_id="d2",
        deployments=["auth-service", "api-gateway"],
        tail_lines=100,
        max_bytes_per_container=2000,
        max_total_bytes=5000,
        max_events=10,
    ).execute(context)
    # Logs within their budget; events bounded by count (~1 KB each), whatever the cluster has accumulated.
    assert small["truncated"] is True and small["bytes"] < 5000 + 10 * 2000 + 20_000
    with tarfile.open(small["archive"]) as tar:
        sizes = [m.size for m in tar.getmembers() if m.name.startswith("logs/")]
        kept_events = json.load(tar.extractfile("events/grandmodel.json"))
    assert max(sizes) <= 2000 and sum(sizes) <= 5000
    assert len(kept_events) <= 10


# --- least privilege -------------------------------------------------------------------------------------------


def test_the_rbac_manifest_binds_every_platform_namespace(config):
    docs = list(yaml.safe_load_all((REPO / "include" / "kubernetes" / "tradeops-rbac.yaml").read_text()))
    bound = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert bound == {ns.name for ns in config.kubernetes.namespaces}
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert not verbs & {"deletecollection", "*", "escalate", "bind", "impersonate"}
    # blue-green creates green Deployments and deletes only those, by name (one per configured deployment)
    assert [r["resources"] for r in role["rules"] if "create" in r["verbs"]] == [["deployments"]]
    (deleting,) = [r for r in role["rules"] if "delete" in r["verbs"]]
    assert deleting["verbs"] == ["delete"]
    assert sorted(deleting["resourceNames"]) == sorted(f"{d.name}-green" for d in config.kubernetes.deployments)


def test_the_role_is_all_tradeops_has_and_a_missing_verb_shows_up(admin, connect, context, preserved):
    """Drop one verb from the role in the cluster: the operator that needs it fails with a 403 naming it."""
    from kubernetes import client as k8s

    preserved(services=("api-gateway",))
    tradeops = KubernetesApiHook(connect("tradeops"))
    with pytest.raises(KubernetesForbidden):  # not granted at all: deleting
        tradeops.call(
            "delete",
            "deployments",
            "data-handler",
            NAMESPACE,
            tradeops.apps.delete_namespaced_deployment,
            "data-handler",
            NAMESPACE,
        )
    rbac = k8s.RbacAuthorizationV1Api(admin.api_client)
    role = admin.call("get", "clusterroles", "tradeops-operator", "", rbac.read_cluster_role, "tradeops-operator")
    trimmed = [r for r in role["rules"] if r["resources"] != ["services"]] + [
        {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}
    ]

    def set_rules(rules: list) -> None:
        patch = [{"op": "replace", "path": "/rules", "value": rules}]
        admin.call(
            "patch", "clusterroles", "tradeops-operator", "", rbac.patch_cluster_role, "tradeops-operator", patch
        )

    set_rules(trimmed)
    try:
        with pytest.raises(KubernetesForbidden, match="must allow 'patch' on 'services'"):
            PatchServiceOperator(task_id="p", service="api-gateway", service_type="ClusterIP").execute(context)
    finally:
        set_rules(role["rules"])
    assert PatchServiceOperator(task_id="p", service="api-gateway", service_type="ClusterIP").execute(context)[
        "changed"
    ]


def test_log_reads_are_bounded_by_the_server(connect):
    hook = KubernetesApiHook(connect("tradeops"))
    pod = hook.pods(NAMESPACE, "app=auth-service")[0]["metadata"]["name"]
    text = hook.pod_log(NAMESPACE, pod, "auth-service", tail_lines=400, limit_bytes=1000)
    assert len(text.encode()) <= 1000
    assert io.StringIO(text).readline().startswith("20")  # timestamps=True
