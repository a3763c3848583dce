"""The VPC resolver's wire side: DNS over UDP and TCP (dnspython parses and renders every
message), answering from control/dns.py's Names. One asyncio server for everything: each
task's pair of sockets (opened in its netns at its VPC's base + 2) and the host's loopback
port are served by the same object, each with the view it answers for.

It answers only from fargo's own data and never sends a query anywhere: a name fargo does
not know is NXDOMAIN, also outside the zones it holds. NXDOMAIN rather than REFUSED for
those, because musl's stub resolver (Alpine images) ignores a REFUSED reply and waits out its
timeout, so every lookup of an outside name would hang for seconds instead of failing."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A as ARdata
from dns.rdtypes.IN.AAAA import AAAA as AAAARdata
from dns.rdtypes.IN.SRV import SRV

from ..control.dns import Names
from ..model import dns as model
from ..model.dns import Answer, Rcode, Record, View

log = logging.getLogger("fargo.dns")

IN = dns.rdataclass.IN
OUR_PAYLOAD = 1232  # the EDNS buffer size DNS flag day 2020 settled on
PLAIN_UDP = 512
TCP_IDLE = 10.0  # seconds a TCP connection may wait for its next query
TCP_PER_LISTENER = 32  # connections open at once on one listener; more are closed
# Queries a task's resolver answers per second (and in a burst): a task flooding it must not
# take the server's event loop from everyone else. Past it, queries are dropped (the client
# retries, as over a lossy network). The host's port has no such limit.
TASK_RATE, TASK_BURST = 2000.0, 4000.0
_NO_QUESTION = {dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.OPT,
                dns.rdatatype.TSIG, dns.rdatatype.TKEY}


# ---- one message


def respond(names: Names, view: View, wire: bytes, limit: int | None) -> bytes | None:
    """The reply to one query (limit: the most a UDP reply may hold, None over TCP), or None
    when the bytes are not even a DNS header to reply to."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - whatever the bytes are, they get FORMERR or nothing
        return _formerr(wire)
    if query.flags & dns.flags.QR:
        return None  # a response sent to us: answering it could loop two servers
    reply = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
    reply.flags |= dns.flags.RA  # the only resolver a task has: its answers are final
    if query.opcode() != dns.opcode.QUERY:
        reply.set_rcode(dns.rcode.NOTIMP)
        return _wire(reply, limit)
    if len(query.question) != 1:
        reply.set_rcode(dns.rcode.FORMERR)
        return _wire(reply, limit)
    q = query.question[0]
    if q.rdtype in _NO_QUESTION:
        reply.set_rcode(dns.rcode.REFUSED if q.rdtype in (dns.rdatatype.AXFR,
                                                          dns.rdatatype.IXFR)
                        else dns.rcode.FORMERR)
        return _wire(reply, limit)
    if q.rdclass != IN:
        reply.set_rcode(dns.rcode.REFUSED)
        return _wire(reply, limit)
    key = _key(q.name)
    found = Answer(Rcode.NXDOMAIN) if key is None else \
        names.resolve(view, key, dns.rdatatype.to_text(q.rdtype))
    _fill(reply, found, q.name, key)
    if limit is not None and query.edns >= 0:
        limit = max(PLAIN_UDP, min(query.payload, OUR_PAYLOAD))
    return _wire(reply, limit)


def _key(name: dns.name.Name) -> str | None:
    """The asked name as model/dns.py keys names, or None when no name of fargo's could be
    it (a label with a dot, a backslash, or a byte outside printable ASCII)."""
    labels = name.labels[:-1] if name.is_absolute() else name.labels
    if not labels:
        return None
    texts: list[str] = []
    for label in labels:
        if any(b < 0x21 or b > 0x7e or b in (0x2e, 0x5c) for b in label):
            return None
        texts.append(label.decode("ascii"))
    return model.name_key(".".join(texts))


def _fill(reply: dns.message.Message, found: Answer, asked: dns.name.Name,
          key: str | None) -> None:
    reply.set_rcode(dns.rcode.from_text(found.rcode.name))
    if found.authoritative:
        reply.flags |= dns.flags.AA
    for section, records in ((reply.answer, found.records), (reply.authority, found.authority)):
        sets: dict[tuple[str, str], dns.rrset.RRset] = {}
        for record in records:
            try:
                name = asked if record.name == key else _name(record.name)
                rdata = _rdata(record)
            except (dns.exception.DNSException, ValueError) as err:  # a name too long, ...
                log.warning("DNS record %s %s left out: %s", record.name, record.type, err)
                continue
            rrset = sets.get((record.name, record.type))
            if rrset is None:
                rrset = sets[(record.name, record.type)] = dns.rrset.RRset(
                    name, IN, rdata.rdtype)
                section.append(rrset)
            rrset.add(rdata, record.ttl)


def _name(key: str) -> dns.name.Name:
    return dns.name.Name([label.encode("ascii") for label in key.split(".")] + [b""])


