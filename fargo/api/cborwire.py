"""CBOR as the Smithy RPC v2 CBOR protocol uses it (RFC 8949's data model, tag 1 for
timestamps), read strictly: only maps with text keys, arrays, text and byte strings,
integers, floats, booleans, null/undefined and tag-1 times; definite or indefinite lengths;
at most MAX_DEPTH levels. Anything else (another tag, a simple value, a duplicate key, bad
UTF-8, trailing bytes) is a CborError, which the face answers as a SerializationException.
A general decoder would turn other tags into objects the request has no use for (regular
expressions, big numbers, MIME messages); this one makes none. Answers are written with
cbor2, from plain values only."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import cbor2

MAX_DEPTH = 64
_BREAK = object()


class CborError(ValueError):
    pass


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise CborError("the CBOR body ends inside an item")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def argument(self, info: int) -> int | None:
        """The head's argument; None for an indefinite length."""
        if info < 24:
            return info
        if info == 31:
            return None
        if info > 27:
            raise CborError(f"reserved additional information {info}")
        return int.from_bytes(self.take(1 << (info - 24)), "big")

    def item(self, depth: int, allow_break: bool = False) -> Any:
        if depth > MAX_DEPTH:
            raise CborError(f"the CBOR body nests deeper than {MAX_DEPTH} levels")
        head = self.take(1)[0]
        major, info = head >> 5, head & 31
        if major == 7:
            return self._simple(info, allow_break)
        arg = self.argument(info)
        if major == 0:
            return _required(arg)
        if major == 1:
            return -1 - _required(arg)
        if major in (2, 3):
            return self._string(major, arg)
        if major == 4:
            return self._array(arg, depth)
        if major == 5:
            return self._map(arg, depth)
        return self._tag(_required(arg), depth)  # major 6

    def _simple(self, info: int, allow_break: bool) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info == 25:
            return struct.unpack(">e", self.take(2))[0]
        if info == 26:
            return struct.unpack(">f", self.take(4))[0]
        if info == 27:
            return struct.unpack(">d", self.take(8))[0]
        if info == 31 and allow_break:
            return _BREAK
        raise CborError(f"simple value {info} is not taken")

    def _string(self, major: int, arg: int | None) -> str | bytes:
        if arg is None:  # indefinite: definite chunks of the same major type until a break
            parts = []
            while True:
                head = self.take(1)[0]
                if head == 0xFF:
                    break
                if head >> 5 != major:
                    raise CborError("an indefinite string holds a chunk of another type")
                n = self.argument(head & 31)
                if n is None:
                    raise CborError("an indefinite string's chunk is indefinite")
                parts.append(self.take(n))
            raw = b"".join(parts)
        else:
            raw = self.take(arg)
        if major == 2:
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CborError("a text string is not valid UTF-8") from None

    def _array(self, arg: int | None, depth: int) -> list[Any]:
        out: list[Any] = []
        if arg is None:
            while (v := self.item(depth + 1, allow_break=True)) is not _BREAK:
                out.append(v)
            return out
        if arg > len(self.data) - self.pos:  # each element takes a byte at least
            raise CborError("an array is longer than the body")
        for _ in range(arg):
            out.append(self.item(depth + 1))
        return out

    def _map(self, arg: int | None, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        count = 0
        while arg is None or count < arg:
            key = self.item(depth + 1, allow_break=arg is None)
            if key is _BREAK:
                break
            if not isinstance(key, str):
                raise CborError("a map key is not a text string")
            if key in out:
                raise CborError(f"the map key {key[:64]!r} comes twice")
            out[key] = self.item(depth + 1)
            count += 1
        return out

    def _tag(self, tag: int, depth: int) -> datetime.datetime:
        if tag != 1:
            raise CborError(f"tag {tag} is not taken (only tag 1, a timestamp)")
        value = self.item(depth + 1)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CborError("a timestamp (tag 1) is not a number")
        try:
            return datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise CborError("a timestamp (tag 1) is out of range") from None


def _required(arg: int | None) -> int:
    if arg is None:
        raise CborError("an integer or tag has an indefinite length")
    return arg


def loads(data: bytes) -> Any:
    reader = _Reader(data)
    value = reader.item(0)
    if reader.pos != len(data):
        raise CborError("bytes follow the CBOR body's item")
    return value


class Timestamp(float):
    """Epoch seconds that are written as a tag-1 timestamp."""


def _plain(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return cbor2.CBORTag(1, float(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return bytes(cbor2.dumps(_plain(value)))
