"""The Helm values (include/helm/values.yaml) and TradeOps' RBAC manifest, checked against the lock, the code and the
config; and against the official chart's ``values.schema.json`` when one is on the machine.

Neither helm nor the chart can be had offline, so the schema is optional: point ``AIRFLOW_CHART_SCHEMA`` at the
chart's ``values.schema.json`` (from ``helm pull apache-airflow/airflow --untar`` or the chart/ folder of
apache/airflow) to validate against it; without it that one test is skipped, and every static check still runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeops.config import load_config
from tradeops.dagkit import DEFAULT_QUEUE, QUEUE_BY_DOMAIN

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "include" / "helm" / "values.yaml"
RBAC = REPO / "include" / "kubernetes" / "tradeops-rbac.yaml"
SCHEMA_ENV = "AIRFLOW_CHART_SCHEMA"
# The chart's values that hold a secret itself (each has a *SecretName twin that names a Secret instead).
SECRET_KEYS = re.compile(
    r"^(password|token|fernetKey|jwtSecret|apiSecretKey|webserverSecretKey|metadataConnection|"
    r"resultBackendConnection|brokerUrl)$"
)
# A credential inside a URL (scheme://user:secret@host), a Slack token or webhook, a PEM block.
SECRET_VALUES = re.compile(r"://[^/\s:@]*:[^/\s@]+@|xox[abp]-|hooks\.slack\.com/services/|-----BEGIN")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


@pytest.fixture(scope="module")
def rbac() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]


@pytest.fixture(scope="module")
def config():
    return load_config(REPO / "include" / "config" / "tradeops.yaml")


def locked_airflow() -> str:
    (version,) = re.findall(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    return version


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def service_account(rbac: list[dict[str, Any]]) -> dict[str, Any]:
    (account,) = [doc for doc in rbac if doc["kind"] == "ServiceAccount"]
    return account


def test_values_validate_against_the_charts_schema(values):
    path = os.environ.get(SCHEMA_ENV)
    if not path or not Path(path).is_file():
        pytest.skip(f"no chart schema: set {SCHEMA_ENV} to the chart's values.schema.json to validate against it")
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(Path(path).read_text()))
    errors = [f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in validator.iter_errors(values)]
    assert errors == []


def test_airflow_version_and_images_are_the_locks(values):
    version = locked_airflow()
    assert values["airflowVersion"] == version
    image = values["images"]["airflow"]
    assert image["repository"] == values["defaultAirflowRepository"]
    for tag in (values["defaultAirflowTag"], image["tag"]):
        assert tag == version or tag.startswith(f"{version}-"), f"image tag {tag} is not Airflow {version}"
    # the containers the chart does not template (init containers) run the very same image
    ours = f"{image['repository']}:{image['tag']}"
    extra = values["migrateDatabaseJob"]["extraInitContainers"] + values["apiServer"]["extraInitContainers"]
    assert {c["image"] for c in extra} == {ours}


def test_celery_workers_scaled_by_keda_serve_every_queue_the_dag_kit_assigns(values):
    assert values["executor"] == "CeleryExecutor"
    workers = values["workers"]
    assert workers["keda"]["enabled"] is True
    assert 1 <= workers["keda"]["minReplicaCount"] <= workers["keda"]["maxReplicaCount"]
    (queues,) = re.findall(r"--queues (\S+)", " ".join(workers["args"]))
    assert set(queues.split(",")) == {DEFAULT_QUEUE, *QUEUE_BY_DOMAIN.values()}
    assert isinstance(values["config"]["celery"]["worker_concurrency"], int)  # KEDA's divisor


def test_visibility_timeout_is_the_one_the_celery_topology_runs_with(values):
    from devstack.airflow import VISIBILITY_TIMEOUT_S

    assert values["config"]["celery_broker_transport_options"]["visibility_timeout"] == VISIBILITY_TIMEOUT_S


def test_every_connection_the_code_reads_comes_from_the_secret(values, config):
    read_by_code = set(config.connections.model_dump().values())
    mapped = {entry["secretKey"]: entry for entry in values["secret"]}
    assert set(mapped) == read_by_code
    for conn_id, entry in mapped.items():
        assert entry["envName"] == f"AIRFLOW_CONN_{conn_id.upper()}"
    assert len({entry["secretName"] for entry in values["secret"]}) == 1


def test_tradeops_config_is_mounted_where_TRADEOPS_CONFIG_points(values):
    (config_env,) = [e["value"] for e in values["env"] if e["name"] == "TRADEOPS_CONFIG"]
    config_maps = {v["name"] for v in values["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: m["name"] for m in values["volumeMounts"]}
    assert mounts[str(Path(config_env).parent)] in config_maps


def test_the_state_database_migration_runs_in_the_migration_job(values, config):
    job = values["migrateDatabaseJob"]
    assert job["enabled"] is True
    (migrate,) = [c for c in job["extraInitContainers"] if "tradeops.incidents" in c["command"]]
    assert migrate["command"] == ["python", "-m", "tradeops.incidents", "migrate"]
    env = env_of(migrate)
    state_db = config.connections.state_db
    secret_ref = env[f"AIRFLOW_CONN_{state_db.upper()}"]["valueFrom"]["secretKeyRef"]
    assert secret_ref == {"name": values["secret"][0]["secretName"], "key": state_db}
    config_dir = str(Path(env["TRADEOPS_CONFIG"]["value"]).parent)
    (mount,) = [m for m in migrate["volumeMounts"] if m["mountPath"] == config_dir]
    assert mount["name"] in {v["name"] for v in job["extraVolumes"] if "configMap" in v}
    # the command exists with that name in the image's plugins
    env_run = {**os.environ, "PYTHONPATH": env["PYTHONPATH"]["value"].replace("/opt/airflow", str(REPO))}
    result = subprocess.run(
        [sys.executable, "-m", "tradeops.incidents", "migrate", "--help"], env=env_run, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_workers_and_triggerers_run_as_tradeops_service_account(values, rbac):
    account = service_account(rbac)["metadata"]
    assert account["namespace"] == "tradeops"  # the release's namespace (values.yaml's header)
    assert values["triggerer"]["enabled"] is True and values["triggerer"]["replicas"] >= 1
    for component in ("workers", "triggerer"):
        assert values[component]["serviceAccount"] == {"create": False, "name": account["name"]}


def test_the_configs_approvers_are_airflow_users(values, config):
    users = {entry.split(":")[0] for entry in values["config"]["core"]["simple_auth_manager_users"].split(",")}
    assert set(config.blue_green.approvers) <= users
    assert values["apiServer"]["defaultUser"]["enabled"] is False


def test_no_secret_value_is_committed(values):
    def walk(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = []
            for key, value in node.items():
                if SECRET_KEYS.search(str(key)) and isinstance(value, str) and value:
                    found.append(f"{path}.{key}")
                found += walk(value, f"{path}.{key}")
            return found
        if isinstance(node, list):
            return [hit for i, item in enumerate(node) for hit in walk(item, f"{path}[{i}]")]
        return [path] if isinstance(node, str) and SECRET_VALUES.search(node) else []

    assert walk(values, "") == []
    for name in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[name]  # Airflow's own secrets come from Secrets made beforehand, not generated per upgrade
    assert "metadataConnection" not in values["data"] and "brokerUrl" not in values["data"]


def _role(rbac, name: str) -> dict:
    (role,) = [doc for doc in rbac if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == name]
    return role


def test_the_rbac_manifest_is_least_privilege(rbac):
    cluster_wide = [doc for doc in rbac if doc["kind"] == "ClusterRoleBinding"]
    # The operator's role is granted per namespace; cluster-wide only the security check's read-only role and the
    # access review's delete-only one.
    assert [doc["roleRef"]["name"] for doc in cluster_wide] == ["tradeops-security-reader", "tradeops-access-remover"]
    for doc in rbac:
        if doc["kind"] == "RoleBinding":
            assert doc["roleRef"]["name"] not in {"cluster-admin", "admin", "edit"}
    assert {doc["metadata"]["name"] for doc in rbac if doc["kind"] == "ClusterRole"} == {
        "tradeops-operator",
        "tradeops-security-reader",
        "tradeops-access-remover",
    }
    assert _role(rbac, "tradeops-access-remover")["rules"] == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["rolebindings", "clusterrolebindings"],
            "verbs": ["delete"],
        }
    ]
    for rule in _role(rbac, "tradeops-operator")["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate", "deletecollection"}
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["list"]  # the certificate checks; never get/watch
        if "delete" in rule["verbs"]:
            assert rule.get("resourceNames"), "delete only named objects"
    for rule in _role(rbac, "tradeops-security-reader")["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"] and "secrets" not in rule["resources"]
        expected = ["create"] if rule["resources"] == ["subjectaccessreviews"] else ["list"]
        assert rule["verbs"] == expected, rule  # reads, and questions to the API server: nothing else


RESOURCES = {
    "deployment": ("apps", "deployments"),
    "stateful_set": ("apps", "statefulsets"),
    "replica_set": ("apps", "replicasets"),
    "pod": ("", "pods"),
    "pod_log": ("", "pods/log"),
    "event": ("", "events"),
    "secret": ("", "secrets"),
    "service": ("", "services"),
    "config_map": ("", "configmaps"),
    "ingress": ("networking.k8s.io", "ingresses"),
    "role_binding": ("rbac.authorization.k8s.io", "rolebindings"),
}
CLUSTER_CALLS = {  # the security check's cluster-wide reads
    "list_namespace": ("list", "", "namespaces"),
    "list_network_policy_for_all_namespaces": ("list", "networking.k8s.io", "networkpolicies"),
    "list_role_for_all_namespaces": ("list", "rbac.authorization.k8s.io", "roles"),
    "list_role_binding_for_all_namespaces": ("list", "rbac.authorization.k8s.io", "rolebindings"),
    "list_cluster_role": ("list", "rbac.authorization.k8s.io", "clusterroles"),
    "list_cluster_role_binding": ("list", "rbac.authorization.k8s.io", "clusterrolebindings"),
    "create_subject_access_review": ("create", "authorization.k8s.io", "subjectaccessreviews"),
    "list_service_account_for_all_namespaces": ("list", "", "serviceaccounts"),
    "delete_cluster_role_binding": ("delete", "rbac.authorization.k8s.io", "clusterrolebindings"),
}


def called_by_the_code() -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(verb, apiGroup, resource) of every Kubernetes client call in the library: namespaced, and cluster-wide."""
    verbs = {"read": "get", "list": "list", "patch": "patch", "create": "create", "delete": "delete"}
    namespaced, cluster = set(), set()
    for path in (REPO / "plugins" / "tradeops").rglob("*.py"):
        text = path.read_text()
        for verb, kind in re.findall(r"\b(read|list|patch|create|delete)_namespaced_([a-z_]+?)\b", text):
            assert kind in RESOURCES, f"{path}: unknown resource {kind!r}: add it here and to the RBAC manifest"
            namespaced.add((verbs[verb], *RESOURCES[kind]))
        client_calls = r"\b(?:api|core|apps)\.((?:list|create|read|patch|delete)_(?!namespaced_)[a-z_]+)\b"
        for call in re.findall(client_calls, text):
            assert call in CLUSTER_CALLS, f"{path}: cluster-wide call {call!r}: add it here and to the RBAC manifest"
            cluster.add(CLUSTER_CALLS[call])
    return namespaced, cluster


