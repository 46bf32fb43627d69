"""The Kubernetes API through the provider's ``KubernetesHook``, with the error handling operations need.

- 5xx, 429, connection errors and timeouts: retried with bounded exponential backoff;
- 409 Conflict on a write: :meth:`KubernetesApiHook.update` re-reads the object and re-applies the change;
- 403 and 404: fail at once, with a message naming the verb, the resource, the namespace and what to grant.

Objects are plain dicts exactly as the API sends them (``_preload_content=False``), so the rollout rules read the
same fields kubectl reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from tradeops.exceptions import KubernetesConflict, KubernetesError, KubernetesForbidden, KubernetesNotFound
from tradeops.retry import backoff_delay, wait_before_retry

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, AppsV1Api, CoreV1Api
    from kubernetes.client.exceptions import ApiException

RBAC_MANIFEST = "include/kubernetes/tradeops-rbac.yaml"
RETRYABLE = {429, 500, 502, 503, 504}
Manifest = dict[str, Any]


def _server_message(err: ApiException) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return str(err.reason)


class KubernetesApiHook(BaseHook):
    """The calls TradeOps makes to one cluster, with TradeOps' retry and error rules around each.

    :param conn_id: the Airflow connection of the cluster (a ``kubernetes`` connection, as the provider's
        ``KubernetesHook`` reads it).
    :param retries: attempts of a call that meets a transient failure (5xx, 429, connection error, timeout).
    :param backoff: the first retry's delay in seconds, doubled on each retry (at most 10 s).
    :param request_timeout: seconds to wait for each answer.
    """

    conn_type = "kubernetes"
    hook_name = "TradeOps Kubernetes API"

    def __init__(self, conn_id: str, *, retries: int = 4, backoff: float = 0.5, request_timeout: float = 30) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.retries = retries
        self.backoff = backoff
        self.request_timeout = request_timeout

    @cached_property
    def api_client(self) -> ApiClient:
        """The ``kubernetes`` client the provider's ``KubernetesHook`` builds from the connection."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.conn_id).api_client

    def get_conn(self) -> ApiClient:
        return self.api_client

    @cached_property
    def apps(self) -> AppsV1Api:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @cached_property
    def core(self) -> CoreV1Api:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def call(
        self,
        verb: str,
        resource: str,
        name: str | None,
        namespace: str,
        fn: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Run one API call; returns the response body (a dict, or text for logs)."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        what = f'{verb} {resource}{f" {name!r}" if name else ""} in namespace "{namespace}"'
        for attempt in range(1, self.retries + 1):
            try:
                response = fn(*args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs)
                data = response.data.decode()
                return json.loads(data) if data.startswith(("{", "[")) else data
            except ApiException as err:
                status = err.status or 0
                if status == 403:
                    raise KubernetesForbidden(
                        f"Kubernetes refused to {what}: {_server_message(err)}. TradeOps' role must allow "
                        f"'{verb}' on '{resource}' ({RBAC_MANIFEST}).",
                        403,
                    ) from None
                if status == 404:
                    raise KubernetesNotFound(f"Kubernetes: cannot {what}: {_server_message(err)}", 404) from None
                if status == 409:
                    raise KubernetesConflict(f"Kubernetes: conflict on {what}: {_server_message(err)}", 409) from None
                if status not in RETRYABLE and status != 0:
                    raise KubernetesError(
                        f"Kubernetes: {what} failed with HTTP {status}: {_server_message(err)}", status
                    ) from None
                problem = f"HTTP {status}" if status else str(err.reason)
            except HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
            if attempt == self.retries:
                raise KubernetesError(f"Kubernetes: {what} still failing after {attempt} attempts ({problem})")
            delay = backoff_delay(attempt, self.backoff, cap=10.0)
            wait_before_retry(self.log, f"{what}: {problem}", attempt, self.retries - 1, delay)
        raise AssertionError("unreachable")

    def update(
        self,
        read: Callable[[], Manifest],
        change: Callable[[Manifest], Any | None],
        write: Callable[[Manifest, Any], Manifest],
        attempts: int = 5,
    ) -> tuple[Manifest, Manifest, Any | None]:
        """Read, compute a change (None: nothing to do), write it guarded by the resourceVersion read; on a 409
        Conflict (someone else wrote in between) read again and recompute. Returns (before, after, change)."""
        for attempt in range(1, attempts + 1):
            current = read()
            wanted = change(current)
            if wanted is None:
                return current, current, None
            try:
                return current, write(current, wanted), wanted
            except KubernetesConflict:
                if attempt == attempts:
                    raise
                self.log.info(
                    "Conflict writing %s; re-reading (attempt %d/%d)",
                    current["metadata"]["name"],
                    attempt + 1,
                    attempts,
                )
        raise AssertionError("unreachable")

    # --- the calls TradeOps makes -------------------------------------------------------------------------------

    def deployment(self, namespace: str, name: str) -> Manifest:
        return self.call("get", "deployments", name, namespace, self.apps.read_namespaced_deployment, name, namespace)

    def statefulset(self, namespace: str, name: str) -> Manifest:
        return self.call(
            "get", "statefulsets", name, namespace, self.apps.read_namespaced_stateful_set, name, namespace
        )

    def patch_deployment(
        self, namespace: str, name: str, body: Manifest | list[Manifest], dry_run: bool = False
    ) -> Manifest:
        """A dict is sent as a strategic merge patch, a list as a JSON patch (as the Python client does);
        ``dry_run``: the API server validates and returns the result, and stores nothing (``dryRun=All``)."""
        return self.call(
            "patch",
            "deployments",
            name,
            namespace,
            self.apps.patch_namespaced_deployment,
            name,
            namespace,
            body,
            **({"dry_run": "All"} if dry_run else {}),
        )

    def replica_sets(self, namespace: str, selector: str) -> list[Manifest]:
        return self.call(
            "list",
            "replicasets",
            None,
            namespace,
            self.apps.list_namespaced_replica_set,
            namespace,
            label_selector=selector,
        )["items"]

    def service(self, namespace: str, name: str) -> Manifest:
        return self.call("get", "services", name, namespace, self.core.read_namespaced_service, name, namespace)

    def patch_service(self, namespace: str, name: str, body: Manifest | list[Manifest]) -> Manifest:
        return self.call(
            "patch", "services", name, namespace, self.core.patch_namespaced_service, name, namespace, body
        )

    def pods(self, namespace: str, selector: str) -> list[Manifest]:
        return self.call(
            "list", "pods", None, namespace, self.core.list_namespaced_pod, namespace, label_selector=selector
        )["items"]

    def pod_log(self, namespace: str, pod: str, container: str, tail_lines: int, limit_bytes: int) -> str:
        return self.call(
            "get",
            "pods/log",
            pod,
            namespace,
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            tail_lines=tail_lines,
            limit_bytes=limit_bytes,
            timestamps=True,
        )

    def events(self, namespace: str) -> list[Manifest]:
        return self.call("list", "events", None, namespace, self.core.list_namespaced_event, namespace)["items"]

    def tls_secrets(self, namespace: str) -> list[Manifest]:
        """The namespace's ``kubernetes.io/tls`` secrets, key material included: read only what you need."""
        return self.call(
            "list",
            "secrets",
            None,
            namespace,
            self.core.list_namespaced_secret,
            namespace,
            field_selector="type=kubernetes.io/tls",
        )["items"]

    # --- what the security check reads ---------------------------------------------------------------------------

    def namespaces(self, label_selector: str) -> list[Manifest]:
        core = self.core
        return self.call("list", "namespaces", None, "", core.list_namespace, label_selector=label_selector)["items"]

    def deployments(self, namespace: str) -> list[Manifest]:
        apps = self.apps
        return self.call("list", "deployments", None, namespace, apps.list_namespaced_deployment, namespace)["items"]

    def config_maps(self, namespace: str) -> list[Manifest]:
        core = self.core
        return self.call("list", "configmaps", None, namespace, core.list_namespaced_config_map, namespace)["items"]

    def ingresses(self, namespace: str) -> list[Manifest]:
        from kubernetes import client

        api = client.NetworkingV1Api(self.api_client)
        return self.call("list", "ingresses", None, namespace, api.list_namespaced_ingress, namespace)["items"]

    def network_policies(self) -> list[Manifest]:
        """Every namespace's network policies (a namespace the config does not know of included)."""
        from kubernetes import client

        api = client.NetworkingV1Api(self.api_client)
        return self.call("list", "networkpolicies", None, "", api.list_network_policy_for_all_namespaces)["items"]

    def rbac(self) -> dict[str, list[Manifest]]:
        """Every Role, RoleBinding, ClusterRole and ClusterRoleBinding of the cluster, by kind."""
        from kubernetes import client

        api = client.RbacAuthorizationV1Api(self.api_client)
        return {
            "Role": self.call("list", "roles", None, "", api.list_role_for_all_namespaces)["items"],
            "RoleBinding": self.call("list", "rolebindings", None, "", api.list_role_binding_for_all_namespaces)[
                "items"
            ],
            "ClusterRole": self.call("list", "clusterroles", None, "", api.list_cluster_role)["items"],
            "ClusterRoleBinding": self.call("list", "clusterrolebindings", None, "", api.list_cluster_role_binding)[
                "items"
            ],
        }

    def service_accounts(self) -> list[Manifest]:
        """Every namespace's service accounts."""
        core = self.core
        return self.call("list", "serviceaccounts", None, "", core.list_service_account_for_all_namespaces)["items"]

    def delete_binding(self, kind: str, namespace: str | None, name: str, resource_version: str) -> None:
        """Delete a RoleBinding (``namespace``) or ClusterRoleBinding, only if it is still at ``resource_version``
        (a 409 Conflict otherwise: someone changed it since it was read)."""
        from kubernetes import client

        api = client.RbacAuthorizationV1Api(self.api_client)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": resource_version}}
        if kind == "RoleBinding" and namespace:
            self.call(
                "delete",
                "rolebindings",
                name,
                namespace,
                api.delete_namespaced_role_binding,
                name,
                namespace,
                body=body,
            )
        else:
            self.call("delete", "clusterrolebindings", name, "", api.delete_cluster_role_binding, name, body=body)

    def can(self, user: str, groups: list[str], namespace: str, verb: str, resource: str, group: str = "") -> bool:
        """Whether the API server allows ``user`` to ``verb`` ``resource`` in ``namespace`` (SubjectAccessReview)."""
        from kubernetes import client

        api = client.AuthorizationV1Api(self.api_client)
        resource, _, sub = resource.partition("/")
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    **({"subresource": sub} if sub else {}),
                },
            },
        }
        review = self.call("create", "subjectaccessreviews", None, "", api.create_subject_access_review, body)
        return bool(review.get("status", {}).get("allowed"))
