"""The real kubectl (1.37, from the test lock) against the sandbox: output, exit code and resulting state must be
what a cluster gives."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from cryptography import x509

RS_REVISION = "deployment.kubernetes.io/revision"


def replica_sets(kubectl, name: str) -> list[dict]:
    items = kubectl.json("get", "rs", "-l", f"app={name}")["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"][RS_REVISION]))


def test_create_and_get_json(kubectl, manifest):
    result = kubectl("create", "-f", "-", stdin=manifest("conformance-create"))
    assert result.returncode == 0 and result.stdout.strip() == "deployment.apps/conformance-create created"
    try:
        again = kubectl("create", "-f", "-", stdin=manifest("conformance-create"))
        assert again.returncode == 1
        assert 'deployments.apps "conformance-create" already exists' in again.stderr
        obj = kubectl.json("get", "deployment", "conformance-create")
        meta, spec = obj["metadata"], obj["spec"]
        assert (obj["kind"], obj["apiVersion"]) == ("Deployment", "apps/v1")
        assert meta["uid"] and meta["resourceVersion"].isdigit() and meta["generation"] == 1
        assert datetime.strptime(meta["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
        assert spec["strategy"] == {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
        }
        assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
        container = spec["template"]["spec"]["containers"][0]
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["terminationMessagePath"] == "/dev/termination-log"
        listed = kubectl.json("get", "deployments")
        assert listed["kind"] == "List" or listed["kind"] == "DeploymentList"
        assert "conformance-create" in [i["metadata"]["name"] for i in listed["items"]]
    finally:
        kubectl("delete", "deployment", "conformance-create")


def test_invalid_objects_get_422(kubectl, manifest):
    bad = json.loads(manifest("conformance-invalid"))
    bad["spec"]["replicas"] = -1
    result = kubectl("create", "-f", "-", stdin=json.dumps(bad))
    assert result.returncode == 1
    # kubectl renders a real 422 Status from its details.causes
    assert result.stderr.strip() == (
        'The Deployment "conformance-invalid" is invalid: spec.replicas: Invalid value: '
        "-1: must be greater than or equal to 0"
    )


def test_rollout_status_scale_to_zero_and_back(kubectl, deployment, wait_for):
    name = deployment(replicas=3)
    status = kubectl.json("get", "deployment", name)["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3,
        3,
        3,
        3,
    )
    assert status["observedGeneration"] == kubectl.json("get", "deployment", name)["metadata"]["generation"]

    assert kubectl.ok("scale", f"deployment/{name}", "--replicas=5").strip() == f"deployment.apps/{name} scaled"
    assert f'deployment "{name}" successfully rolled out' in kubectl.ok("rollout", "status", f"deployment/{name}")
    assert len(kubectl.json("get", "pods", "-l", f"app={name}")["items"]) == 5

    kubectl.ok("scale", f"deployment/{name}", "--replicas=0")
    kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=30s")
    # As on a cluster, rollout status is satisfied at once; the pods then go and the counts drop to zero.
    zero = wait_for(lambda: (d := kubectl.json("get", "deployment", name)) and "replicas" not in d["status"] and d)
    assert zero["spec"]["replicas"] == 0
    assert "readyReplicas" not in zero["status"] and "availableReplicas" not in zero["status"], "zeros are omitted"
    assert kubectl.json("get", "pods", "-l", f"app={name}")["items"] == []

    kubectl.ok("scale", f"deployment/{name}", "--replicas=2")
    kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=30s")
    assert kubectl.json("get", "deployment", name)["status"]["availableReplicas"] == 2
    assert len(replica_sets(kubectl, name)) == 1, "scaling is not a new revision"


def test_set_image_history_undo_and_restart(kubectl, deployment):
    name = deployment(image="nginx:1.25")
    assert (
        kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:1.26").strip()
        == f"deployment.apps/{name} image updated"
    )
    assert f'deployment "{name}" successfully rolled out' in kubectl.ok("rollout", "status", f"deployment/{name}")
    pods = kubectl.json("get", "pods", "-l", f"app={name}")["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.26"}
    rs = replica_sets(kubectl, name)
    assert [(r["metadata"]["annotations"][RS_REVISION], r["spec"]["replicas"]) for r in rs] == [("1", 0), ("2", 3)]
    assert kubectl.json("get", "deployment", name)["metadata"]["annotations"][RS_REVISION] == "2"

    history = kubectl.ok("rollout", "history", f"deployment/{name}")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

    assert kubectl.ok("rollout", "undo", f"deployment/{name}").strip() == f"deployment.apps/{name} rolled back"
    kubectl.ok("rollout", "status", f"deployment/{name}")
    undone = kubectl.json("get", "deployment", name)
    assert undone["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert undone["metadata"]["annotations"][RS_REVISION] == "3"
    rs = replica_sets(kubectl, name)
    assert len(rs) == 2, "undo reuses the old ReplicaSet"
    assert rs[-1]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert "pod-template-hash" not in undone["spec"]["template"]["metadata"]["labels"]

    skipped = kubectl.ok("rollout", "undo", f"deployment/{name}", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in skipped
    kubectl.ok("rollout", "undo", f"deployment/{name}", "--to-revision=2")
    kubectl.ok("rollout", "status", f"deployment/{name}")
    assert kubectl.json("get", "deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    missing = kubectl("rollout", "undo", f"deployment/{name}", "--to-revision=99")
    assert missing.returncode == 1 and "unable to find specified revision 99 in history" in missing.stderr

    assert kubectl.ok("rollout", "restart", f"deployment/{name}").strip() == f"deployment.apps/{name} restarted"
    kubectl.ok("rollout", "status", f"deployment/{name}")
    restarted = kubectl.json("get", "deployment", name)
    stamp = restarted["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert abs(datetime.now(UTC) - datetime.fromisoformat(stamp.replace("Z", "+00:00"))) < timedelta(minutes=1)
    assert restarted["metadata"]["annotations"][RS_REVISION] == "5"


def test_paused_deployments_refuse_undo_and_restart(kubectl, deployment):
    name = deployment()
    kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:1.26")
    kubectl.ok("rollout", "status", f"deployment/{name}")
    kubectl.ok("rollout", "pause", f"deployment/{name}")
    undo = kubectl("rollout", "undo", f"deployment/{name}")
    assert undo.returncode == 1 and "you cannot rollback a paused deployment" in undo.stderr
    restart = kubectl("rollout", "restart", f"deployment/{name}")
    assert restart.returncode == 1 and "can't restart paused deployment" in restart.stderr
    kubectl.ok("rollout", "resume", f"deployment/{name}")


def test_a_broken_image_exceeds_the_progress_deadline(kubectl, deployment, sandbox):
    name = deployment()
    sandbox.set_faults("kubernetes", unpullable_images=["nginx:9.9-missing"])
    kubectl.ok("patch", f"deployment/{name}", "-p", '{"spec":{"progressDeadlineSeconds":3}}')
    kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:9.9-missing")
    result = kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s")
    assert result.returncode == 1
    assert f'error: deployment "{name}" exceeded its progress deadline' in result.stderr
    progressing = next(
        c for c in kubectl.json("get", "deployment", name)["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    stuck = [
        p
        for p in kubectl.json("get", "pods", "-l", f"app={name}")["items"]
        if p["spec"]["containers"][0]["image"] == "nginx:9.9-missing"
    ]
    assert stuck and stuck[0]["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    available = kubectl.json("get", "deployment", name)["status"]["availableReplicas"]
    assert available == 3, "the old pods keep serving while the new ones cannot start"


def test_auth_can_i_per_token(kubectl):
    cases = [
        ("admin", ["delete", "deployments"], True),
        ("viewer", ["delete", "deployments"], False),
        ("viewer", ["list", "pods"], True),
        ("viewer", ["list", "secrets"], False),
        ("deployer", ["patch", "deployments/scale"], True),
        ("deployer", ["delete", "deployments"], False),
        ("deployer", ["list", "deployments", "-n", "kube-system"], False),
        ("trading-user", ["delete", "secrets", "-n", "kube-system"], True),
    ]
    for context, args, allowed in cases:
        result = kubectl("auth", "can-i", *args, context=context)
        assert (result.returncode, result.stdout.strip()) == ((0, "yes") if allowed else (1, "no")), (context, args)


def test_auth_can_i_list_and_impersonation(kubectl):
    rules = kubectl.ok("auth", "can-i", "--list", context="deployer")
    assert any(
        line.startswith("deployments.apps ") and "[get list watch patch update]" in line for line in rules.splitlines()
    )
    over = kubectl.ok("auth", "can-i", "--list", "--as=system:serviceaccount:grandmodel:trading-user")
    assert over.splitlines()[1].split()[0] == "*.*", "the over-privileged account can do everything"
    refused = kubectl("auth", "can-i", "--list", "--as=viewer", context="deployer")
    assert refused.returncode == 1 and "cannot impersonate" in refused.stderr


def test_forbidden_matches_a_real_server(kubectl):
    result = kubectl("get", "secrets", context="viewer")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "viewer" cannot list '
        'resource "secrets" in API group "" in the namespace "grandmodel"'
    )


def test_tls_secrets_by_field_selector_hold_real_certificates(kubectl):
    names = kubectl.ok("get", "secrets", "--field-selector", "type=kubernetes.io/tls", "-o", "name").split()
    assert names == [
        "secret/api-gateway-tls",
        "secret/auth-service-tls",
        "secret/data-feed-client-tls",
        "secret/legacy-admin-tls",
    ]
    everywhere = kubectl.json("get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls")["items"]
    expiry = {}
    for secret in everywhere:
        pem = base64.b64decode(secret["data"]["tls.crt"])
        cert = x509.load_pem_x509_certificate(pem)
        expiry[secret["metadata"]["name"]] = (cert.not_valid_after_utc - datetime.now(UTC)).days
    assert expiry["prometheus-tls"] >= 89 and expiry["api-gateway-tls"] >= 199
    assert 20 <= expiry["auth-service-tls"] <= 21 and 4 <= expiry["data-feed-client-tls"] <= 5
    assert expiry["legacy-admin-tls"] < 0
    assert "platform-db-credentials" not in {s["metadata"]["name"] for s in everywhere}


def test_logs_and_events(kubectl):
    logs = kubectl.ok("logs", "deployment/auth-service", "--tail=400")
    assert len(logs.splitlines()) == 400 and "FAILED_LOGIN" in logs
    gateway = kubectl.ok("logs", "deployment/api-gateway", "--tail=200")
    assert "status=401" in gateway and "status=403" in gateway
    events = kubectl.json("get", "events", "--field-selector", "reason=SuccessfulCreate")["items"]
    assert events and all(e["involvedObject"]["kind"] == "ReplicaSet" for e in events)


def test_kubectl_get_prints_the_servers_table(kubectl):
    table = kubectl.ok("get", "deployments", "api-gateway").splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["api-gateway", "2/2", "2", "2"]
    pods = kubectl.ok("get", "pods", "-l", "app=api-gateway").splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert all(line.split()[1:3] == ["1/1", "Running"] for line in pods[1:])


# --- delete options, paused scaling, protobuf bodies and generation: as a real API server and controller ---------


def test_delete_dry_run_server_deletes_nothing(kubectl, deployment):
    """kubectl sends ``--dry-run=server`` as ``dryRun: ["All"]`` in the DeleteOptions body, not in the query."""
    name = deployment(replicas=2)
    before = kubectl.json("get", "deployment", name)
    pods = kubectl.json("get", "pods", "-l", f"app={name}")["items"]
    result = kubectl("delete", "deployment", name, "--dry-run=server")
    assert (result.returncode, result.stdout.strip()) == (
        0,
        f'deployment.apps "{name}" deleted from grandmodel namespace (server dry run)',
    )
    kept = kubectl.ok("delete", "pod", pods[0]["metadata"]["name"], "--dry-run=server", "-o", "name")
    assert kept.strip() == f"pod/{pods[0]['metadata']['name']}"
    after = kubectl.json("get", "deployment", name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert len(replica_sets(kubectl, name)) == 1
    assert {p["metadata"]["uid"] for p in kubectl.json("get", "pods", "-l", f"app={name}")["items"]} == {
        p["metadata"]["uid"] for p in pods
    }
    assert (
        kubectl.ok("delete", "deployment", name).strip()
        == f'deployment.apps "{name}" deleted from grandmodel namespace'
    )
    gone = kubectl("get", "deployment", name)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_delete_cascade_orphan_and_foreground(kubectl, deployment, wait_for):
    name = deployment(replicas=2)
    pods = {p["metadata"]["uid"] for p in kubectl.json("get", "pods", "-l", f"app={name}")["items"]}
    kubectl.ok("delete", "deployment", name, "--cascade=orphan")
    try:
        (orphan,) = kubectl.json("get", "rs", "-l", f"app={name}")["items"]
        assert "ownerReferences" not in orphan["metadata"], "the ReplicaSet no longer names the deleted owner"
        still = wait_for(lambda: kubectl.json("get", "pods", "-l", f"app={name}")["items"])
        assert {p["metadata"]["uid"] for p in still} == pods, "the pods stay: their owner, the ReplicaSet, does"
    finally:
        kubectl("delete", "rs", "-l", f"app={name}")

    name = deployment(replicas=2)
    kubectl.ok("delete", "deployment", name, "--cascade=foreground", "--dry-run=server")
    assert len(kubectl.json("get", "pods", "-l", f"app={name}")["items"]) == 2, "a dry run, whatever the cascade"
    result = kubectl("delete", "deployment", name, "--cascade=foreground", "--timeout=30s")
    assert (result.returncode, result.stdout.strip()) == (
        0,
        f'deployment.apps "{name}" deleted from grandmodel namespace',
    )
    assert kubectl.json("get", "rs", "-l", f"app={name}")["items"] == []
    assert kubectl.json("get", "pods", "-l", f"app={name}")["items"] == [], "foreground: the dependents go first"


def test_a_paused_deployment_scales_its_active_replica_set(kubectl, deployment, wait_for):
    name = deployment(replicas=2)
    kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:1.26")
    kubectl.ok("rollout", "status", f"deployment/{name}")
    assert kubectl.ok("rollout", "pause", f"deployment/{name}").strip() == f"deployment.apps/{name} paused"
    again = kubectl("rollout", "pause", f"deployment/{name}")
    assert again.returncode == 1 and f'deployments.apps "{name}" is already paused' in again.stderr

    kubectl.ok("scale", f"deployment/{name}", "--replicas=4")
    scaled = wait_for(lambda: [r["spec"]["replicas"] for r in replica_sets(kubectl, name)] == [0, 4])
    assert scaled, "the newest (active) ReplicaSet takes the new size, the old one stays at 0"
    wait_for(lambda: len(kubectl.json("get", "pods", "-l", f"app={name}")["items"]) == 4)

    # A template change while paused makes no new ReplicaSet; scaling still resizes the active one.
    kubectl.ok("set", "image", f"deployment/{name}", "web=nginx:1.27")
    kubectl.ok("scale", f"deployment/{name}", "--replicas=3")
    wait_for(lambda: [r["spec"]["replicas"] for r in replica_sets(kubectl, name)] == [0, 3])
    images = {p["spec"]["containers"][0]["image"] for p in kubectl.json("get", "pods", "-l", f"app={name}")["items"]}
    assert images == {"nginx:1.26"}, "paused: no rollout"
    progressing = next(
        c for c in kubectl.json("get", "deployment", name)["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")

    assert kubectl.ok("rollout", "resume", f"deployment/{name}").strip() == f"deployment.apps/{name} resumed"
    kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=60s")
    rs = replica_sets(kubectl, name)
    assert [(r["spec"]["template"]["spec"]["containers"][0]["image"], r["spec"]["replicas"]) for r in rs] == [
        ("nginx:1.25", 0),
        ("nginx:1.26", 0),
        ("nginx:1.27", 3),
    ]


def _comparable(obj: dict) -> dict:
    """What the client asked for and the server defaulted, without what differs between two objects by name."""
    server_owned = ("name", "uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")
    meta = {k: v for k, v in obj["metadata"].items() if k not in server_owned}
    text = json.dumps({**obj, "metadata": meta}).replace(obj["metadata"]["name"], "NAME")
    body = json.loads(text)
    for volatile in ("status",):
        body.pop(volatile, None)
    if obj["kind"] == "Service":
        body["spec"].pop("clusterIP")
        body["spec"].pop("clusterIPs")
    return body


def test_protobuf_bodies_create_built_in_kinds(kubectl, wait_for):
    """kubectl's typed ``create`` commands send protobuf; the object must be the one the same command's JSON makes."""
    commands = [
        ("deployment", ["--image=nginx:1.25", "--replicas=2", "--port=80"]),
        ("deployment", ["--image=nginx:1.25", "--replicas=0"]),
        ("configmap", ["--from-literal=a=b", "--from-literal=empty="]),
        ("secret", ["generic", "--from-literal=password=s3cr3t", "--type=Opaque"]),
        ("service", ["clusterip", "--tcp=80:8080"]),
        ("serviceaccount", []),
        ("role", ["--verb=get,list", "--resource=pods"]),
        ("rolebinding", ["--role=view", "--serviceaccount=grandmodel:default"]),
        ("clusterrole", ["--verb=get", "--resource=deployments.apps"]),
        ("clusterrolebinding", ["--clusterrole=view", "--user=alice", "--group=ops"]),
    ]
    created: list[tuple[str, str]] = []
    try:
        for index, (kind, args) in enumerate(commands):
            sub, args = (args[0], args[1:]) if kind in ("secret", "service") else (None, args)
            plural = {"deployment": "deployments", "service": "services"}.get(kind, kind)
            names = [f"pb-{kind}-{index}", f"js-{kind}-{index}"]
            words = [w for w in ("create", kind, sub) if w]
            result = kubectl(*words, names[0], *args)
            assert result.returncode == 0, (kind, result.stderr)
            created.append((kind, names[0]))
            client_side = kubectl.ok(*words, names[1], *args, "--dry-run=client", "-o", "json")
            kubectl.ok("create", "-f", "-", stdin=client_side)
            created.append((kind, names[1]))
            from_protobuf, from_json = (kubectl.json("get", plural, n) for n in names)
            assert _comparable(from_protobuf) == _comparable(from_json), kind
        assert kubectl.json("get", "deployment", "pb-deployment-1")["spec"]["replicas"] == 0, "a pointer's zero stays"
        assert kubectl.json("get", "configmap", "pb-configmap-2")["data"] == {"a": "b", "empty": ""}
        secret = kubectl.json("get", "secret", "pb-secret-3")
        assert base64.b64decode(secret["data"]["password"]) == b"s3cr3t"
        kubectl.ok("rollout", "status", "deployment/pb-deployment-0", "--timeout=60s")
        ns = kubectl("create", "namespace", "pb-namespace")
        assert (ns.returncode, ns.stdout.strip()) == (0, "namespace/pb-namespace created")
        assert kubectl.json("get", "namespace", "pb-namespace")["status"]["phase"] == "Active"
    finally:
        for kind, name in created:
            kubectl("delete", kind, name)
        kubectl("delete", "namespace", "pb-namespace")


def test_annotations_bump_a_deployments_generation_labels_do_not(kubectl, deployment, wait_for):
    name = deployment()
    generation = kubectl.json("get", "deployment", name)["metadata"]["generation"]
    kubectl.ok("annotate", "deployment", name, "tradeops.io/note=blue-green")
    annotated = kubectl.json("get", "deployment", name)
    assert annotated["metadata"]["generation"] == generation + 1
    kubectl.ok("annotate", "deployment", name, "tradeops.io/note=blue-green", "--overwrite")
    assert kubectl.json("get", "deployment", name)["metadata"]["generation"] == generation + 1, "no change, no bump"
    kubectl.ok("label", "deployment", name, "tier=web")
    assert kubectl.json("get", "deployment", name)["metadata"]["generation"] == generation + 1
    wait_for(lambda: kubectl.json("get", "deployment", name)["status"]["observedGeneration"] == generation + 1)
    kubectl.ok("rollout", "status", f"deployment/{name}", "--timeout=30s")

    (rs,) = replica_sets(kubectl, name)
    kubectl.ok("annotate", "rs", rs["metadata"]["name"], "tradeops.io/note=x")
    after = kubectl.json("get", "rs", rs["metadata"]["name"])
    assert after["metadata"]["generation"] == rs["metadata"]["generation"], "ReplicaSets bump on spec changes only"
