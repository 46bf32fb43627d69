"""``DELETE`` as the API server does it (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/delete.go): the
``DeleteOptions`` come from the request body when there is one, else from the query string; they are validated,
their preconditions checked, ``dryRun`` changes nothing, and ``propagationPolicy`` says what becomes of the
dependents (``Background``: the garbage collector deletes them after the owner). The answer is the deleted object
for the kinds whose registry sets ``ReturnDeletedObject`` (pods, services, service accounts), else a ``Status``
naming it."""

from __future__ import annotations

from sandbox.kubernetes import errors
from sandbox.kubernetes.resources import ResourceType, lookup
from sandbox.kubernetes.store import Store, now_rfc3339

POLICIES = ("Foreground", "Background", "Orphan")
RETURNS_DELETED_OBJECT = {"pods", "services", "serviceaccounts"}
DEPENDENT_TYPES = (lookup("apps", "v1", "replicasets"), lookup("", "v1", "pods"))


def options(body, query) -> dict:
    """The request's ``DeleteOptions``: the body if it has one (the query is then ignored, as by the real server)."""
    if body:
        if not isinstance(body, dict) or body.get("kind") not in (None, "DeleteOptions"):
            raise errors.bad_request("decoded object cannot be converted to DeleteOptions")
        found = dict(body)
    else:
        found = {"dryRun": query.getlist("dryRun")}
        for name in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
            if query.get(name) is not None:
                found[name] = query.get(name)
        if "orphanDependents" in found:
            found["orphanDependents"] = found["orphanDependents"].lower() == "true"
        if "gracePeriodSeconds" in found:
            try:
                found["gracePeriodSeconds"] = int(found["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request(f"invalid gracePeriodSeconds {found['gracePeriodSeconds']!r}") from None
    _validate(found)
    return found


def _validate(found: dict) -> None:
    """apimachinery's ValidateDeleteOptions: a 422 on ``DeleteOptions.meta.k8s.io ""``."""
    causes = []
    for value in found.get("dryRun") or []:
        if value != "All":
            causes.append(("dryRun", f'Unsupported value: "{value}": supported values: "All"'))
    policy = found.get("propagationPolicy")
    if policy is not None and policy not in POLICIES:
        causes.append(
            (
                "propagationPolicy",
                f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"',
            )
        )
    if policy is not None and found.get("orphanDependents") is not None:
        causes.append(
            (
                "propagationPolicy",
                f'Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be both set',
            )
        )
    if causes:
        summary = ", ".join(f"{field}: {message}" for field, message in causes)
        raise errors.ApiError(
            422,
            "Invalid",
            f'DeleteOptions.meta.k8s.io "" is invalid: {summary}',
            {
                "group": "meta.k8s.io",
                "kind": "DeleteOptions",
                "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
            },
        )


def _check_preconditions(rtype: ResourceType, obj: dict, found: dict) -> None:
    meta, preconditions = obj["metadata"], found.get("preconditions") or {}
    for field, actual in (("UID", meta["uid"]), ("ResourceVersion", meta["resourceVersion"])):
        wanted = preconditions.get(field[0].lower() + field[1:])
        if wanted is not None and wanted != actual:
            raise errors.ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rtype.qualified} "{meta["name"]}": Precondition failed: '
                f"{field} in precondition: {wanted}, {field} in object meta: {actual}",
                {"name": meta["name"], **({"group": rtype.group} if rtype.group else {}), "kind": rtype.plural},
            )


def delete(store: Store, rtype: ResourceType, namespace: str | None, name: str, found: dict) -> dict:
    """Delete one object under ``found`` options; -> the answer's body.

    ``Orphan`` and ``Foreground`` put the ``orphan``/``foregroundDeletion`` finalizer and a deletionTimestamp on the
    object and answer with it, as the real server does; the sandbox's garbage collector then finishes at once (the
    dependents orphaned, or deleted leaves first), so watchers see MODIFIED then DELETED."""
    obj = store.require(rtype, namespace, name)
    _check_preconditions(rtype, obj, found)
    dry_run = "All" in (found.get("dryRun") or [])
    policy = found.get("propagationPolicy") or {True: "Orphan", False: "Foreground"}.get(found.get("orphanDependents"))
    finalizer = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy or "")
    if finalizer is not None:
        meta = obj["metadata"]
        meta["finalizers"] = [*(meta.get("finalizers") or []), finalizer]
        meta.update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0)
        if not dry_run:
            obj = store.update(rtype, obj, check_version=False)
            if policy == "Orphan":
                _orphan_dependents(store, obj)
            else:
                _delete_dependents(store, obj)
            store.delete(rtype, namespace, name)
        return obj
    if not dry_run:
        obj = store.delete(rtype, namespace, name)
    if rtype.plural in RETURNS_DELETED_OBJECT:
        return obj
    details = {"name": name, "kind": rtype.plural, "uid": obj["metadata"]["uid"]}
    if rtype.group:
        details["group"] = rtype.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _dependents(store: Store, owner: dict):
    uid = owner["metadata"]["uid"]
    for rtype in DEPENDENT_TYPES:
        for dependent in store.list(rtype, owner["metadata"].get("namespace")):
            if any(ref.get("uid") == uid for ref in dependent["metadata"].get("ownerReferences") or []):
                yield rtype, dependent


def _delete_dependents(store: Store, owner: dict) -> None:
    for rtype, dependent in list(_dependents(store, owner)):
        _delete_dependents(store, dependent)
        store.delete(rtype, dependent["metadata"].get("namespace"), dependent["metadata"]["name"])


def _orphan_dependents(store: Store, owner: dict) -> None:
    uid = owner["metadata"]["uid"]
    for rtype, dependent in list(_dependents(store, owner)):
        kept = [ref for ref in dependent["metadata"]["ownerReferences"] if ref.get("uid") != uid]
        if kept:
            dependent["metadata"]["ownerReferences"] = kept
        else:
            dependent["metadata"].pop("ownerReferences")
        store.update(rtype, dependent, check_version=False)
