"""The streaming protocols of pods/exec, pods/attach and pods/portforward as bytes, with no
I/O: exec.py and portforward.py move them over aiohttp's WebSockets.

Remote commands (exec, attach) use the channel protocols: each WebSocket message is one
channel byte then data (base64 variants: the channel as an ASCII digit, the data base64).
Channels 0 stdin, 1 stdout, 2 stderr, 3 error (how the command ended), 4 resize (a JSON
TerminalSize per message). v4 writes the end as a metav1.Status (exit codes as causes),
earlier versions as plain text; v5 adds 255, a client's close of one channel (stdin).

Port-forward tunnels SPDY/3.1 over a WebSocket (`SPDY/3.1+portforward.k8s.io`: the binary
messages carry a SPDY byte stream). The client opens two streams per connection, error and
data (headers streamtype, port, requestid); header blocks are zlib-compressed with SPDY's
dictionary, one compression context per direction for the whole session."""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

# ---------------------------------------------------------------- remote command channels

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass(frozen=True)
class ChannelProtocol:
    name: str
    base64: bool = False
    status: bool = False  # the error channel carries a metav1.Status (v4 on)
    close: bool = False  # the client may close a channel (v5)


# What fargo serves, as the kubelet and the apiserver name them; "" (no subprotocol asked
# for) is the first version, binary.
CHANNEL_PROTOCOLS = {p.name: p for p in (
    ChannelProtocol("v5.channel.k8s.io", status=True, close=True),
    ChannelProtocol("v4.channel.k8s.io", status=True),
    ChannelProtocol("v4.base64.channel.k8s.io", base64=True, status=True),
    ChannelProtocol("channel.k8s.io"),
    ChannelProtocol("base64.channel.k8s.io", base64=True),
)}
_UNVERSIONED = CHANNEL_PROTOCOLS["channel.k8s.io"]


def offered(header: str | None) -> list[str]:
    """The subprotocols a Sec-WebSocket-Protocol header asks for, in its order."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def choose(asked: list[str]) -> ChannelProtocol | None:
    """The first asked-for protocol fargo serves (the client's order, as the apiserver's
    handshake picks); none asked: the unversioned one; None when none asked for is served."""
    if not asked:
        return _UNVERSIONED
    return next((CHANNEL_PROTOCOLS[p] for p in asked if p in CHANNEL_PROTOCOLS), None)


class FrameError(ValueError):
    """A message the protocol does not allow."""


def encode(proto: ChannelProtocol, channel: int, data: bytes) -> bytes | str:
    if proto.base64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
    return bytes([channel]) + data


@dataclass(frozen=True)
class Inbound:
    """One client message: data on a channel, or (v5) the close of `channel`."""
    channel: int
    data: bytes = b""
    closed: bool = False


def decode(proto: ChannelProtocol, message: bytes | str) -> Inbound | None:
    """A client message; None for an empty one (ignored, as upstream ignores it)."""
    if isinstance(message, str):
        if not proto.base64:
            raise FrameError("text message on a binary channel protocol")
        if not message:
            return None
        channel = ord(message[0]) - ord("0")
        if not 0 <= channel <= 9:
            raise FrameError(f"channel {message[0]!r} is not a digit")
        try:
            return Inbound(channel, base64.b64decode(message[1:], validate=True))
        except (binascii.Error, ValueError):
            raise FrameError("data is not base64") from None
    if proto.base64:
        raise FrameError("binary message on a base64 channel protocol")
    if not message:
        return None
    if proto.close and message[0] == CLOSE:
        if len(message) != 2:
            raise FrameError("a close signal names exactly one channel")
        return Inbound(message[1], closed=True)
    return Inbound(message[0], bytes(message[1:]))


def _status(status: str, message: str = "", reason: str = "",
            details: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": status}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    return json.dumps(body, separators=(",", ":")).encode()


def exit_message(proto: ChannelProtocol, code: int, argv: list[str]) -> bytes:
    """What the error channel says of a command that ended with `code` (b"": nothing is
    written, the command succeeded on a text protocol)."""
    if proto.status:
        if code == 0:
            return _status("Success")
        return _status("Failure", f"command terminated with non-zero exit code: error "
                                  f"executing command [{' '.join(argv)}], exit code {code}",
                       "NonZeroExitCode",
                       {"causes": [{"reason": "ExitCode", "message": str(code)}]})
    return b"" if code == 0 else f"command terminated with non-zero exit code: {code}".encode()


def failure_message(proto: ChannelProtocol, message: str) -> bytes:
    """The error channel's words for a stream that failed without an exit code."""
    if proto.status:
        return _status("Failure", message, "InternalError", {"causes": [{"message": message}]})
    return message.encode()


