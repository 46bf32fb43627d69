"""Configuration drift of container resources and network policies: the pure evaluation on fixed objects (quantities
compared as numbers, a changed, missing or unapproved policy, who last wrote the field), then the real ``kubectl``
against the sandbox, whose seeded objects are as declared and as approved."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
import yaml

from tradeops.checks.base import Finding, Status
from tradeops.config.base import parse_quantity
from tradeops.config.model import ContainerResources
from tradeops.security.drift import ConfigurationDrift, LiveObjects, policy_baseline, spec_hash

REPO = Path(__file__).resolve().parents[3]
BASELINE = REPO / "include" / "security" / "baseline.yaml"
EARLIER, LATER = "2026-11-01T00:00:00Z", "2026-11-30T09:00:00Z"
DENY_ALL = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
GATEWAY = {
    "podSelector": {"matchLabels": {"app": "api-gateway"}},
    "policyTypes": ["Ingress"],
    "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}],
}


def managed(manager: str, time: str, fields: dict) -> dict:
    return {"manager": manager, "operation": "Update", "time": time, "fieldsType": "FieldsV1", "fieldsV1": fields}


def resources_fields(container: str, section: str, resource: str) -> dict:
    """The FieldsV1 of one request or limit of ``container``."""
    resources = {"f:resources": {f"f:{section}": {".": {}, f"f:{resource}": {}}}}
    return {"f:spec": {"f:template": {"f:spec": {"f:containers": {f'k:{{"name":"{container}"}}': resources}}}}}


def deployment(config, d, resources: dict | None = None, writers: list[dict] | None = None) -> dict:
    """``d`` live as declared (off-hours replicas), but for ``resources`` and the ``writers`` of its managedFields."""
    declared = config.kubernetes.resources_of(d).manifest()
    container = {"name": d.container_name, "image": d.image, "resources": declared if resources is None else resources}
    return {
        "metadata": {"name": d.name, "namespace": d.namespace, "managedFields": writers or []},
        "spec": {"replicas": d.replicas.off_hours, "template": {"spec": {"containers": [container]}}},
    }


def policy(name: str, spec: dict, writers: list[dict] | None = None, namespace: str = "grandmodel") -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "managedFields": writers or []}, "spec": spec}


def drift(config, changed: dict | None = None, policies=(), approved=None) -> dict[str, Finding]:
    """The findings for the config's deployments live as declared, ``changed`` (name -> manifest) replacing some,
    and ``policies`` against the ``approved`` policy baseline; in off hours."""
    live = [(changed or {}).get(d.name) or deployment(config, d) for d in config.kubernetes.deployments]
    data = LiveObjects(live, [], {}, False, {}, [], list(policies), approved or {})
    return {f.id: f for f in ConfigurationDrift().evaluate(data, config).findings}


def failed(findings: dict[str, Finding]) -> dict[str, Finding]:
    return {i: f for i, f in findings.items() if f.status is not Status.OK}


@pytest.mark.parametrize(
    ("one", "other"), [("500m", "0.5"), ("1Gi", "1024Mi"), ("2", "2000m"), ("1k", "1e3"), ("1.5Gi", "1536Mi")]
)
def test_quantities_are_numbers(one, other):
    assert parse_quantity(one) == parse_quantity(other)


@pytest.mark.parametrize("text", ["", "Mi", "1 Gi", "2GB", "1e", "-"])
def test_a_quantity_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(text)


def test_declared_resources_are_quantities_with_requests_within_limits(config):
    with pytest.raises(pydantic.ValidationError, match="is not a Kubernetes quantity"):
        ContainerResources(limits={"memory": "2 GB"})
    with pytest.raises(pydantic.ValidationError, match="requests.memory 4Gi is more than limits.memory 2Gi"):
        ContainerResources(requests={"memory": "4Gi"}, limits={"memory": "2Gi"})
    with pytest.raises(pydantic.ValidationError):
        ContainerResources(limits={"nvidia.com/gpu": "1"})  # cpu and memory only
    own = ContainerResources(requests={"cpu": "1", "memory": "4Gi"}, limits={"memory": "4Gi"})
    prometheus = config.kubernetes.deployment("prometheus")
    assert config.kubernetes.resources_of(prometheus) == config.kubernetes.resources  # the section's by default
    assert config.kubernetes.resources_of(prometheus.model_copy(update={"resources": own})) is own


def test_deployments_as_declared_have_no_drift(config):
    findings = drift(config)
    assert not failed(findings)
    assert all(f"drift:deployment:{d.namespace}/{d.name}:resources" in findings for d in config.kubernetes.deployments)


def test_a_changed_memory_limit_is_drift_naming_who_set_it(config):
    d = config.kubernetes.deployment("tactical-marl")
    declared = config.kubernetes.resources_of(d).manifest()
    path = resources_fields(d.container_name, "limits", "memory")
    writers = [managed("helm", EARLIER, path), managed("kubectl-set", LATER, path)]
    live = deployment(config, d, {**declared, "limits": {"memory": "3Gi"}}, writers)

    (finding,) = failed(drift(config, {d.name: live})).values()
    assert finding.id == "drift:deployment:grandmodel/tactical-marl:resources.limits.memory"
    assert finding.status is Status.FAIL
    details = finding.details
    assert (details["field"], details["expected"], details["live"]) == ("resources.limits.memory", "2Gi", "3Gi")
    assert details["changed_by"] == {"manager": "kubectl-set", "operation": "Update", "time": LATER}
    assert finding.message.endswith(f"expected 2Gi, live 3Gi (last written by kubectl-set at {LATER})")


def test_equal_quantities_in_other_units_are_not_drift(config):
    d = config.kubernetes.deployment("execution-engine")
    assert config.kubernetes.resources_of(d).manifest() == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "2Gi"},
    }
    same = {"requests": {"cpu": "0.25", "memory": "536870912"}, "limits": {"memory": "2048Mi"}}
    findings = drift(config, {d.name: deployment(config, d, same)})
    assert not failed(findings)
    assert findings["drift:deployment:grandmodel/execution-engine:resources"].status is Status.OK


def test_a_request_or_limit_removed_or_added_is_drift(config):
    d = config.kubernetes.deployment("risk-management")
    live = {"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi", "cpu": "1"}}
    found = failed(drift(config, {d.name: deployment(config, d, live)}))
    key = "drift:deployment:grandmodel/risk-management:resources"
    assert {i: (f.details["expected"], f.details["live"]) for i, f in found.items()} == {
        f"{key}.requests.memory": ("512Mi", "absent"),
        f"{key}.limits.cpu": ("absent", "1"),
    }


def test_network_policies_as_approved_have_no_drift(config):
    live = [policy("default-deny-all", DENY_ALL), policy("allow-gateway-ingress", GATEWAY)]
    reordered = policy("allow-gateway-ingress", dict(reversed(list(GATEWAY.items()))))
    assert spec_hash(reordered) == spec_hash(live[1])  # canonical JSON: key order does not count
    findings = drift(config, policies=[live[0], reordered], approved=policy_baseline(live))
    assert not failed(findings)
    assert findings["drift:networkpolicy:grandmodel/allow-gateway-ingress"].status is Status.OK


def test_a_changed_network_policy_is_drift_naming_who_changed_it(config):
    approved = policy_baseline([policy("allow-gateway-ingress", GATEWAY)])
    opened = {**GATEWAY, "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 22}]}]}
    writers = [
        managed("helm", EARLIER, {"f:spec": {"f:podSelector": {}, "f:policyTypes": {}}}),
        managed("kubectl-patch", LATER, {"f:spec": {"f:ingress": {}}}),
    ]
    live = policy("allow-gateway-ingress", opened, writers)
    (finding,) = failed(drift(config, policies=[live], approved=approved)).values()
    assert finding.id == "drift:networkpolicy:grandmodel/allow-gateway-ingress" and finding.status is Status.FAIL
    details = finding.details
    assert details["object"] == "NetworkPolicy grandmodel/allow-gateway-ingress" and details["field"] == "spec"
    assert details["expected"] == approved["grandmodel/allow-gateway-ingress"] and details["live"] == spec_hash(live)
    assert details["changed_by"]["manager"] == "kubectl-patch"


def test_a_missing_or_unapproved_network_policy_is_drift(config):
    approved = policy_baseline([policy("default-deny-all", DENY_ALL)])
    allow_all = {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}
    extra = policy("allow-all", allow_all, [managed("kubectl-client-side-apply", LATER, {"f:spec": {}})])
    found = failed(drift(config, policies=[extra], approved=approved))
    assert set(found) == {"drift:networkpolicy:grandmodel/default-deny-all", "drift:networkpolicy:grandmodel/allow-all"}
    missing = found["drift:networkpolicy:grandmodel/default-deny-all"]
    assert missing.status is Status.FAIL and missing.details["live"] == "absent"
    assert missing.details["expected"] == approved["grandmodel/default-deny-all"]
    unapproved = found["drift:networkpolicy:grandmodel/allow-all"]
    assert unapproved.status is Status.FAIL and unapproved.details["expected"] == "absent"
    assert unapproved.details["changed_by"]["manager"] == "kubectl-client-side-apply"


# --- the real kubectl against the sandbox -------------------------------------------------------------------------


@pytest.fixture
def live_drift(config, airflow_connections):
    """Collect and evaluate the check against the sandbox: its findings by id."""

    def run() -> dict[str, Finding]:
        return {f.id: f for f in ConfigurationDrift().run(config).findings}

    return run


@pytest.fixture
def data_handler(config, kubectl):
    """data-handler, its container's requests and limits put back as declared after the test."""
    d = config.kubernetes.deployment("data-handler")
    yield d
    declared = config.kubernetes.resources_of(d)
    requests = ",".join(f"{k}={v}" for k, v in declared.requests.items())
    limits = ",".join(f"{k}={v}" for k, v in declared.limits.items())
    kubectl.ok("-n", d.namespace, "set", "resources", f"deployment/{d.name}", f"--containers={d.container_name}",
               f"--requests={requests}", f"--limits={limits}")  # fmt: skip


