"""The trading platform's cluster, seeded from the TradeOps config: namespaces, deployments and services, TLS
secrets holding real X.509 certificates at various expiry dates, network policies (one namespace without a
default-deny), service accounts and RBAC, ConfigMaps, and the identities tests log in as.

The security problems planted for ``daily_security_check`` to find (the README lists them): certificates expiring
in 5 days and expired 3 days ago (one at 21 days warns); ``grandmodel-monitoring`` without a default-deny policy;
``trading-user`` bound to cluster-admin; ``deployer`` granted secrets and ``pods/exec`` beyond its least
privilege; ``prometheus`` running an image other than the config's, set by hand (``kubectl`` in managedFields);
``risk-engine-config`` changed since the approved baseline (``include/security/baseline.yaml``). Everything else
is clean, and the check must say so."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from sandbox.kubernetes import managed, objects
from sandbox.kubernetes.rbac import ADMIN, User
from sandbox.kubernetes.resources import by_kind
from sandbox.kubernetes.store import Store
from tradeops.config import TradeOpsConfig
from tradeops.config.model import ContainerResources

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "include" / "kubernetes"
TRADEOPS_NAMESPACE = "tradeops"
TRADEOPS_SERVICE_ACCOUNT = "tradeops-operator"
# name, namespace (None: the first platform namespace), days to expiry (negative: already expired)
CERTIFICATES = [
    ("api-gateway-tls", None, 200),
    ("auth-service-tls", None, 21),
    ("data-feed-client-tls", None, 5),
    ("legacy-admin-tls", None, -3),
    ("prometheus-tls", "grandmodel-monitoring", 90),
]

ESTABLISHED = timedelta(days=200)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(store: Store, obj: dict) -> dict:
    group = obj["apiVersion"].rpartition("/")[0]
    rtype = by_kind(group, obj["kind"])
    obj.setdefault("metadata", {})
    if group == "rbac.authorization.k8s.io":  # the platform's access has been in place for months
        obj["metadata"].setdefault("creationTimestamp", _rfc3339(datetime.now(UTC) - ESTABLISHED))
    if rtype.kind in objects.WORKLOADS:
        obj["metadata"]["generation"] = 1
    objects.apply_defaults(rtype, obj)
    objects.validate(rtype, obj)
    managed.record(None, obj, "helm")
    return store.create(rtype, obj)


def _by_hand(store: Store, obj: dict, change, manager: str = "kubectl") -> dict:
    """Change a seeded object as a person would with kubectl: recorded under ``manager`` in its managedFields."""
    import copy

    rtype = by_kind(obj["apiVersion"].rpartition("/")[0], obj["kind"])
    updated = copy.deepcopy(obj)
    change(updated)
    if rtype.kind in objects.WORKLOADS:
        updated["metadata"]["generation"] = obj["metadata"]["generation"] + 1
    managed.record(obj, updated, manager)
    return store.update(rtype, updated)


# The ConfigMaps the platform runs with, as approved (include/security/baseline.yaml holds their SHA-256 per key);
# the seed then changes one by hand.
CONFIG_MAPS = {
    ("grandmodel", "risk-engine-config"): {
        "max_order_contracts": "50",
        "kill_switch": "enabled",
        "max_gross_exposure_usd": "25000000",
    },
    ("grandmodel", "data-feed-config"): {"feeds": "CME,ICE", "reconnect_seconds": "5", "heartbeat_seconds": "1"},
    ("grandmodel-monitoring", "prometheus-config"): {
        "prometheus.yml": "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: grandmodel\n"
    },
}
DRIFTED_CONFIG = ("grandmodel", "risk-engine-config", "max_order_contracts", "500")
DRIFTED_IMAGE = ("prometheus", "registry.quantnova.internal/grandmodel/prometheus:2.54.1")


def _cluster_role(name: str, rules: list[dict], **labels) -> dict:
    return {
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "labels": labels or {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": rules,
    }


def _binding(kind: str, name: str, role_kind: str, role: str, subjects: list[dict], namespace: str | None = None):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "kind": kind,
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def _sa(name: str, namespace: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _user(name: str) -> dict:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
STATUS_READ = [
    {
        "apiGroups": ["", "apps"],
        "verbs": READ,
        "resources": [
            "pods/status",
            "services/status",
            "namespaces/status",
            "deployments/status",
            "replicasets/status",
            "statefulsets/status",
        ],
    }
]
BOOTSTRAP_ROLES = [
    _cluster_role(
        "cluster-admin",
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    ),
    _cluster_role(
        "admin",
        [
            {
                "apiGroups": ["", "apps", "networking.k8s.io", "rbac.authorization.k8s.io"],
                "resources": ["*"],
                "verbs": READ + WRITE,
            }
        ],
    ),
    _cluster_role(
        "edit",
        [
            *STATUS_READ,
            {
                "apiGroups": ["", "apps", "networking.k8s.io"],
                "resources": [
                    "pods",
                    "pods/log",
                    "services",
                    "secrets",
                    "configmaps",
                    "serviceaccounts",
                    "deployments",
                    "deployments/scale",
                    "replicasets",
                    "replicasets/scale",
                    "statefulsets",
                    "statefulsets/scale",
                    "networkpolicies",
                    "ingresses",
                ],
                "verbs": READ + WRITE,
            },
        ],
    ),
    _cluster_role(
        "view",
        [
            *STATUS_READ,
            {
                "apiGroups": ["", "apps", "networking.k8s.io"],
                "resources": [
                    "pods",
                    "pods/log",
                    "services",
                    "configmaps",
                    "serviceaccounts",
                    "deployments",
                    "deployments/scale",
                    "replicasets",
                    "replicasets/scale",
                    "statefulsets",
                    "statefulsets/scale",
                    "networkpolicies",
                    "ingresses",
                    "events",
                    "namespaces",
                ],
                "verbs": READ,
            },
        ],
    ),
    _cluster_role(
        "system:basic-user",
        [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            }
        ],
    ),
    _cluster_role(
        "system:discovery",
        [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                "verbs": ["get"],
            }
        ],
    ),
]


def _tls_secrets(namespace: str, monitoring: str | None, now: datetime) -> list[dict]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "QuantNova"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("GrandModel sandbox CA"))
        .issuer_name(name("GrandModel sandbox CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    out = []
    for secret_name, target, days in CERTIFICATES:
        target = target if target and (target == monitoring) else namespace
        host = secret_name.removesuffix("-tls") + ".grandmodel.quantnova.com"
        key = ec.generate_private_key(ec.SECP256R1())
        expires = now + timedelta(days=days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(host))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now, expires) - timedelta(days=90))
            .not_valid_after(expires)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        out.append(
            {
                "kind": "Secret",
                "apiVersion": "v1",
                "type": "kubernetes.io/tls",
                "metadata": {
                    "name": secret_name,
                    "namespace": target,
                    "labels": {"app.kubernetes.io/part-of": "grandmodel"},
                },
                "data": {
                    "tls.crt": base64.b64encode(pem).decode(),
                    "tls.key": base64.b64encode(key_pem).decode(),
                    "ca.crt": base64.b64encode(ca_pem).decode(),
                },
            }
        )
    return out


def _deployment(d, namespace: str, resources: ContainerResources | None) -> dict:
    """``d`` as its chart would deploy it, its container's requests and limits the config's (``resources``)."""
    labels = {"app": d.name, "app.kubernetes.io/part-of": "grandmodel", "tradeops.io/role": d.role}
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": d.name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": d.replicas.off_hours,
            "selector": {"matchLabels": {"app": d.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "default",
                    "containers": [
                        {
                            "name": d.container_name,
                            "image": d.image,
                            "ports": [{"name": "http", "containerPort": d.health.port}],
                            "readinessProbe": {
                                "httpGet": {"path": d.health.path, "port": d.health.port},
                                "periodSeconds": 5,
                            },
                            "resources": resources.manifest() if resources else {},
                        }
                    ],
                },
            },
        },
    }


def _service(d, namespace: str) -> dict:
    gateway = d.role == "gateway"
    service = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": d.name, "namespace": namespace, "labels": {"app": d.name}},
        "spec": {
            "type": "LoadBalancer" if gateway else "ClusterIP",
            "selector": {"app": d.name},
            "ports": [
                {"name": "https" if gateway else "http", "port": 443 if gateway else 80, "targetPort": d.health.port}
            ],
        },
    }
    return service


def _network_policies(platform: str, monitoring: str | None) -> list[dict]:
    def policy(name: str, namespace: str, spec: dict) -> dict:
        return {
            "kind": "NetworkPolicy",
            "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }

    policies = [
        policy("default-deny-all", platform, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        policy(
            "allow-gateway-ingress",
            platform,
            {
                "podSelector": {"matchLabels": {"app": "api-gateway"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": 8080}]}],
            },
        ),
        policy(
            "allow-intra-namespace",
            platform,
            {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        ),
    ]
    if monitoring:  # deliberately no default-deny here: the security check must flag it
        policies.append(
            policy(
                "allow-prometheus-scrape",
                monitoring,
                {
                    "podSelector": {"matchLabels": {"app": "prometheus"}},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"protocol": "TCP", "port": 9090}]}],
                },
            )
        )
    return policies


def load_manifests(store: Store) -> None:
    """Apply the RBAC manifests TradeOps ships (``include/kubernetes/*.yaml``)."""
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                _put(store, doc)


def seed(store: Store, config: TradeOpsConfig) -> dict[str, User]:
    """Create the cluster's objects; returns the tokens the sandbox accepts, by identity."""
    now = datetime.now(UTC)
    namespaces = [ns.name for ns in config.kubernetes.namespaces]
    platform = namespaces[0]
    monitoring = next((n for n in namespaces if "monitoring" in n), None)
    label, _, value = config.security.namespace_label.partition("=")
    for name in dict.fromkeys(["default", "kube-system", TRADEOPS_NAMESPACE, *namespaces]):
        labels = {"kubernetes.io/metadata.name": name, **({label: value} if name in namespaces else {})}
        _put(store, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name, "labels": labels}})
        _put(store, {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "default", "namespace": name}})
    for role in BOOTSTRAP_ROLES:
        _put(store, role)
    _put(
        store,
        _binding(
            "ClusterRoleBinding",
            "cluster-admin",
            "ClusterRole",
            "cluster-admin",
            [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:masters"}],
        ),
    )
    for role in ("system:basic-user", "system:discovery"):
        _put(
            store,
            _binding(
                "ClusterRoleBinding",
                role,
                "ClusterRole",
                role,
                [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}],
            ),
        )

    for deployment in config.kubernetes.deployments:
        resources = config.kubernetes.resources_of(deployment)
        created = _put(store, _deployment(deployment, deployment.namespace, resources))
        _put(store, _service(deployment, deployment.namespace))
        if deployment.name == DRIFTED_IMAGE[0] and deployment.namespace in namespaces:

            def set_image(obj: dict) -> None:
                obj["spec"]["template"]["spec"]["containers"][0]["image"] = DRIFTED_IMAGE[1]

            _by_hand(store, created, set_image)
    for (namespace, name), data in CONFIG_MAPS.items():
        if namespace not in namespaces:
            continue
        cm = _put(
            store,
            {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": namespace}, "data": data},
        )
        if (namespace, name) == DRIFTED_CONFIG[:2]:
            _by_hand(store, cm, lambda obj: obj["data"].update({DRIFTED_CONFIG[2]: DRIFTED_CONFIG[3]}), "kubectl-edit")
    for secret in _tls_secrets(platform, monitoring, now):
        _put(store, secret)
    _put(
        store,
        {
            "kind": "Secret",
            "apiVersion": "v1",
            "type": "Opaque",
            "metadata": {"name": "platform-db-credentials", "namespace": platform},
            "data": {
                "username": base64.b64encode(b"platform_app").decode(),
                "password": base64.b64encode(secrets.token_urlsafe(18).encode()).decode(),
            },
        },
    )
    for policy in _network_policies(platform, monitoring):
        _put(store, policy)

    for name in ("trading-user", "deployer", "monitoring"):
        _put(store, {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": name, "namespace": platform}})
    _put(
        store,
        {
            "kind": "Role",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "deployer", "namespace": platform},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments", "deployments/scale", "replicasets"],
                    "verbs": ["get", "list", "watch", "patch", "update"],
                }
            ],
        },
    )
    _put(store, _binding("RoleBinding", "deployer", "Role", "deployer", [_sa("deployer", platform)], platform))
    # Over-privileged: the deployer can also read every secret and exec into pods (its least privilege cannot).
    _put(
        store,
        {
            "kind": "Role",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "deployer-debug", "namespace": platform},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            ],
        },
    )
    _put(
        store,
        _binding("RoleBinding", "deployer-debug", "Role", "deployer-debug", [_sa("deployer", platform)], platform),
    )
    _put(
        store,
        _binding("RoleBinding", "monitoring-view", "ClusterRole", "view", [_sa("monitoring", platform)], platform),
    )
    # The over-privileged one a monthly access review must find: a workload account bound to cluster-admin.
    _put(
        store,
        _binding(
            "ClusterRoleBinding", "trading-user-admin", "ClusterRole", "cluster-admin", [_sa("trading-user", platform)]
        ),
    )
    _put(
        store,
        _binding(
            "ClusterRoleBinding",
            "viewer",
            "ClusterRole",
            "view",
            [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "viewer"}],
        ),
    )
    # For monthly_access_review: user39 (a platform user who never logged in) still holds edit; a binding left behind
    # by a reporting job whose role and service account are gone; and user05 given view six days ago (added since
    # last month). Every other binding has been there for months.
    _put(store, _binding("RoleBinding", "user39-edit", "ClusterRole", "edit", [_user("user39")], platform))
    _put(
        store,
        _binding(
            "RoleBinding", "legacy-reporter", "Role", "legacy-reporter", [_sa("legacy-reporter", platform)], platform
        ),
    )
    recent = _binding("RoleBinding", "user05-view", "ClusterRole", "view", [_user("user05")], platform)
    recent["metadata"]["creationTimestamp"] = _rfc3339(now - timedelta(days=6))
    _put(store, recent)
    load_manifests(store)  # TradeOps' own service account and least-privilege role

    return {
        "admin": ADMIN,
        "tradeops": User.service_account(TRADEOPS_NAMESPACE, TRADEOPS_SERVICE_ACCOUNT),
        "viewer": User.named("viewer"),
        "trading-user": User.service_account(platform, "trading-user"),
        "deployer": User.service_account(platform, "deployer"),
    }


def kubeconfig(server: str, tokens: dict[str, str], namespace: str, ca_pem: bytes) -> dict:
    """A kubeconfig with one context per identity (``kubectl --context tradeops``)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": "tradeops-sandbox",
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": identity, "user": {"token": token}} for identity, token in tokens.items()],
        "contexts": [
            {"name": identity, "context": {"cluster": "tradeops-sandbox", "user": identity, "namespace": namespace}}
            for identity in tokens
        ],
        "current-context": "admin",
    }
