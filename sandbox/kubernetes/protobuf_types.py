"""The Kubernetes protobuf messages the sandbox decodes, by field number, as in the ``generated.proto`` files of
k8s.io/api (core/v1, apps/v1, rbac/v1, authorization/v1) and k8s.io/apimachinery (meta/v1, intstr, resource).

They cover what kubectl's typed clients send as protobuf for the kinds the sandbox serves: ``kubectl create
deployment|configmap|secret|service|namespace|serviceaccount|role|rolebinding|clusterrole|clusterrolebinding``,
``auth can-i``, and a typed client's ``DeleteOptions``. A field that is not listed here but carries a value makes
the body undecodable (415), never silently dropped.
"""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    """One message field. ``kind``: a scalar name (``string``, ``int``, ``bool``, ``bytes``, ``intstr``,
    ``quantity``, ``time``) or a message (dict of field number -> Field). ``pointer``: a Go pointer, whose zero
    value is meaningful (``replicas: 0``); other zero values are Go's omitted defaults. ``inline``: embedded in the
    parent's JSON (``LocalObjectReference`` in key selectors)."""

    name: str
    kind: str | dict
    repeated: bool = False
    map: bool = False
    pointer: bool = False
    inline: bool = False


def message(*fields: tuple[int, Field]) -> dict[int, Field]:
    return dict(fields)


S, INT, B = "string", "int", "bool"

