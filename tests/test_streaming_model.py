"""The streaming protocols' framing (fargo/api/kube/streaming.py), without a server: the
remote-command channels of exec and attach, and SPDY/3.1 as port-forward tunnels it, read
and written as client-go and spdystream write and read them."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from fargo.api.kube import streaming as st

pytestmark = pytest.mark.pure

V5 = st.CHANNEL_PROTOCOLS["v5.channel.k8s.io"]
V4 = st.CHANNEL_PROTOCOLS["v4.channel.k8s.io"]
V4_B64 = st.CHANNEL_PROTOCOLS["v4.base64.channel.k8s.io"]
V1 = st.CHANNEL_PROTOCOLS["channel.k8s.io"]


# ---- channels

def test_negotiation_takes_the_clients_first_served_protocol():
    assert st.offered(" v5.channel.k8s.io, v4.channel.k8s.io ,") == [
        "v5.channel.k8s.io", "v4.channel.k8s.io"]
    assert st.choose(["v5.channel.k8s.io", "v4.channel.k8s.io"]) is V5
    assert st.choose(["v3.channel.k8s.io", "v4.channel.k8s.io"]) is V4  # v3 is SPDY-only
    assert st.choose(["SPDY/3.1+portforward.k8s.io"]) is None
    assert st.choose([]) is V1  # no subprotocol: the unversioned binary one


def test_binary_frames_carry_the_channel_byte():
    assert st.encode(V5, st.STDOUT, b"hi\n") == b"\x01hi\n"
    assert st.decode(V5, b"\x00abc") == st.Inbound(0, b"abc")
    assert st.decode(V5, b"\x04{}") == st.Inbound(4, b"{}")
    assert st.decode(V5, b"") is None  # empty messages are ignored


def test_v5_close_signal_names_one_channel():
    assert st.decode(V5, b"\xff\x00") == st.Inbound(0, closed=True)
    with pytest.raises(st.FrameError):
        st.decode(V5, b"\xff\x00\x01")
    # before v5, 255 is just a channel nobody reads
    assert st.decode(V4, b"\xff\x00") == st.Inbound(255, b"\x00")


def test_base64_frames():
    assert st.encode(V4_B64, st.STDERR, b"\x00\xff") == "2AP8="
    assert st.decode(V4_B64, "0Zm9vCg==") == st.Inbound(0, b"foo\n")
    for bad in ("xZm9v", "0Zm9v!"):
        with pytest.raises(st.FrameError):
            st.decode(V4_B64, bad)
    with pytest.raises(st.FrameError):
        st.decode(V4_B64, b"\x00abc")  # a binary message on a text protocol
    with pytest.raises(st.FrameError):
        st.decode(V5, "0abc")


def test_exit_status_as_client_go_decodes_it():
    ok = json.loads(st.exit_message(V5, 0, ["true"]))
    assert ok["status"] == "Success"
    failed = json.loads(st.exit_message(V4, 3, ["sh", "-c", "exit 3"]))
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    # the unversioned protocol says it in words, and nothing on success
    assert st.exit_message(V1, 0, ["true"]) == b""
    assert b"exit code: 3" in st.exit_message(V1, 3, ["false"])
    internal = json.loads(st.failure_message(V5, "boom"))
    assert internal["status"] == "Failure" and internal["message"] == "boom"


def test_resize_messages():
    r = st.ResizeReader()
    assert r.feed(b'{"Width":80,"Height":24}\n') == [(80, 24)]
    assert r.feed(b'{"Width":100,') == []  # a part waits for the rest
    assert r.feed(b'"Height":40}{"Width":1,"Height":2}') == [(100, 40), (1, 2)]
    assert r.feed(b'{"Width":99999999,"Height":3}') == [(0xFFFF, 3)]
    for bad in (b'{"Width":"80","Height":24}', b"[1,2]", b'{"Width":-1,"Height":2}',
                b'{"Width":true,"Height":2}'):
        with pytest.raises(st.FrameError):
            st.ResizeReader().feed(bad)
    with pytest.raises(st.FrameError):
        st.ResizeReader().feed(b"{" * (st.ResizeReader.MAX + 10))


# ---- SPDY, as spdystream writes it

def test_dictionary_is_spdy3s():
    assert len(st.HEADER_DICTIONARY) == 1423
    assert zlib.adler32(st.HEADER_DICTIONARY) == 0xE3C6A7C2


class Client:
    """A SPDY client's side: its own header compression context, its frames as bytes."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY,
                                  st.HEADER_DICTIONARY)
        self.unz = zlib.decompressobj(zdict=st.HEADER_DICTIONARY)

    def block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers))
        for k, v in headers.items():
            raw += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return self.z.compress(raw) + self.z.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, sid: int, headers: dict[str, str], fin: bool = False) -> bytes:
        body = struct.pack(">IIBB", sid, 0, 0, 0) + self.block(headers)
        return struct.pack(">HHI", 0x8003, 1, (1 if fin else 0) << 24 | len(body)) + body

    @staticmethod
    def data(sid: int, data: bytes, fin: bool = False) -> bytes:
        return struct.pack(">II", sid, (1 if fin else 0) << 24 | len(data)) + data

    @staticmethod
    def control(kind: int, body: bytes, version: int = 3) -> bytes:
        return struct.pack(">HHI", 0x8000 | version, kind, len(body)) + body


