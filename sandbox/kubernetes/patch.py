"""The three PATCH flavours of the Kubernetes API.

- JSON patch (RFC 6902, ``application/json-patch+json``): add/remove/replace/move/copy/test;
- JSON merge patch (RFC 7386, ``application/merge-patch+json``): objects merge, ``null`` deletes, lists replace;
- strategic merge patch (``application/strategic-merge-patch+json``): like a merge patch, but lists of objects
  with a merge key (containers by ``name``, ports by ``containerPort``, ...) merge element by element, and the
  ``$patch``, ``$setElementOrder/<list>``, ``$retainKeys`` and ``$deleteFromPrimitiveList/<list>`` directives
  kubectl sends are honoured.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kubernetes import errors

# list field name -> merge key, for the fields the sandbox's types carry (from the Kubernetes API's patch tags)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "tolerations": "key",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "ownerReferences": "uid",
    "finalizers": None,
}
SERVICE_PORT_KEY = "port"


# --- JSON patch -----------------------------------------------------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    target = doc
    for token in tokens[:-1]:
        if isinstance(target, list):
            target = target[int(token)]
        elif isinstance(target, dict):
            if token not in target:
                raise errors.ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: missing path segment {token!r}",
                )
            target = target[token]
        else:
            raise errors.bad_request(f"cannot traverse into {token!r}")
    return target, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    target = doc
    for token in _tokens(pointer):
        target = target[int(token)] if isinstance(target, list) else target[token]
    return target


def json_patch(doc: dict, operations: Any) -> dict:
    if not isinstance(operations, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        tokens = _tokens(path)
        try:
            if kind in ("add", "replace"):
                if not tokens:
                    doc = copy.deepcopy(op["value"])
                    continue
                parent, last = _parent(doc, tokens)
                if isinstance(parent, list):
                    index = len(parent) if last == "-" else int(last)
                    if kind == "add":
                        parent.insert(index, copy.deepcopy(op["value"]))
                    else:
                        parent[index] = copy.deepcopy(op["value"])
                else:
                    if kind == "replace" and last not in parent:
                        raise errors.ApiError(
                            422, "Invalid", f"replace operation does not apply: doc is missing key: {path}"
                        )
                    parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                parent, last = _parent(doc, tokens)
                if isinstance(parent, list):
                    parent.pop(int(last))
                elif last in parent:
                    del parent[last]
                else:
                    raise errors.ApiError(
                        422, "Invalid", f"remove operation does not apply: doc is missing path: {path}"
                    )
            elif kind in ("move", "copy"):
                value = copy.deepcopy(_get(doc, op["from"]))
                if kind == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            elif kind == "test":
                if _get(doc, path) != op.get("value"):
                    raise errors.ApiError(422, "Invalid", f"testing value {path} failed")
            else:
                raise errors.bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise errors.ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {kind} {path}: {err}"
            ) from None
    return doc


# --- merge patch ----------------------------------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge patch ------------------------------------------------------------------------------------


def strategic_merge_patch(doc: Any, patch: Any, *, kind: str | None = None) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"]) | {k for k in patch if not k.startswith("$")}
        result = {k: v for k, v in result.items() if k in keep}
    orders = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$setElementOrder/")}
    deletions = {k.split("/", 1)[1]: v for k, v in patch.items() if k.startswith("$deleteFromPrimitiveList/")}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key, kind)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, kind=kind)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for key, values in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        result[key] = _reorder(result.get(key) or [], order, _merge_key(key, kind))
    return result


def _merge_key(field: str, kind: str | None) -> str | None:
    if field == "ports" and kind == "Service":
        return SERVICE_PORT_KEY
    return MERGE_KEYS.get(field)


def _merge_list(current: Any, patch: list, field: str, kind: str | None) -> list:
    key = _merge_key(field, kind)
    if field not in MERGE_KEYS or not isinstance(current, list):
        if key is None and field in MERGE_KEYS:  # a set of primitives (finalizers): union
            merged = list(current) if isinstance(current, list) else []
            return merged + [v for v in patch if v not in merged]
        return [_strip_directives(item) for item in patch]
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            return [_strip_directives(i) for i in patch]
        position = next(
            (i for i, existing in enumerate(merged) if isinstance(existing, dict) and existing.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
        elif position is None:
            merged.append(_strip_directives(item))
        else:
            merged[position] = strategic_merge_patch(merged[position], item, kind=kind)
    return merged


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _reorder(items: list, order: list, key: str | None) -> list:
    if key is None:
        return items
    wanted = [entry.get(key) if isinstance(entry, dict) else entry for entry in order]
    ranked = {value: index for index, value in enumerate(wanted)}
    return sorted(items, key=lambda item: ranked.get(item.get(key) if isinstance(item, dict) else item, len(ranked)))


PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}


def apply_patch(doc: dict, content_type: str, body: Any, kind: str) -> dict:
    flavour = PATCH_TYPES.get(content_type.split(";")[0].strip())
    if flavour == "json":
        return json_patch(doc, body)
    if flavour == "merge":
        return merge_patch(doc, body)
    if flavour == "strategic":
        return strategic_merge_patch(doc, body, kind=kind)
    raise errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
    )