class ResizeReader:
    """Terminal sizes from the resize channel: JSON objects {"Width": w, "Height": h}, one a
    message as client-go writes them, though a message may also hold several or a part."""

    MAX = 4096  # bytes held waiting for an object's end

    def __init__(self) -> None:
        self._buf = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data.decode("utf-8", "replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return sizes
            try:
                obj, end = self._decoder.raw_decode(text)
            except ValueError:
                if len(text) > self.MAX:
                    raise FrameError("resize message is not a terminal size") from None
                self._buf = text
                return sizes
            self._buf = text[end:]
            width, height = (obj.get("Width"), obj.get("Height")) if isinstance(obj, dict) \
                else (None, None)
            if not (isinstance(width, int) and isinstance(height, int)) or width < 0 \
                    or height < 0 or isinstance(width, bool) or isinstance(height, bool):
                raise FrameError(f"not a terminal size: {text[:end][:80]}")
            sizes.append((min(width, 0xFFFF), min(height, 0xFFFF)))


# ---------------------------------------------------------------- SPDY/3.1

SPDY_VERSION = 3
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"  # the WebSocket subprotocol tunnelling SPDY
PORTFORWARD_TUNNEL = TUNNEL_PREFIX + PORTFORWARD_PROTOCOL

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
# RST_STREAM statuses
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_HEADER_BLOCK = 64 << 10  # decompressed bytes of one header block, at most
MAX_FRAME = (1 << 24) - 1  # SPDY's own length field

# The zlib dictionary of SPDY/3's header blocks (draft 3, 2.6.10.1): the names and values it
# primes the compression with, each with its 4-byte length, then a run of common strings.
_DICT_WORDS = [*(
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status").split(), "200 OK",
    *"version HTTP/1.1 url public set-cookie keep-alive origin".split()]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad "
    "Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not "
    "Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    "00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,"
    "image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def _dictionary() -> bytes:
    out = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS)
    return out + _DICT_TAIL.encode()


HEADER_DICTIONARY = _dictionary()


class SpdyError(ValueError):
    """A byte stream that is not SPDY/3.1 as fargo reads it: the session ends."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, list[str]]
    fin: bool


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    status: int


@dataclass(frozen=True)
class Other:
    """A frame the server takes no action on (SETTINGS, WINDOW_UPDATE, HEADERS, SYN_REPLY):
    flow control is not kept by spdystream, kubectl's SPDY side, either."""
    kind: int


Frame = SynStream | Data | RstStream | Ping | GoAway | Other


def _header_block(raw: bytes) -> dict[str, list[str]]:
    def u32(at: int) -> int:
        if at + 4 > len(raw):
            raise SpdyError("header block cut short")
        value: int = struct.unpack_from(">I", raw, at)[0]
        return value

    count, at = u32(0), 4
    if count > 1000:
        raise SpdyError("too many headers")
    headers: dict[str, list[str]] = {}
    for _ in range(count):
        size = u32(at)
        name = raw[at + 4:at + 4 + size]
        at += 4 + size
        size = u32(at)
        value = raw[at + 4:at + 4 + size]
        at += 4 + size
        if at > len(raw):
            raise SpdyError("header block cut short")
        key = name.decode("latin-1").lower()
        if not key or key in headers:
            raise SpdyError(f"header {key!r} empty or repeated")
        headers[key] = value.decode("latin-1").split("\x00")
    if at != len(raw):
        raise SpdyError("bytes after the header block")
    return headers


class SpdyReader:
    """Frames from a SPDY byte stream fed in pieces of any size."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._zlib = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            first, word = struct.unpack_from(">II", self._buf)
            flags, length = word >> 24, word & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            body = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != SPDY_VERSION:
                    raise SpdyError(f"SPDY version {version}, not 3")
                frames.append(self._control(kind, flags, body))
            else:
                stream_id = first & 0x7FFFFFFF
                if stream_id == 0:
                    raise SpdyError("data on stream 0")
                frames.append(Data(stream_id, body, bool(flags & FLAG_FIN)))
        return frames

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as err:
            raise SpdyError(f"header block: {err}") from None
        if self._zlib.unconsumed_tail:
            raise SpdyError("header block too large")
        return _header_block(raw)

    def _control(self, kind: int, flags: int, body: bytes) -> Frame:
        def fixed(size: int) -> tuple[int, ...]:
            if len(body) != size:
                raise SpdyError(f"control frame {kind} of {len(body)} bytes, not {size}")
            return struct.unpack(">" + "I" * (size // 4), body)

        if kind == SYN_STREAM:
            if len(body) < 10:
                raise SpdyError("SYN_STREAM cut short")
            stream_id = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            if stream_id == 0:
                raise SpdyError("SYN_STREAM for stream 0")
            return SynStream(stream_id, self._headers(body[10:]), bool(flags & FLAG_FIN))
        if kind in (SYN_REPLY, HEADERS):
            if len(body) < 4:
                raise SpdyError("control frame cut short")
            self._headers(body[4:])  # keeps the shared compression context in step
            return Other(kind)
        if kind == RST_STREAM:
            stream_id, status = fixed(8)
            return RstStream(stream_id & 0x7FFFFFFF, status)
        if kind == PING:
            return Ping(fixed(4)[0])
        if kind == GOAWAY:
            last, status = fixed(8)
            return GoAway(last & 0x7FFFFFFF, status)
        return Other(kind)  # SETTINGS, WINDOW_UPDATE, and kinds SPDY/3 leaves for later


def _control_frame(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | SPDY_VERSION, kind, flags << 24 | len(body)) + body


class SpdyWriter:
    """Frames for the client; the header compression context lives as long as the session."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9,
                                      zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for name, value in headers.items():
            key, text = name.lower().encode("latin-1"), value.encode("latin-1")
            raw += struct.pack(">I", len(key)) + key + struct.pack(">I", len(text)) + text
        return self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None,
                  fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id) + self._block(headers or {})
        return _control_frame(SYN_REPLY, FLAG_FIN if fin else 0, body)

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        if len(data) > MAX_FRAME:
            raise ValueError("a data frame holds at most 16 MiB")
        return struct.pack(">II", stream_id & 0x7FFFFFFF,
                           (FLAG_FIN if fin else 0) << 24 | len(data)) + data

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        return _control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    @staticmethod
    def ping(ping_id: int) -> bytes:
        return _control_frame(PING, 0, struct.pack(">I", ping_id))

    @staticmethod
    def goaway(last_stream_id: int, status: int = 0) -> bytes:
        return _control_frame(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


def header(headers: dict[str, list[str]], name: str) -> str | None:
    """A stream's header by its (lower-case) name, the first value."""
    values = headers.get(name.lower())
    return values[0] if values else None
