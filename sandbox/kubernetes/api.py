"""The sandbox's Kubernetes API server: discovery, CRUD, list/watch with selectors and resourceVersion, the three
patch types, ``/scale``, ``/status`` and ``/log`` subresources, access reviews, ``dryRun`` and ``pretty``, with
bearer-token authentication and RBAC in front of every request."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from sandbox.faults import FaultState
from sandbox.kubernetes import deletion, errors, managed, objects, protobuf, resources, tables
from sandbox.kubernetes.logs import pod_log
from sandbox.kubernetes.patch import apply_patch
from sandbox.kubernetes.rbac import Authenticator, Authorizer, User, user_for_review
from sandbox.kubernetes.rbac import Request as AuthzRequest
from sandbox.kubernetes.resources import REVIEW_RESOURCES, ResourceType
from sandbox.kubernetes.store import Store, selector_string

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-tradeops-sandbox",
    "gitCommit": "sandbox",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}
NON_RESOURCE = {"/healthz", "/livez", "/readyz", "/version", "/api", "/apis"}


class KubernetesState:
    def __init__(self, store: Store, authenticator: Authenticator, server_address: str):
        self.store = store
        self.authenticator = authenticator
        self.authorizer = Authorizer(store)
        self.server_address = server_address
        self.faults = FaultState()


def _respond(body: dict, status: int = 200, pretty: bool = False) -> Response:
    text = json.dumps(body, indent=4 if pretty else None, separators=None if pretty else (",", ":"))
    return Response(text + ("\n" if pretty else ""), status_code=status, media_type="application/json")


def _parse_path(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """``/api/v1/...`` or ``/apis/<group>/<version>/...`` -> (group, version, rest)."""
    if parts[:2] == ["api", "v1"]:
        return "", "v1", parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _route(group: str, version: str, rest: list[str]):
    """-> (resource type, namespace, name, subresource)."""
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = resources.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    rtype = resources.lookup(group, version, rest[0])
    if rtype is None:
        raise errors.no_route()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rtype.subresources:
        raise errors.no_route()
    return rtype, namespace, name, sub


def _strip(obj: dict) -> dict:
    """List items carry no kind/apiVersion, as from a real server."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def create_app(state: KubernetesState) -> FastAPI:
    app = FastAPI(title="Kubernetes API (TradeOps sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    state.faults.install(
        app,
        error_body=lambda status: errors.ApiError(
            status,
            "ServiceUnavailable" if status == 503 else "InternalError",
            "the server is currently unable to handle the request (injected fault)",
            {},
        ).body(),
    )
    store = state.store

    @app.exception_handler(errors.ApiError)
    async def api_error(request: Request, err: errors.ApiError):
        return JSONResponse(err.body(), status_code=err.code)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def dispatch(path: str, request: Request):
        pretty = _flag(request.query_params, "pretty")
        user = state.authenticator.authenticate(request.headers.get("authorization"))
        user = state.authorizer.impersonate(
            user, request.headers.get("impersonate-user"), request.headers.getlist("impersonate-group")
        )
        url = "/" + path.strip("/")
        parts = [p for p in path.split("/") if p]
        if request.method == "GET" and (
            url in NON_RESOURCE or url.startswith("/apis/") and len(parts) <= 3 or url == "/api/v1"
        ):
            if user.name == "system:anonymous" and url not in ("/healthz", "/livez", "/readyz", "/version"):
                state.authorizer.require(user, AuthzRequest("get", path=url))
            return _respond(_discovery(state, url, parts), pretty=pretty)
        if url.startswith("/openapi/v3") and request.method == "GET":
            document = resources.openapi_v3_index() if url == "/openapi/v3" else None
            if document is None and len(parts) >= 4:
                group, version = (parts[3], parts[4]) if parts[2] == "apis" and len(parts) > 4 else ("", parts[3])
                document = resources.openapi_v3_document(group, version)
            if document is not None:
                return _respond(document, pretty=pretty)
        if url.startswith("/openapi"):
            raise errors.no_route()
        routed = _route(*parsed) if (parsed := _parse_path(parts)) is not None else None
        if routed is None:
            raise errors.no_route()
        rtype, namespace, name, sub = routed
        query = request.query_params
        verb = _verb(request.method, name, query)
        state.authorizer.require(user, AuthzRequest(verb, rtype.group, rtype.plural, sub, namespace, name))
        if rtype.plural in REVIEW_RESOURCES:
            return _respond(await _review(state, user, rtype, namespace, request), 201, pretty)
        if verb == "watch":
            return _watch(state, rtype, namespace, name, query)
        if verb in ("list", "get"):
            return _read(state, rtype, namespace, name, sub, query, pretty, request.headers.get("accept", ""))
        dry_run = "All" in query.getlist("dryRun")
        body = await _json_body(request)
        manager = managed.manager_of(query.get("fieldManager"), request.headers.get("user-agent"))
        if verb == "create":
            obj = _create(state, rtype, namespace, body, dry_run, manager)
            return _respond(obj, 201, pretty)
        if verb in ("update", "patch"):
            return _respond(
                _write(
                    state,
                    rtype,
                    namespace,
                    name,
                    sub,
                    verb,
                    body,
                    request.headers.get("content-type", ""),
                    dry_run,
                    manager,
                ),
                pretty=pretty,
            )
        if verb == "delete":
            answer = deletion.delete(store, rtype, namespace, name, deletion.options(body, query))
            return _respond(answer, pretty=pretty)
        if verb == "deletecollection":
            found = deletion.options(body, query)
            for obj in store.list(rtype, namespace, query.get("labelSelector"), query.get("fieldSelector")):
                deletion.delete(store, rtype, namespace, obj["metadata"]["name"], found)
            return _respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, pretty=pretty)
        raise errors.method_not_allowed()

    return app