def test_the_rbac_manifest_allows_every_call_the_code_makes(rbac):
    def allowed(role: dict, verb: str, group: str, resource: str) -> bool:
        return any(verb in r["verbs"] and group in r["apiGroups"] and resource in r["resources"] for r in role["rules"])

    namespaced, cluster = called_by_the_code()
    namespaced |= {("watch", "apps", "deployments")}  # the rollout trigger watches
    assert {("patch", "apps", "deployments"), ("list", "", "secrets")} <= namespaced  # the scan found the calls
    assert len(cluster) == len(CLUSTER_CALLS)
    operator, reader = _role(rbac, "tradeops-operator"), _role(rbac, "tradeops-security-reader")
    remover = _role(rbac, "tradeops-access-remover")  # bound cluster-wide: the access review's deletes
    assert sorted(call for call in namespaced if not (allowed(operator, *call) or allowed(remover, *call))) == []
    assert sorted(call for call in cluster if not (allowed(reader, *call) or allowed(remover, *call))) == []
    assert {verb for rule in remover["rules"] for verb in rule["verbs"]} == {"delete"}, "takes access, never gives"


def test_backups_and_reports_are_on_a_volume_every_worker_shares(values):
    env = {e["name"]: e["value"] for e in values["env"]}
    workers = values["workers"]
    claims = {v["name"] for v in workers["extraVolumes"] if "persistentVolumeClaim" in v}
    shared = [m["mountPath"] for m in workers["extraVolumeMounts"] if m["name"] in claims]
    for name in ("TRADEOPS_BACKUP_DIR", "TRADEOPS_REPORTS_DIR"):
        assert any(Path(env[name]).is_relative_to(mount) for mount in shared), f"{name} is not on a shared volume"