OWNER_REFERENCE = message(
    (1, Field("kind", S)),
    (3, Field("name", S)),
    (4, Field("uid", S)),
    (5, Field("apiVersion", S)),
    (6, Field("controller", B, pointer=True)),
    (7, Field("blockOwnerDeletion", B, pointer=True)),
)
OBJECT_META = message(
    (1, Field("name", S)),
    (2, Field("generateName", S)),
    (3, Field("namespace", S)),
    (4, Field("selfLink", S)),
    (5, Field("uid", S)),
    (6, Field("resourceVersion", S)),
    (7, Field("generation", INT)),
    (8, Field("creationTimestamp", "time")),
    (9, Field("deletionTimestamp", "time")),
    (10, Field("deletionGracePeriodSeconds", INT, pointer=True)),
    (11, Field("labels", S, map=True)),
    (12, Field("annotations", S, map=True)),
    (13, Field("ownerReferences", OWNER_REFERENCE, repeated=True)),
    (14, Field("finalizers", S, repeated=True)),
)
LABEL_SELECTOR = message(
    (1, Field("matchLabels", S, map=True)),
    (
        2,
        Field(
            "matchExpressions",
            message((1, Field("key", S)), (2, Field("operator", S)), (3, Field("values", S, repeated=True))),
            repeated=True,
        ),
    ),
)
LOCAL_OBJECT_REFERENCE = message((1, Field("name", S)))
KEY_SELECTOR = message(
    (1, Field("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True)),
    (2, Field("key", S)),
    (3, Field("optional", B, pointer=True)),
)
ENV_VAR = message(
    (1, Field("name", S)),
    (2, Field("value", S)),
    (
        3,
        Field(
            "valueFrom",
            message(
                (1, Field("fieldRef", message((1, Field("apiVersion", S)), (2, Field("fieldPath", S))))),
                (3, Field("configMapKeyRef", KEY_SELECTOR)),
                (4, Field("secretKeyRef", KEY_SELECTOR)),
            ),
        ),
    ),
)
CONTAINER = message(
    (1, Field("name", S)),
    (2, Field("image", S)),
    (3, Field("command", S, repeated=True)),
    (4, Field("args", S, repeated=True)),
    (5, Field("workingDir", S)),
    (
        6,
        Field(
            "ports",
            message(
                (1, Field("name", S)),
                (2, Field("hostPort", INT)),
                (3, Field("containerPort", INT)),
                (4, Field("protocol", S)),
                (5, Field("hostIP", S)),
            ),
            repeated=True,
        ),
    ),
    (7, Field("env", ENV_VAR, repeated=True)),
    (
        8,
        Field(
            "resources",
            message((1, Field("limits", "quantity", map=True)), (2, Field("requests", "quantity", map=True))),
        ),
    ),
    (13, Field("terminationMessagePath", S)),
    (14, Field("imagePullPolicy", S)),
    (16, Field("stdin", B)),
    (17, Field("stdinOnce", B)),
    (18, Field("tty", B)),
    (20, Field("terminationMessagePolicy", S)),
)
POD_SPEC = message(
    (2, Field("containers", CONTAINER, repeated=True)),
    (3, Field("restartPolicy", S)),
    (4, Field("terminationGracePeriodSeconds", INT, pointer=True)),
    (6, Field("dnsPolicy", S)),
    (7, Field("nodeSelector", S, map=True)),
    (8, Field("serviceAccountName", S)),
    (15, Field("imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True)),
    (19, Field("schedulerName", S)),
    (20, Field("initContainers", CONTAINER, repeated=True)),
    (21, Field("automountServiceAccountToken", B, pointer=True)),
    (24, Field("priorityClassName", S)),
)
POD_TEMPLATE_SPEC = message((1, Field("metadata", OBJECT_META)), (2, Field("spec", POD_SPEC)))
DEPLOYMENT = message(
    (1, Field("metadata", OBJECT_META)),
    (
        2,
        Field(
            "spec",
            message(
                (1, Field("replicas", INT, pointer=True)),
                (2, Field("selector", LABEL_SELECTOR)),
                (3, Field("template", POD_TEMPLATE_SPEC)),
                (
                    4,
                    Field(
                        "strategy",
                        message(
                            (1, Field("type", S)),
                            (
                                2,
                                Field(
                                    "rollingUpdate",
                                    message(
                                        (1, Field("maxUnavailable", "intstr", pointer=True)),
                                        (2, Field("maxSurge", "intstr", pointer=True)),
                                    ),
                                ),
                            ),
                        ),
                    ),
                ),
                (5, Field("minReadySeconds", INT)),
                (6, Field("revisionHistoryLimit", INT, pointer=True)),
                (7, Field("paused", B)),
                (9, Field("progressDeadlineSeconds", INT, pointer=True)),
            ),
        ),
    ),
)
CONFIG_MAP = message(
    (1, Field("metadata", OBJECT_META)),
    (2, Field("data", S, map=True)),
    (3, Field("binaryData", "bytes", map=True)),
    (4, Field("immutable", B, pointer=True)),
)
SECRET = message(
    (1, Field("metadata", OBJECT_META)),
    (2, Field("data", "bytes", map=True)),
    (3, Field("type", S)),
    (4, Field("stringData", S, map=True)),
    (5, Field("immutable", B, pointer=True)),
)
SERVICE_PORT = message(
    (1, Field("name", S)),
    (2, Field("protocol", S)),
    (3, Field("port", INT)),
    (4, Field("targetPort", "intstr")),
    (5, Field("nodePort", INT)),
    (6, Field("appProtocol", S, pointer=True)),
)
SERVICE = message(
    (1, Field("metadata", OBJECT_META)),
    (
        2,
        Field(
            "spec",
            message(
                (1, Field("ports", SERVICE_PORT, repeated=True)),
                (2, Field("selector", S, map=True)),
                (3, Field("clusterIP", S)),
                (4, Field("type", S)),
                (5, Field("externalIPs", S, repeated=True)),
                (7, Field("sessionAffinity", S)),
                (8, Field("loadBalancerIP", S)),
                (9, Field("loadBalancerSourceRanges", S, repeated=True)),
                (10, Field("externalName", S)),
                (11, Field("externalTrafficPolicy", S)),
                (12, Field("healthCheckNodePort", INT)),
                (13, Field("publishNotReadyAddresses", B)),
                (17, Field("ipFamilyPolicy", S, pointer=True)),
                (18, Field("clusterIPs", S, repeated=True)),
                (19, Field("ipFamilies", S, repeated=True)),
                (21, Field("loadBalancerClass", S, pointer=True)),
                (22, Field("internalTrafficPolicy", S, pointer=True)),
            ),
        ),
    ),
)
NAMESPACE = message(
    (1, Field("metadata", OBJECT_META)),
    (2, Field("spec", message((1, Field("finalizers", S, repeated=True))))),
)
OBJECT_REFERENCE = message(
    (1, Field("kind", S)),
    (2, Field("namespace", S)),
    (3, Field("name", S)),
    (4, Field("uid", S)),
    (5, Field("apiVersion", S)),
)
SERVICE_ACCOUNT = message(
    (1, Field("metadata", OBJECT_META)),
    (2, Field("secrets", OBJECT_REFERENCE, repeated=True)),
    (3, Field("imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True)),
    (4, Field("automountServiceAccountToken", B, pointer=True)),
)
POLICY_RULE = message(
    (1, Field("verbs", S, repeated=True)),
    (2, Field("apiGroups", S, repeated=True)),
    (3, Field("resources", S, repeated=True)),
    (4, Field("resourceNames", S, repeated=True)),
    (5, Field("nonResourceURLs", S, repeated=True)),
)
ROLE = message((1, Field("metadata", OBJECT_META)), (2, Field("rules", POLICY_RULE, repeated=True)))
BINDING = message(
    (1, Field("metadata", OBJECT_META)),
    (
        2,
        Field(
            "subjects",
            message(
                (1, Field("kind", S)), (2, Field("apiGroup", S)), (3, Field("name", S)), (4, Field("namespace", S))
            ),
            repeated=True,
        ),
    ),
    (3, Field("roleRef", message((1, Field("apiGroup", S)), (2, Field("kind", S)), (3, Field("name", S))))),
)
RESOURCE_ATTRIBUTES = message(
    *(
        (number, Field(name, S))
        for number, name in enumerate(("namespace", "verb", "group", "version", "resource", "subresource", "name"), 1)
    )
)
ACCESS_SPEC = message(
    (1, Field("resourceAttributes", RESOURCE_ATTRIBUTES)),
    (2, Field("nonResourceAttributes", message((1, Field("path", S)), (2, Field("verb", S))))),
)
SUBJECT_ACCESS_SPEC = {**ACCESS_SPEC, 3: Field("user", S), 4: Field("groups", S, repeated=True), 6: Field("uid", S)}

DELETE_OPTIONS = message(
    (1, Field("gracePeriodSeconds", INT, pointer=True)),
    (
        2,
        Field(
            "preconditions", message((1, Field("uid", S, pointer=True)), (2, Field("resourceVersion", S, pointer=True)))
        ),
    ),
    (3, Field("orphanDependents", B, pointer=True)),
    (4, Field("propagationPolicy", S, pointer=True)),
    (5, Field("dryRun", S, repeated=True)),
)


def _review(spec: dict[int, Field]) -> dict[int, Field]:
    return message((1, Field("metadata", OBJECT_META)), (2, Field("spec", spec)))


MESSAGES: dict[str, dict[int, Field]] = {
    "Deployment": DEPLOYMENT,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,
    "Service": SERVICE,
    "Namespace": NAMESPACE,
    "ServiceAccount": SERVICE_ACCOUNT,
    "Role": ROLE,
    "ClusterRole": ROLE,
    "RoleBinding": BINDING,
    "ClusterRoleBinding": BINDING,
    "SelfSubjectAccessReview": _review(ACCESS_SPEC),
    "SubjectAccessReview": _review(SUBJECT_ACCESS_SPEC),
    "LocalSubjectAccessReview": _review(SUBJECT_ACCESS_SPEC),
    "SelfSubjectRulesReview": _review(message((1, Field("namespace", S)))),
    "DeleteOptions": DELETE_OPTIONS,
}