def _flag(query, name: str) -> bool:
    """Boolean query parameters as Go parses them: the Python clients send ``True``, kubectl ``true``."""
    return (query.get(name) or "").lower() in ("true", "1")


def _verb(method: str, name: str | None, query) -> str:
    if method == "GET":
        if _flag(query, "watch"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
        "delete" if name else "deletecollection"
    )


async def _json_body(request: Request):
    raw = await request.body()
    if "protobuf" in request.headers.get("content-type", ""):
        return protobuf.decode(raw)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise errors.bad_request(f"the body of the request is not valid JSON: {err}") from None


def _discovery(state: KubernetesState, url: str, parts: list[str]) -> dict:
    if url in ("/healthz", "/livez", "/readyz"):
        return "ok"  # type: ignore[return-value]
    if url == "/version":
        return VERSION
    if url == "/api":
        return resources.api_versions(state.server_address)
    if url == "/apis":
        return resources.api_group_list()
    if url == "/api/v1":
        return resources.api_resource_list("", "v1")
    if len(parts) == 2:
        versions = resources.groups().get(parts[1])
        if not versions:
            raise errors.no_route()
        return {"kind": "APIGroup", "apiVersion": "v1", **resources.api_group(parts[1], versions)}
    found = resources.api_resource_list(parts[1], parts[2])
    if found is None:
        raise errors.no_route()
    return found


def _read(
    state: KubernetesState, rtype: ResourceType, namespace, name, sub, query, pretty: bool, accept: str
) -> Response:
    store = state.store
    if name is None:
        items = store.list(rtype, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        if tables.wants_table(accept):
            return _respond(tables.to_table(rtype.kind, rtype.group_version, items, str(store.rv)), pretty=pretty)
        return _respond(
            {
                "kind": rtype.list_kind,
                "apiVersion": rtype.group_version,
                "metadata": {"resourceVersion": str(store.rv)},
                "items": [_strip(i) for i in items],
            },
            pretty=pretty,
        )
    obj = store.require(rtype, namespace, name)
    if sub == "scale":
        return _respond(_scale_of(obj), pretty=pretty)
    if sub is None and tables.wants_table(accept):
        return _respond(tables.to_table(rtype.kind, rtype.group_version, [obj], str(store.rv)), pretty=pretty)
    if sub == "log":
        text = pod_log(
            obj,
            container=query.get("container"),
            tail=query.get("tailLines"),
            timestamps=_flag(query, "timestamps"),
            since=query.get("sinceSeconds"),
            limit_bytes=query.get("limitBytes"),
        )
        return PlainTextResponse(text)
    return _respond(obj, pretty=pretty)


def _scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": selector_string(obj["spec"].get("selector")),
        },
    }


def _create(state: KubernetesState, rtype: ResourceType, namespace, body, dry_run: bool, manager: str) -> dict:
    if not isinstance(body, dict):
        raise errors.bad_request("the body of a create must be an object")
    if body.get("kind") not in (None, rtype.kind) or body.get("apiVersion") not in (None, rtype.group_version):
        raise errors.bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
            f"API version ({rtype.group_version})"
        )
    obj = copy.deepcopy(body)
    obj["kind"], obj["apiVersion"] = rtype.kind, rtype.group_version
    meta = obj.setdefault("metadata", {})
    if rtype.namespaced:
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace or meta.get("namespace") or "default"
        if state.store.get(resources.lookup("", "v1", "namespaces"), None, meta["namespace"]) is None:
            raise errors.ApiError(
                404,
                "NotFound",
                f'namespaces "{meta["namespace"]}" not found',
                {"name": meta["namespace"], "kind": "namespaces"},
            )
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + objects.safe_encode(f"{time.time_ns()}".encode(), 5)
    for server_owned in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp"):
        meta.pop(server_owned, None)
    if rtype.kind in objects.WORKLOADS:
        meta["generation"] = 1
        obj.pop("status", None)
    meta.pop("managedFields", None)
    objects.apply_defaults(rtype, obj)
    objects.validate(rtype, obj)
    managed.record(None, obj, manager)
    if dry_run:
        return obj
    return state.store.create(rtype, obj)


