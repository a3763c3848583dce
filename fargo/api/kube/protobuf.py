"""Just enough of Kubernetes' protobuf encoding to read what kubectl's typed clients send
(`kubectl create namespace` posts a protobuf Namespace and does not fall back to JSON)."""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes); fixed-width values skipped."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((num, value))
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ValueError("truncated field")
            out.append((num, buf[i:i + size]))
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ValueError("expected a string")
    return value.decode()


def _map(entries: list[int | bytes]) -> dict[str, str]:
    out = {}
    for entry in entries:
        if not isinstance(entry, bytes):
            raise ValueError("expected a map entry")
        kv = dict(fields(entry))
        out[_text(kv.get(1, b""))] = _text(kv.get(2, b""))
    return out


def object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    labels, annotations = [], []
    for num, value in fields(buf):
        if num == 1:
            meta["name"] = _text(value)
        elif num == 2:
            meta["generateName"] = _text(value)
        elif num == 3:
            meta["namespace"] = _text(value)
        elif num == 11:
            labels.append(value)
        elif num == 12:
            annotations.append(value)
    if labels:
        meta["labels"] = _map(labels)
    if annotations:
        meta["annotations"] = _map(annotations)
    return meta


def decode(raw: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as JSON: for a Namespace its TypeMeta and ObjectMeta (all
    `kubectl create namespace` sets), the kinds of protoschema.KINDS in full. ValueError for
    anything else."""
    if not raw.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf message")
    unknown = dict(fields(raw[len(MAGIC):]))
    type_meta = dict(fields(unknown.get(1, b"")))  # type: ignore[arg-type]
    obj: dict[str, Any] = {"apiVersion": _text(type_meta.get(1, b"")),
                           "kind": _text(type_meta.get(2, b""))}
    body = unknown.get(2, b"")
    # Which messages the body is read with: the envelope's TypeMeta, group and version too.
    if (obj["apiVersion"], obj["kind"]) != ("v1", "Namespace"):
        from . import protoschema  # the other kinds' messages (it reads with fields())

        if (obj["apiVersion"], obj["kind"]) in protoschema.KINDS and isinstance(body, bytes):
            return {**obj, **protoschema.decode_object(obj["apiVersion"], obj["kind"], body)}
        known = ", ".join(f"{v} {k}" for v, k in [("v1", "Namespace"), *protoschema.KINDS])
        raise ValueError(f"fargo reads protobuf only for {known}, not "
                         f"{obj['apiVersion'][:60]} {obj['kind'][:40]}; send JSON")
    for num, value in fields(body if isinstance(body, bytes) else b""):
        if num == 1 and isinstance(value, bytes):
            obj["metadata"] = object_meta(value)
    return obj