@pytest.fixture
def gateway_policy(kubectl):
    """allow-gateway-ingress as seeded, its spec put back after the test; any ``allow-all`` policy deleted."""
    seeded = kubectl.json("get", "networkpolicy", "allow-gateway-ingress")
    yield seeded
    kubectl("delete", "networkpolicy", "allow-all", "--ignore-not-found")
    kubectl.ok("patch", "networkpolicy", "allow-gateway-ingress", "--type=merge", "-p",
               json.dumps({"spec": seeded["spec"]}))  # fmt: skip


def test_the_committed_policy_baseline_is_the_sandboxs_seeded_policies(kubectl):
    """The ``networkpolicies:`` section of the baseline, as ``python -m tradeops.security.drift`` prints it."""
    live = kubectl.json("get", "networkpolicies", "-A")["items"]
    assert policy_baseline(live) == yaml.safe_load(BASELINE.read_text())["networkpolicies"]


def test_resources_changed_with_kubectl_are_drift_naming_kubectl_set(config, kubectl, live_drift, data_handler):
    d = data_handler
    key = f"drift:deployment:{d.namespace}/{d.name}"
    clean = live_drift()
    assert clean[f"{key}:resources"].status is Status.OK
    assert not [i for i in failed(clean) if ":resources" in i or i.startswith("drift:networkpolicy:")]

    kubectl.ok("-n", d.namespace, "set", "resources", f"deployment/{d.name}", f"--containers={d.container_name}",
               "--limits=memory=3Gi")  # fmt: skip
    found = live_drift()
    memory = found[f"{key}:resources.limits.memory"]
    assert memory.status is Status.FAIL
    assert (memory.details["expected"], memory.details["live"]) == ("2Gi", "3Gi")
    assert memory.details["changed_by"]["manager"] == "kubectl-set"
    assert f"{key}:resources" not in found and f"{key}:resources.requests.memory" not in found

    kubectl.ok("-n", d.namespace, "set", "resources", f"deployment/{d.name}", f"--containers={d.container_name}",
               "--limits=memory=2048Mi")  # fmt: skip
    assert live_drift()[f"{key}:resources"].status is Status.OK  # the same quantity, written otherwise


def test_network_policies_changed_with_kubectl_are_drift(kubectl, live_drift, gateway_policy):
    key = "drift:networkpolicy:grandmodel/allow-gateway-ingress"
    assert live_drift()[key].status is Status.OK
    opened = [{"ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 22}]}]
    kubectl.ok("patch", "networkpolicy", "allow-gateway-ingress", "--type=merge", "-p",
               json.dumps({"spec": {"ingress": opened}}))  # fmt: skip
    allow_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": "grandmodel"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(allow_all))

    found = live_drift()
    changed = found[key]
    assert changed.status is Status.FAIL and changed.details["field"] == "spec"
    assert changed.details["expected"] == spec_hash(gateway_policy) != changed.details["live"]
    assert changed.details["changed_by"]["manager"] == "kubectl-patch"
    extra = found["drift:networkpolicy:grandmodel/allow-all"]
    assert extra.status is Status.FAIL and extra.details["expected"] == "absent"
    assert extra.details["changed_by"]["manager"] == "kubectl-client-side-apply"
