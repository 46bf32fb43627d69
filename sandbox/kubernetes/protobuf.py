"""Decoding the protobuf request bodies kubectl's typed clients send (``application/vnd.kubernetes.protobuf``).

A body is the Kubernetes envelope: ``k8s\\0`` then a ``runtime.Unknown`` (1: typeMeta {apiVersion, kind}, 2: raw,
the object's message). The object is decoded by field number with the schemas in ``protobuf_types`` into the
JSON-shaped dict the handlers take, with Go's JSON conventions: zero values of plain fields are left out, those of
pointer fields kept, bytes in base64, ``IntOrString`` as a number or a string, ``Time`` as RFC 3339. Kinds without a
schema are answered 415 with the message a real API server gives for a media type it cannot decode; answers are
JSON, which every client accepts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from sandbox.kubernetes import errors
from sandbox.kubernetes.protobuf_types import MESSAGES, Field

MAGIC = b"k8s\x00"
ACCEPTED = "application/json, application/yaml"


def unsupported(detail: str) -> errors.ApiError:
    return errors.ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {ACCEPTED} ({detail})",
    )


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise errors.bad_request("truncated protobuf body")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) triples of one message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise errors.bad_request("truncated protobuf body")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise errors.bad_request(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value, where: str):
    if kind == "string":
        return value.decode()
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "int":
        return _signed(value)
    if kind == "bool":
        return bool(value)
    parts = {number: v for number, _, v in _fields(value)}
    if kind == "intstr":  # 1: type (0 int, 1 string), 2: intVal, 3: strVal
        return parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(parts.get(2, 0))
    if kind == "quantity":
        return parts.get(1, b"").decode()
    if kind == "time":  # 1: seconds, 2: nanos; an empty Time is Go's zero time, null in JSON
        if not parts.get(1):
            return None
        return datetime.fromtimestamp(_signed(parts[1]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise unsupported(f"no decoder for {kind} in {where}")


def _value(field: Field, value, where: str):
    if isinstance(field.kind, dict):
        return _message(value, field.kind, f"{where}.{field.name}")
    return _scalar(field.kind, value, where)


def _is_zero(value) -> bool:
    return value in ("", 0, False, None) or value == {} or value == []


def _blank(wire: int, value) -> bool:
    """An unset Go value: zero, empty, or a message of nothing but such values (an empty ``status``)."""
    if wire != 2:
        return not value or value == bytes(len(value))
    try:
        return all(_blank(w, v) for _, w, v in _fields(value))
    except errors.ApiError:
        return False


def _message(data: bytes, schema: dict[int, Field], where: str) -> dict:
    out: dict = {}
    for number, wire, value in _fields(data):
        field = schema.get(number)
        if field is None:
            if _blank(wire, value):
                continue  # an unset field the sandbox does not model, such as a new object's empty status
            raise unsupported(f"field {number} of {where} is not decoded by the sandbox")
        if field.map:  # an entry: 1 key, 2 value
            entry = {n: v for n, _, v in _fields(value)}
            decoded = _value(field, entry.get(2, b"" if wire == 2 else 0), where)
            out.setdefault(field.name, {})[entry.get(1, b"").decode()] = decoded
        elif field.repeated:
            out.setdefault(field.name, []).append(_value(field, value, where))
        else:
            decoded = _value(field, value, where)
            if field.inline:
                out.update(decoded)
            elif field.pointer or not _is_zero(decoded):
                out[field.name] = decoded
    return out


def decode(body: bytes) -> dict:
    """A protobuf-encoded object as the JSON-shaped dict the API handlers take."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the Kubernetes envelope")
    envelope = {number: value for number, _, value in _fields(body[len(MAGIC) :])}
    type_meta = {number: value.decode() for number, _, value in _fields(envelope.get(1, b""))}
    kind, api_version = type_meta.get(2, ""), type_meta.get(1, "")
    schema = MESSAGES.get(kind)
    if schema is None:
        raise unsupported(f"the sandbox decodes no protobuf {kind or 'object'}")
    return {"kind": kind, "apiVersion": api_version, **_message(envelope.get(2, b""), schema, kind)}