def _write(
    state: KubernetesState,
    rtype: ResourceType,
    namespace,
    name,
    sub,
    verb,
    body,
    content_type: str,
    dry_run: bool,
    manager: str,
) -> dict:
    store = state.store
    current = store.require(rtype, namespace, name)
    if sub == "scale":
        scale = _scale_of(current)
        new_scale = apply_patch(scale, content_type, body, "Scale") if verb == "patch" else body
        sent = (new_scale.get("metadata") or {}).get("resourceVersion")
        if sent and sent != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, name)
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                rtype, name, [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")]
            )
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = replicas
        result = _commit(state, rtype, current, updated, dry_run, manager)
        return _scale_of(result)
    if verb == "patch":
        updated = apply_patch(current, content_type, body, rtype.kind)
        check = bool((updated.get("metadata") or {}).get("resourceVersion") != current["metadata"]["resourceVersion"])
    else:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of an update must be an object")
        updated = copy.deepcopy(body)
        check = True
    updated["kind"], updated["apiVersion"] = rtype.kind, rtype.group_version
    meta = updated.setdefault("metadata", {})
    if meta.get("name") not in (None, name):
        raise errors.bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    meta["name"] = name
    if rtype.namespaced:
        meta["namespace"] = namespace
    if sub == "status":
        merged = copy.deepcopy(current)
        merged["status"] = updated.get("status")
        updated = merged
    elif "status" in current and rtype.kind not in ("Namespace",):
        updated["status"] = current["status"]
    if check and meta.get("resourceVersion") not in (None, "", current["metadata"]["resourceVersion"]):
        raise errors.conflict(rtype, name)
    return _commit(state, rtype, current, updated, dry_run, manager)


def _commit(
    state: KubernetesState, rtype: ResourceType, current: dict, updated: dict, dry_run: bool, manager: str
) -> dict:
    meta = updated["metadata"]
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    objects.apply_defaults(rtype, updated)
    objects.validate(rtype, updated, old=current if rtype.kind in objects.WORKLOADS else None)
    if rtype.kind in objects.WORKLOADS and objects.bumps_generation(rtype.kind, current, updated):
        meta["generation"] = current["metadata"].get("generation", 1) + 1
    managed.record(current, updated, manager)
    if dry_run:
        return updated
    return state.store.update(rtype, updated, check_version=False)


async def _review(state: KubernetesState, user: User, rtype: ResourceType, namespace, request: Request) -> dict:
    body = await _json_body(request) or {}
    spec = body.get("spec") or {}
    authorizer = state.authorizer
    if rtype.plural == "selfsubjectaccessreviews":
        status = authorizer.access_review(user, spec)
    elif rtype.plural == "selfsubjectrulesreviews":
        status = authorizer.rules_review(user, spec.get("namespace") or "default")
    else:
        subject = user_for_review(spec)
        if rtype.plural == "localsubjectaccessreviews":
            spec.setdefault("resourceAttributes", {})["namespace"] = namespace
        status = authorizer.access_review(subject, spec)
    return {
        "kind": rtype.kind,
        "apiVersion": rtype.group_version,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def _watch(state: KubernetesState, rtype: ResourceType, namespace, name, query) -> StreamingResponse:
    """A watch stream. With ``sendInitialEvents=true`` (client-go's WatchList) the current objects come first as
    ADDED events, closed by a BOOKMARK annotated ``k8s.io/initial-events-end``; ``timeoutSeconds`` ends it."""
    store = state.store
    fields = query.get("fieldSelector")
    if name:
        fields = ",".join(filter(None, [fields, f"metadata.name={name}"]))
    labels = query.get("labelSelector")
    timeout = float(query.get("timeoutSeconds") or 1800)
    drop_after = state.faults.faults.watch_drop_after_s
    if drop_after is not None:
        timeout = min(timeout, drop_after)
    initial = _flag(query, "sendInitialEvents")

    def line(kind: str, obj: dict) -> bytes:
        return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()

    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout
        since = query.get("resourceVersion")
        if initial:
            since = str(store.rv)
            for obj in store.list(rtype, namespace, labels, fields):
                yield line("ADDED", obj)
            yield line(
                "BOOKMARK",
                {
                    "kind": rtype.kind,
                    "apiVersion": rtype.group_version,
                    "metadata": {"resourceVersion": since, "annotations": {"k8s.io/initial-events-end": "true"}},
                },
            )
        iterator = store.watch(rtype, namespace, since, labels, fields).__aiter__()
        try:
            while (remaining := ends - loop.time()) > 0:
                try:
                    kind, obj = await asyncio.wait_for(iterator.__anext__(), remaining)
                except TimeoutError:
                    return
                yield line(kind, obj)
        except errors.ApiError as err:
            yield line("ERROR", err.body())
        finally:
            await iterator.aclose()

    return StreamingResponse(stream(), media_type="application/json", headers={"Cache-Control": "no-cache, private"})