def pf_headers(kind: str, port: int = 8080, rid: int = 0) -> dict[str, str]:
    return {"streamtype": kind, "port": str(port), "requestid": str(rid)}


def test_reads_kubectls_streams_split_anywhere():
    c = Client()
    wire = (c.control(st.SETTINGS, struct.pack(">I", 0))
            + c.syn_stream(1, pf_headers("error"))
            + c.data(1, b"", fin=True)
            + c.syn_stream(3, pf_headers("data"))  # the second block: a shared context
            + c.data(3, b"GET / HTTP/1.0\r\n\r\n")
            + c.control(st.PING, struct.pack(">I", 1))
            + c.control(st.RST_STREAM, struct.pack(">II", 3, st.CANCEL))
            + c.control(st.WINDOW_UPDATE, struct.pack(">II", 3, 1000))
            + c.control(st.GOAWAY, struct.pack(">II", 3, 0)))
    reader = st.SpdyReader()
    frames = []
    for i in range(len(wire)):  # a byte a message: each arrives whole only at its end
        frames += reader.feed(wire[i:i + 1])
    assert frames == [
        st.Other(st.SETTINGS),
        st.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}, False),
        st.Data(1, b"", True),
        st.SynStream(3, {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}, False),
        st.Data(3, b"GET / HTTP/1.0\r\n\r\n", False),
        st.Ping(1), st.RstStream(3, st.CANCEL), st.Other(st.WINDOW_UPDATE), st.GoAway(3, 0)]
    assert st.header(frames[1].headers, "StreamType") == "error"


def test_refuses_what_is_not_spdy3():
    c = Client()
    for wire in (c.control(st.PING, struct.pack(">I", 1), version=2),
                 c.data(0, b"x"),
                 c.control(st.PING, b"\x00\x00"),  # short
                 c.syn_stream(0, {"a": "b"})):
        with pytest.raises(st.SpdyError):
            st.SpdyReader().feed(wire)
    # a header block that inflates past the limit
    c = Client()
    big = c.syn_stream(1, {"x": "a" * (st.MAX_HEADER_BLOCK + 10)})
    with pytest.raises(st.SpdyError):
        st.SpdyReader().feed(big)
    # repeated names are a protocol error, as spdystream's reader says
    c = Client()
    raw = struct.pack(">I", 2) + (struct.pack(">I", 1) + b"a" + struct.pack(">I", 1) + b"b") * 2
    block = c.z.compress(raw) + c.z.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIBB", 1, 0, 0, 0) + block
    with pytest.raises(st.SpdyError):
        st.SpdyReader().feed(struct.pack(">HHI", 0x8003, 1, len(body)) + body)


def parse_server(wire: bytes, unz: zlib._Decompress) -> list[tuple]:
    """The server's frames as spdystream reads them."""
    out = []
    while wire:
        first, word = struct.unpack_from(">II", wire)
        flags, length = word >> 24, word & 0xFFFFFF
        body, wire = wire[8:8 + length], wire[8 + length:]
        if first & 0x80000000:
            assert first >> 16 == 0x8003
            kind = first & 0xFFFF
            if kind == st.SYN_REPLY:
                sid = struct.unpack_from(">I", body)[0]
                raw = unz.decompress(body[4:])
                out.append(("reply", sid, flags, struct.unpack_from(">I", raw)[0]))
            else:
                out.append((kind, flags, body))
        else:
            out.append(("data", first, flags, body))
    return out


def test_writes_what_spdystream_reads():
    w, c = st.SpdyWriter(), Client()
    wire = (w.syn_reply(1) + w.syn_reply(3) + w.data(3, b"hello") + w.data(3, b"", fin=True)
            + w.data(1, b"", fin=True) + w.ping(1) + w.rst_stream(5, st.PROTOCOL_ERROR)
            + w.goaway(3))
    assert parse_server(wire, c.unz) == [
        ("reply", 1, 0, 0), ("reply", 3, 0, 0),  # empty header blocks, one context
        ("data", 3, 0, b"hello"), ("data", 3, 1, b""), ("data", 1, 1, b""),
        (st.PING, 0, struct.pack(">I", 1)), (st.RST_STREAM, 0, struct.pack(">II", 5, 1)),
        (st.GOAWAY, 0, struct.pack(">II", 3, 0))]
    with pytest.raises(ValueError):
        w.data(1, b"x" * (st.MAX_FRAME + 1))
