"""The object store behind the sandbox API: one resourceVersion counter, label and field selectors, and a
watch history so a client can list, then watch from the list's resourceVersion without missing an event."""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from sandbox.kubernetes import errors
from sandbox.kubernetes.resources import ResourceType

HISTORY = 50_000


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- selectors ------------------------------------------------------------------------------------------------

_SET_EXPR = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``in (a, b)`` parentheses."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def label_selector(text: str | None) -> Callable[[dict], bool]:
    """``app=web,tier!=db,env in (a,b),!canary,track`` as a predicate on a labels dict."""
    if not text:
        return lambda labels: True
    tests = []
    for term in _split_selector(text):
        if match := _SET_EXPR.match(term):
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            tests.append(
                lambda labels, k=key, o=op, v=values: (
                    (labels.get(k) in v) == (o == "in") if o == "in" else labels.get(k) not in v
                )
            )
        elif "!=" in term:
            key, value = (x.strip() for x in term.split("!=", 1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "==" in term or "=" in term:
            key, value = (x.strip() for x in re.split("==?", term, maxsplit=1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            tests.append(lambda labels, k=term[1:].strip(): k not in labels)
        elif re.fullmatch(r"[A-Za-z0-9_./-]+", term):
            tests.append(lambda labels, k=term: k in labels)
        else:
            raise errors.bad_request(f"unable to parse requirement: {term!r}")
    return lambda labels: all(test(labels or {}) for test in tests)


def _field(obj: dict, path: str):
    value = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def field_selector(text: str | None) -> Callable[[dict], bool]:
    """``metadata.name=web,type=kubernetes.io/tls,status.phase!=Running`` as a predicate on an object."""
    if not text:
        return lambda obj: True
    tests = []
    for term in _split_selector(text):
        if "!=" in term:
            path, value = term.split("!=", 1)
            tests.append(lambda obj, p=path.strip(), v=value.strip(): str(_field(obj, p) or "") != v)
        elif "=" in term:
            path, value = re.split("==?", term, maxsplit=1)
            tests.append(lambda obj, p=path.strip(), v=value.strip(): str(_field(obj, p) or "") == v)
        else:
            raise errors.bad_request(f"invalid field selector: {term!r}")
    return lambda obj: all(test(obj) for test in tests)


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector object (``matchLabels``/``matchExpressions``) against labels."""
    if not selector:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], set(expression.get("values") or [])
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def selector_string(selector: dict | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for e in (selector or {}).get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin"}.get(e["operator"])
        if op:
            parts.append(f"{e['key']} {op} ({','.join(sorted(e.get('values') or []))})")
        elif e["operator"] == "Exists":
            parts.append(e["key"])
        else:
            parts.append(f"!{e['key']}")
    return ",".join(parts)


# --- the store ------------------------------------------------------------------------------------------------


class Store:
    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], dict]] = {}
        self.history: deque[tuple[int, str, str, dict, dict | None]] = deque(maxlen=HISTORY)
        self.oldest_rv = 0
        self._changed: asyncio.Condition | None = None

    @staticmethod
    def key(rtype: ResourceType) -> str:
        return f"{rtype.group}/{rtype.plural}"

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict]:
        return self.objects.setdefault(self.key(rtype), {})

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _emit(self, event: str, rtype: ResourceType, obj: dict, old: dict | None) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest_rv = self.history[0][0]
        self.history.append((self.rv, self.key(rtype), event, copy.deepcopy(obj), old))
        if self._changed is not None:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict | None:
        obj = self._bucket(rtype).get((namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    def require(self, rtype: ResourceType, namespace: str | None, name: str) -> dict:
        obj = self.get(rtype, namespace, name)
        if obj is None:
            raise errors.not_found(rtype, name)
        return obj

    def list(
        self, rtype: ResourceType, namespace: str | None = None, labels: str | None = None, fields: str | None = None
    ) -> list[dict]:
        match_labels, match_fields = label_selector(labels), field_selector(fields)
        items = [
            obj
            for (ns, _), obj in sorted(self._bucket(rtype).items())
            if (namespace is None or ns == namespace)
            and match_labels(obj["metadata"].get("labels"))
            and match_fields(obj)
        ]
        return copy.deepcopy(items)

    def create(self, rtype: ResourceType, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if rtype.namespaced else ""
        if (namespace, meta["name"]) in self._bucket(rtype):
            raise errors.already_exists(rtype, meta["name"])
        self.rv += 1
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = str(self.rv)
        meta.setdefault("creationTimestamp", now_rfc3339())
        self._bucket(rtype)[(namespace, meta["name"])] = copy.deepcopy(obj)
        self._emit("ADDED", rtype, obj, None)
        return obj

    def update(self, rtype: ResourceType, obj: dict, *, check_version: bool = True) -> dict:
        """Replace an object; with ``check_version`` a stale ``resourceVersion`` is a 409 Conflict."""
        meta = obj["metadata"]
        key = (meta.get("namespace", "") if rtype.namespaced else "", meta["name"])
        current = self._bucket(rtype).get(key)
        if current is None:
            raise errors.not_found(rtype, meta["name"])
        sent = meta.get("resourceVersion")
        if check_version and sent and sent != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, meta["name"])
        for immutable in ("uid", "creationTimestamp"):
            meta[immutable] = current["metadata"][immutable]
        if {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}} == current:
            return copy.deepcopy(current)  # nothing changed: no new resourceVersion, no event
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self._bucket(rtype)[key] = copy.deepcopy(obj)
        self._emit("MODIFIED", rtype, obj, current)
        return obj

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> dict:
        key = ((namespace or "") if rtype.namespaced else "", name)
        obj = self._bucket(rtype).pop(key, None)
        if obj is None:
            raise errors.not_found(rtype, name)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", rtype, obj, None)
        return obj

    async def watch(
        self, rtype: ResourceType, namespace: str | None, since: str | None, labels: str | None, fields: str | None
    ) -> AsyncIterator[tuple[str, dict]]:
        """Events after resourceVersion ``since``; without one, ADDED for what exists now, then what changes."""
        key = self.key(rtype)
        match_labels, match_fields = label_selector(labels), field_selector(fields)

        def matches(obj: dict | None) -> bool:
            return (
                obj is not None
                and (namespace is None or obj["metadata"].get("namespace", "") == namespace)
                and match_labels(obj["metadata"].get("labels"))
                and match_fields(obj)
            )

        if since in (None, "", "0"):
            cursor = self.rv
            for obj in self.list(rtype, namespace, labels, fields):
                yield "ADDED", obj
        else:
            try:
                cursor = int(since)
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {since!r}") from None
            if cursor < self.oldest_rv:
                raise errors.gone(since)
        while True:
            scanned = self.rv
            pending = []
            for entry in reversed(self.history):
                if entry[0] <= cursor:
                    break
                if entry[0] <= scanned and entry[1] == key:
                    pending.append(entry)
            for _rv, _, event, obj, old in reversed(pending):
                now_matches = matches(obj)
                if event == "MODIFIED":
                    before = matches(old)
                    if before and not now_matches:
                        yield "DELETED", obj
                    elif now_matches:
                        yield ("MODIFIED" if before else "ADDED"), obj
                elif now_matches:
                    yield event, obj
            cursor = max(cursor, scanned)
            async with self.changed:
                if self.rv == cursor:
                    await self.changed.wait()
