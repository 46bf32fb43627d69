"""``metadata.managedFields`` as the API server keeps them: who wrote which fields, with which operation and when.

Each write records the fields it set or changed under its field manager (the ``fieldManager`` query parameter, else
the client's user agent up to the first ``/``, as the API server derives it: ``kubectl``, ``kubectl-edit``,
``OpenAPI-Generator``), in the FieldsV1 format (``f:<field>``, ``k:{"name":...}`` for list items keyed by name,
``"."`` for a map the manager set as a whole). Fields a write takes over leave the other managers' entries, and an
entry left with no field is dropped. Status and the server's own metadata are not tracked.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.kubernetes.store import now_rfc3339

UNTRACKED_METADATA = {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "deletionTimestamp"}


def manager_of(field_manager: str | None, user_agent: str | None) -> str:
    return field_manager or (user_agent or "unknown").split("/", 1)[0] or "unknown"


def _keyed(items: Any) -> bool:
    return isinstance(items, list) and bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _key(item: dict) -> str:
    return "k:" + json.dumps({"name": item["name"]}, separators=(",", ":"))


# Maps owned as a whole carry "." (string maps, optional structs), as the API server writes them; plain structs
# (spec, template, selector) do not.
OWNED_AS_A_WHOLE = {"labels", "annotations", "matchLabels", "data", "nodeSelector", "limits", "requests",
                    "rollingUpdate"}  # fmt: skip


def _whole(value: Any, name: str = "") -> dict:
    """Every field of a value a manager set as a whole (``name``: the field holding it)."""
    if isinstance(value, dict):
        inner = {f"f:{k}": _whole(v, k) for k, v in value.items()}
        return {".": {}, **inner} if name in OWNED_AS_A_WHOLE else inner
    if _keyed(value):
        return {_key(item): {".": {}, **_whole(item, "item")} for item in value}
    return {}


def _changed(old: Any, new: Any) -> dict | None:
    """The fields of ``new`` that differ from ``old`` (None: nothing changed)."""
    if old == new:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        out = {}
        for k, v in new.items():
            if k not in old:
                out[f"f:{k}"] = _whole(v, k)
            elif (sub := _changed(old[k], v)) is not None:
                out[f"f:{k}"] = sub
        return out
    if _keyed(old) and _keyed(new):
        before = {item["name"]: item for item in old}
        out = {}
        for item in new:
            if item["name"] not in before:
                out[_key(item)] = {".": {}, **_whole(item, "item")}
            elif (sub := _changed(before[item["name"]], item)) is not None:
                out[_key(item)] = sub
        return out
    return _whole(new, "value")


def _tracked(obj: dict | None) -> dict:
    if obj is None:
        return {}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in UNTRACKED_METADATA}
    meta.pop("name", None)
    meta.pop("namespace", None)
    body = {k: v for k, v in obj.items() if k not in ("status", "kind", "apiVersion", "metadata")}
    return {**({"metadata": meta} if meta else {}), **body}


def _merge(into: dict, more: dict) -> dict:
    for k, v in more.items():
        into[k] = _merge(into.get(k, {}), v) if v else into.get(k, {})
    return into


def _without(fields: dict, taken: dict) -> dict:
    """``fields`` minus the leaves ``taken`` holds (an emptied map is dropped)."""
    out = {}
    for k, v in fields.items():
        if k not in taken:
            out[k] = v
        elif v and taken[k]:
            rest = _without(v, taken[k])
            if rest and set(rest) != {"."}:
                out[k] = rest
    return out


def record(old: dict | None, new: dict, manager: str) -> None:
    """Record in ``new``'s managedFields what this write of ``manager`` set (``old`` None: a create)."""
    changed = _changed(_tracked(old), _tracked(new)) or {}
    entries = [dict(e) for e in ((old or {}).get("metadata") or {}).get("managedFields") or []]
    if changed:
        operation = "Update"
        kept = []
        mine = None
        for entry in entries:
            if entry["manager"] == manager and entry["operation"] == operation:
                mine = entry
                continue
            rest = _without(entry.get("fieldsV1") or {}, changed)
            if rest:
                kept.append({**entry, "fieldsV1": rest})
        fields = _merge(json.loads(json.dumps((mine or {}).get("fieldsV1") or {})), changed)
        entries = [
            *kept,
            {
                "manager": manager,
                "operation": operation,
                "apiVersion": new["apiVersion"],
                "time": now_rfc3339(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            },
        ]
    meta = new.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
