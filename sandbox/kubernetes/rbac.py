"""Authentication (bearer tokens, impersonation) and RBAC authorization from the Role/Binding objects in the store,
evaluated the way kube-apiserver's RBAC authorizer does, so a least-privileged token gets real 403s and the access
reviews answer truthfully."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.kubernetes import errors
from sandbox.kubernetes.resources import RESOURCE_TYPES, lookup
from sandbox.kubernetes.store import Store

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"

ROLE = lookup("rbac.authorization.k8s.io", "v1", "roles")
CLUSTER_ROLE = lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
ROLE_BINDING = lookup("rbac.authorization.k8s.io", "v1", "rolebindings")
CLUSTER_ROLE_BINDING = lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = field(default=(AUTHENTICATED,))

    @classmethod
    def service_account(cls, namespace: str, name: str) -> User:
        return cls(
            f"{SA_PREFIX}{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        )

    @classmethod
    def named(cls, name: str, groups: tuple[str, ...] = ()) -> User:
        if name.startswith(SA_PREFIX):
            namespace, sa = name[len(SA_PREFIX) :].split(":", 1)
            user = cls.service_account(namespace, sa)
            return cls(user.name, tuple(dict.fromkeys([*user.groups, *groups])))
        return cls(name, tuple(dict.fromkeys([*groups, AUTHENTICATED])))


ADMIN = User("sandbox-admin", (MASTERS, AUTHENTICATED))
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Request:
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    path: str | None = None  # for non-resource requests


class Authenticator:
    def __init__(self, tokens: dict[str, User], anonymous_admin: bool):
        self.tokens = tokens
        self.anonymous_admin = anonymous_admin

    def authenticate(self, authorization: str | None) -> User:
        if authorization and authorization.lower().startswith("bearer "):
            user = self.tokens.get(authorization[7:].strip())
            if user is None:
                raise errors.unauthorized()
            return user
        return ADMIN if self.anonymous_admin else ANONYMOUS


def _matches(values: list[str] | None, value: str) -> bool:
    values = values or []
    return "*" in values or value in values


def _resource_matches(rule_resources: list[str] | None, resource: str, subresource: str | None) -> bool:
    wanted = f"{resource}/{subresource}" if subresource else resource
    for item in rule_resources or []:
        if item in ("*", wanted) or (subresource and item in (f"{resource}/*", f"*/{subresource}")):
            return True
    return False


def rule_allows(rule: dict, request: Request) -> bool:
    if request.path is not None:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == request.path or (url.endswith("*") and request.path.startswith(url[:-1])):
                return _matches(rule.get("verbs"), request.verb)
        return False
    if rule.get("nonResourceURLs"):
        return False
    if not (
        _matches(rule.get("verbs"), request.verb)
        and _matches(rule.get("apiGroups"), request.group)
        and _resource_matches(rule.get("resources"), request.resource, request.subresource)
    ):
        return False
    names = rule.get("resourceNames")
    return not names or (request.name is not None and request.name in names)


def _subject_matches(subject: dict, user: User, binding_namespace: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"{SA_PREFIX}{namespace}:{subject.get('name')}"
    return False


class Authorizer:
    def __init__(self, store: Store):
        self.store = store

    def _role_rules(self, role_ref: dict, namespace: str | None) -> list[dict]:
        if role_ref.get("kind") == "ClusterRole":
            role = self.store.get(CLUSTER_ROLE, None, role_ref["name"])
        else:
            role = self.store.get(ROLE, namespace, role_ref["name"])
        return (role or {}).get("rules") or []

    def rules(self, user: User, namespace: str | None) -> list[dict]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones included)."""
        found = []
        for binding in self.store.list(CLUSTER_ROLE_BINDING):
            if any(_subject_matches(s, user, None) for s in binding.get("subjects") or []):
                found += self._role_rules(binding["roleRef"], None)
        if namespace:
            for binding in self.store.list(ROLE_BINDING, namespace):
                if any(_subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
                    found += self._role_rules(binding["roleRef"], namespace)
        return found

    def allowed(self, user: User, request: Request) -> bool:
        if MASTERS in user.groups:
            return True
        return any(rule_allows(rule, request) for rule in self.rules(user, request.namespace))

    def require(self, user: User, request: Request) -> None:
        if self.allowed(user, request):
            return
        if request.path is not None:
            raise errors.ApiError(
                403, "Forbidden", f'forbidden: User "{user.name}" cannot {request.verb} path "{request.path}"', {}
            )
        rtype = next((r for r in _types_named(request.resource, request.group)), None)
        if rtype is None:
            raise errors.ApiError(403, "Forbidden", f'User "{user.name}" cannot {request.verb} {request.resource}')
        raise errors.forbidden(user.name, request.verb, rtype, request.namespace, request.subresource, request.name)

    def impersonate(self, user: User, as_user: str | None, as_groups: list[str]) -> User:
        """Honour ``Impersonate-User``/``Impersonate-Group`` when ``user`` may impersonate (``kubectl --as``)."""
        if not as_user:
            return user
        target = "serviceaccounts" if as_user.startswith(SA_PREFIX) else "users"
        namespace = as_user[len(SA_PREFIX) :].split(":", 1)[0] if target == "serviceaccounts" else None
        name = as_user.rsplit(":", 1)[-1] if target == "serviceaccounts" else as_user
        if not self.allowed(user, Request("impersonate", "", target, namespace=namespace, name=name)):
            raise errors.ApiError(
                403,
                "Forbidden",
                f'{target} "{name}" is forbidden: User "{user.name}" cannot '
                f'impersonate resource "{target}" in API group ""',
                {},
            )
        for group in as_groups:
            if not self.allowed(user, Request("impersonate", "", "groups", name=group)):
                raise errors.ApiError(
                    403,
                    "Forbidden",
                    f'groups "{group}" is forbidden: User "{user.name}" '
                    'cannot impersonate resource "groups" in API group ""',
                    {},
                )
        return User.named(as_user, tuple(as_groups))

    # --- access reviews -----------------------------------------------------------------------------------------

    def access_review(self, user: User, spec: dict) -> dict:
        attrs = spec.get("resourceAttributes")
        if attrs:
            request = Request(
                attrs.get("verb", ""),
                attrs.get("group", ""),
                attrs.get("resource", ""),
                attrs.get("subresource") or None,
                attrs.get("namespace") or None,
                attrs.get("name") or None,
            )
        else:
            non = spec.get("nonResourceAttributes") or {}
            request = Request(non.get("verb", ""), path=non.get("path", ""))
        allowed = self.allowed(user, request)
        status = {"allowed": allowed}
        if allowed and MASTERS not in user.groups:
            status["reason"] = "RBAC: allowed by a binding"
        return status

    def rules_review(self, user: User, namespace: str) -> dict:
        if MASTERS in user.groups:
            rules = [
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ]
        else:
            rules = self.rules(user, namespace)
        resource_rules = [
            {k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
            for r in rules
            if not r.get("nonResourceURLs")
        ]
        non_resource = [
            {"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]} for r in rules if r.get("nonResourceURLs")
        ]
        return {"resourceRules": resource_rules, "nonResourceRules": non_resource, "incomplete": False}


def _types_named(plural: str, group: str):
    return (r for r in RESOURCE_TYPES if r.plural == plural and r.group == group)


def user_for_review(spec: dict) -> User:
    """The subject of a SubjectAccessReview: ``user`` + ``groups``."""
    return User.named(spec.get("user") or "", tuple(spec.get("groups") or ()))
