"""Decoding the protobuf request bodies kubectl's typed clients send (``application/vnd.kubernetes.protobuf``).

kubectl posts access reviews (``auth can-i``) as protobuf and does not fall back to JSON, so the sandbox reads the
Kubernetes envelope (``k8s\\0`` + ``runtime.Unknown``) and the few messages it needs, by field number, from
``k8s.io/api/authorization/v1/generated.proto``. Answers are JSON, which the client accepts.
"""

from __future__ import annotations

from sandbox.kubernetes import errors

MAGIC = b"k8s\x00"
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}
_ACCESS_SPEC = {1: ("resourceAttributes", _RESOURCE_ATTRIBUTES), 2: ("nonResourceAttributes", _NON_RESOURCE_ATTRIBUTES)}
_SUBJECT_ACCESS_SPEC = {**_ACCESS_SPEC, 3: "user", 4: ("groups", list), 6: "uid"}
SPECS = {
    "SelfSubjectAccessReview": _ACCESS_SPEC,
    "SubjectAccessReview": _SUBJECT_ACCESS_SPEC,
    "LocalSubjectAccessReview": _SUBJECT_ACCESS_SPEC,
    "SelfSubjectRulesReview": {1: "namespace"},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise errors.bad_request(f"unsupported protobuf wire type {wire}")
        yield number, value


def _decode(data: bytes, schema: dict) -> dict:
    out: dict = {}
    for number, value in _fields(data):
        field = schema.get(number)
        if field is None:
            continue
        if isinstance(field, str):
            out[field] = value.decode()
        elif field[1] is list:
            out.setdefault(field[0], []).append(value.decode())
        else:
            out[field[0]] = _decode(value, field[1])
    return out


def decode(body: bytes) -> dict:
    """A protobuf-encoded review as the JSON-shaped dict the API handlers take."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body without the Kubernetes envelope")
    envelope = dict(_fields(body[len(MAGIC) :]))
    type_meta = {number: value.decode() for number, value in _fields(envelope.get(1, b""))}
    kind = type_meta.get(2, "")
    schema = SPECS.get(kind)
    if schema is None:
        raise errors.ApiError(
            415,
            "UnsupportedMediaType",
            f"protobuf bodies are only accepted for access reviews, not {kind or 'this kind'}; send application/json",
        )
    spec = next((value for number, value in _fields(envelope.get(2, b"")) if number == 2), b"")
    return {"kind": kind, "apiVersion": type_meta.get(1, ""), "spec": _decode(spec, schema)}