def _rdata(record: Record) -> dns.rdata.Rdata:
    d = record.data
    rdtype = dns.rdatatype.from_text(record.type)
    if isinstance(d, model.A):
        return ARdata(IN, rdtype, d.address)
    if isinstance(d, model.AAAA):
        return AAAARdata(IN, rdtype, d.address)
    if isinstance(d, model.Srv):
        return SRV(IN, rdtype, d.priority, d.weight, d.port, _name(d.target))
    if isinstance(d, model.Cname):
        return CNAME(IN, rdtype, _name(d.target))
    if isinstance(d, model.Ptr):
        return PTR(IN, rdtype, _name(d.target))
    return SOA(IN, rdtype, _name(d.mname), _name(d.rname), d.serial, d.refresh, d.retry,
               d.expire, d.minimum)


def _wire(reply: dns.message.Message, limit: int | None) -> bytes:
    try:
        return reply.to_wire(max_size=limit or 65535)
    except dns.exception.TooBig:
        # Over UDP: the header and question with TC set, so the client asks again over TCP.
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit or 65535)


def _formerr(wire: bytes) -> bytes | None:
    """FORMERR for bytes that hold a query's header but no message dnspython can read."""
    if len(wire) < 12:
        return None
    ident, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:  # a response: never answered
        return None
    opcode_bits = flags & 0x7800
    return struct.pack("!HHHHHH", ident, 0x8000 | opcode_bits | (flags & 0x0100) | 0x0080
                       | dns.rcode.FORMERR, 0, 0, 0, 0)


# ---- serving


class _Bucket:
    """A token bucket: take() is False once the rate is spent."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, names: Names, view: View, bucket: _Bucket | None):
        self.names, self.view, self.bucket = names, view, bucket
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self.bucket is not None and not self.bucket.take():
            return
        try:
            out = respond(self.names, self.view, data, PLAIN_UDP)
        except Exception:  # noqa: BLE001 - one query must never stop the listener
            log.exception("DNS query from %s", addr)
            out = _servfail(data)
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier reply: nothing to do


def _servfail(wire: bytes) -> bytes | None:
    reply = _formerr(wire)
    if reply is None:
        return None
    return reply[:3] + bytes([(reply[3] & 0xF0) | dns.rcode.SERVFAIL]) + reply[4:]


class ServedSockets:
    """A UDP endpoint and a TCP server answering for one view."""

    def __init__(self, udp: asyncio.DatagramTransport, tcp: asyncio.base_events.Server,
                 port: int):
        self.udp, self.tcp, self.port = udp, tcp, port

    async def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await self.tcp.wait_closed()


class DnsServer:
    """control/dns.py's DnsFrontend: serves the names on any listening sockets given."""

    def __init__(self, names: Names):
        self.names = names

    async def serve(self, view: View, udp: object, tcp: object) -> ServedSockets:
        """udp: a bound UDP socket; tcp: a listening TCP socket (both non-blocking); from now
        on this server owns them. A VPC's view (a task's sockets) is rate-limited."""
        assert isinstance(udp, socket.socket) and isinstance(tcp, socket.socket)
        loop = asyncio.get_running_loop()
        bucket = _Bucket(TASK_RATE, TASK_BURST) if view.vpc_id is not None else None
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.names, view, bucket), sock=udp)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        try:
            server = await asyncio.start_server(self._tcp_handler(view, bucket), sock=tcp)
        except BaseException:
            transport.close()
            tcp.close()
            raise
        return ServedSockets(transport, server, tcp.getsockname()[1])

    async def serve_host(self, port: int, strict: bool) -> ServedSockets:
        """The host's view on 127.0.0.1:port, UDP and TCP. Not strict (the port was not
        asked for by name): if it is taken, a free port is served instead."""
        try:
            udp, tcp = _bind_pair(port)
        except OSError as err:
            if strict or err.errno != errno.EADDRINUSE:
                raise
            udp, tcp = _free_pair()
        return await self.serve(model.HOST, udp, tcp)

    def _tcp_handler(self, view: View, bucket: _Bucket | None) -> Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        open_now = [0]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if open_now[0] >= TCP_PER_LISTENER:
                writer.close()
                return
            open_now[0] += 1
            try:
                while True:
                    async with asyncio.timeout(TCP_IDLE):
                        head = await reader.readexactly(2)
                    (size,) = struct.unpack("!H", head)
                    async with asyncio.timeout(TCP_IDLE):
                        wire = await reader.readexactly(size)
                    while bucket is not None and not bucket.take():
                        await asyncio.sleep(0.01)  # over TCP: slowed down, not dropped
                    try:
                        out = respond(self.names, view, wire, None)
                    except Exception:  # noqa: BLE001 - answered SERVFAIL, the loop goes on
                        log.exception("DNS query over TCP")
                        out = _servfail(wire)
                    if out is None:
                        break
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
                pass
            finally:
                open_now[0] -= 1
                writer.close()

        return handle


def _bind_pair(port: int) -> tuple[socket.socket, socket.socket]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))
        udp.bind(("127.0.0.1", tcp.getsockname()[1]))
        tcp.listen(64)
        tcp.setblocking(False)
        udp.setblocking(False)
    except BaseException:
        tcp.close()
        udp.close()
        raise
    return udp, tcp


def _free_pair() -> tuple[socket.socket, socket.socket]:
    """A port free for both UDP and TCP on loopback."""
    for _ in range(20):
        try:
            return _bind_pair(0)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP on 127.0.0.1")
