"""Every face reads a request's body here: within the size limit, and decoded from the
Content-Encoding the client named. aiohttp's own decoding is off (api/http.py): it answers a
body that is not what its encoding says, or an encoding it cannot decode, with its own plain
page, where each face must answer in its own shape. So a problem is a BodyError, which the face
renders."""

from __future__ import annotations

import zlib

from aiohttp import web

from .keys import SETTINGS

# Content codings a body may come in; any other is refused (415) rather than read as-is.
IDENTITY = {"", "identity"}
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyError(Exception):
    """The body cannot be read: `status` 413 (too large), 415 (an unknown coding) or 400 (not
    in the coding it names)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    """One coding undone, never past `limit` bytes (a small bomb must not fill the memory).
    "deflate" is zlib-wrapped by the standard and raw in some clients: both are read."""
    wbits = _WBITS[coding]
    if coding == "deflate" and data[:1] and (data[0] & 0x0F) != 8:
        wbits = -zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
        if len(out) > limit:
            raise BodyError(413, f"The request body is larger than {limit} bytes once decoded.")
        out += inflater.flush()
    except zlib.error:
        raise BodyError(400, f"The request body is not valid {coding} data.") from None
    if not inflater.eof or inflater.unused_data:
        raise BodyError(400, f"The request body is not valid {coding} data.")
    return out


def _undo(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """The body as sent, with its codings undone in the reverse of the order applied."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c not in IDENTITY]
    unknown = [c for c in codings if c not in _WBITS]
    if unknown:
        raise BodyError(415, f"Content-Encoding {unknown[0][:40]!r} is not supported: send "
                        "the body as is, or in gzip or deflate.")
    for coding in reversed(codings):
        raw = _inflate(raw, coding, limit)
    return raw


async def read(request: web.Request) -> bytes:
    """The body as sent (what a signature covers); BodyError past the server's limit, which
    aiohttp's client_max_size enforces."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SETTINGS].max_body
        raise BodyError(413, f"The request body is larger than {limit} bytes.") from None
    except web.RequestPayloadError as err:  # a broken chunked body, a short Content-Length
        raise BodyError(400, f"The request body could not be read: {err}"[:200]) from None


def decoded(request: web.Request, raw: bytes) -> bytes:
    """The body `read` returned with its Content-Encoding undone, within the same limit."""
    encoding = request.headers.get("Content-Encoding", "")
    return _undo(raw, encoding, request.app[SETTINGS].max_body) if encoding else raw


async def read_decoded(request: web.Request) -> bytes:
    """For a face whose gate is not the body's signature (the Kubernetes bearer token)."""
    return decoded(request, await read(request))
