"""pods/portforward as kubectl 1.32 asks for it by default: SPDY/3.1 tunnelled over a
WebSocket (`SPDY/3.1+portforward.k8s.io`, the PortForwardWebsockets feature), the frames
in streaming.py.

Per local connection, kubectl opens an error stream and a data stream sharing a requestid
and the remote port. Once both are there, fargo connects to localhost:port inside the pod's
network namespace and pumps bytes: the pod's EOF is the data stream's FIN, the client's FIN
a half close towards the pod. When the pod side is done (or the client resets the data
stream) the error stream is closed, empty; a port nothing accepts on is told on it, which
kubectl prints and then ends the whole forward, as it does against a kubelet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from ...model.kubeerrors import method_not_allowed
from ...port.errors import AgentError
from . import streaming
from .exec import POD_STREAMS, check_params, opened, upgrade
from .streaming import SpdyReader, SpdyWriter

if TYPE_CHECKING:
    from ...control.podstreams import PodStreams
    from .resources import Scope

log = logging.getLogger("fargo.kube")

CHUNK = 32 << 10  # bytes of a data frame from the pod
CONNECT_TIMEOUT = 10.0
QUEUED = 64  # client data frames held per stream while its pod socket takes them
MAX_PAIRS = 1024  # connections open at once in one session


@dataclass
class _Pair:
    """One forwarded connection: its two streams and the client's bytes for the pod."""
    request_id: str
    port: int
    error: int | None = None  # stream ids
    data: int | None = None
    inbox: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUED))  # None: the client's FIN
    task: asyncio.Task[None] | None = None
    reset: asyncio.Event = field(default_factory=asyncio.Event)


class _Session:
    def __init__(self, ws: web.WebSocketResponse, streams: PodStreams, tid: str, pod: str):
        self.ws, self.streams, self.tid, self.pod = ws, streams, tid, pod
        self.reader, self.writer = SpdyReader(), SpdyWriter()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        self.send_lock = asyncio.Lock()  # header compression: frames leave in made order

    async def send(self, frame: bytes) -> None:
        async with self.send_lock:
            await self.ws.send_bytes(frame)

    async def reply(self, stream_id: int) -> None:
        async with self.send_lock:
            await self.ws.send_bytes(self.writer.syn_reply(stream_id))

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    break
                try:
                    frames = self.reader.feed(msg.data)
                except streaming.SpdyError as err:
                    await self.send(self.writer.goaway(0, 1))  # PROTOCOL_ERROR
                    await self.ws.close(code=WSCloseCode.PROTOCOL_ERROR,
                                        message=str(err)[:100].encode())
                    return
                for frame in frames:
                    if not await self.handle(frame):
                        await self.ws.close()
                        return
        finally:
            tasks = [p.task for p in self.pairs.values() if p.task is not None]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(*tasks)

    async def handle(self, frame: streaming.Frame) -> bool:
        """False: the session ends (the client went away)."""
        if isinstance(frame, streaming.SynStream):
            await self.opened(frame)
        elif isinstance(frame, streaming.Data):
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data:
                if frame.data:
                    await pair.inbox.put(frame.data)
                if frame.fin:
                    await pair.inbox.put(None)
            # The error stream's only data is the client's FIN; other streams are gone.
        elif isinstance(frame, streaming.RstStream):
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None:
                pair.reset.set()
                if pair.task is None:  # half made: it never starts
                    self.forget(pair)
        elif isinstance(frame, streaming.Ping):
            await self.send(self.writer.ping(frame.ping_id))  # the client's: echoed
        elif isinstance(frame, streaming.GoAway):
            return False
        return True

    async def opened(self, frame: streaming.SynStream) -> None:
        kind = streaming.header(frame.headers, "streamtype")
        port_text = streaming.header(frame.headers, "port") or ""
        request_id = streaming.header(frame.headers, "requestid")
        if request_id is None:  # clients before requestid: streams go in (error, data) order
            request_id = str(frame.stream_id if kind == "error" else frame.stream_id - 2)
        port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
        if kind not in ("error", "data") or not 0 < port < 65536 \
                or frame.stream_id in self.by_stream:
            await self.send(self.writer.rst_stream(frame.stream_id, streaming.PROTOCOL_ERROR))
            return
        pair = self.pairs.get(request_id)
        if pair is None:
            if len(self.pairs) >= MAX_PAIRS:
                await self.send(self.writer.rst_stream(frame.stream_id,
                                                       streaming.REFUSED_STREAM))
                return
            pair = self.pairs[request_id] = _Pair(request_id, port)
        if pair.port != port or getattr(pair, kind) is not None:
            await self.send(self.writer.rst_stream(frame.stream_id, streaming.PROTOCOL_ERROR))
            return
        setattr(pair, kind, frame.stream_id)
        self.by_stream[frame.stream_id] = pair
        await self.reply(frame.stream_id)
        if pair.error is not None and pair.data is not None:
            pair.task = asyncio.create_task(self.forward(pair))

    def forget(self, pair: _Pair) -> None:
        self.pairs.pop(pair.request_id, None)
        for sid in (pair.error, pair.data):
            if sid is not None:
                self.by_stream.pop(sid, None)

    async def forward(self, pair: _Pair) -> None:
        assert pair.error is not None and pair.data is not None
        loop = asyncio.get_running_loop()
        sock: socket.socket | None = None
        failure = ""
        try:
            sock = await asyncio.to_thread(self.streams.socket, self.tid)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await loop.sock_connect(sock, ("127.0.0.1", pair.port))
        except (AgentError, OSError) as err:  # TimeoutError is an OSError
            reason = ("timed out" if isinstance(err, TimeoutError)
                      else os.strerror(err.errno) if isinstance(err, OSError) and err.errno
                      else str(err))
            failure = (f"error forwarding port {pair.port} to pod {self.pod}: failed to connect "
                       f"to localhost:{pair.port} inside the pod's network namespace: "
                       f"{reason.lower()}")
        try:
            if failure or sock is None:
                await self.send(self.writer.data(pair.error, failure.encode()))
                await self.send(self.writer.data(pair.data, b"", fin=True))
            else:
                await self.pump(pair, sock)
            await self.send(self.writer.data(pair.error, b"", fin=True))
        except (ConnectionResetError, RuntimeError):  # the WebSocket closed meanwhile
            pass
        finally:
            if sock is not None:
                sock.close()
            self.forget(pair)

    async def pump(self, pair: _Pair, sock: socket.socket) -> None:
        """Until the pod's side has ended or the client reset the data stream."""
        loop = asyncio.get_running_loop()
        assert pair.data is not None
        data_id = pair.data

        async def to_pod() -> None:
            while True:
                chunk = await pair.inbox.get()
                if chunk is None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
                    return
                try:
                    await loop.sock_sendall(sock, chunk)
                except OSError:
                    return  # the pod closed: what the client sends is dropped

        async def from_pod() -> None:
            while True:
                try:
                    chunk = await loop.sock_recv(sock, CHUNK)
                except OSError:
                    chunk = b""
                if not chunk:
                    await self.send(self.writer.data(data_id, b"", fin=True))
                    return
                await self.send(self.writer.data(data_id, chunk))

        sending, receiving = asyncio.create_task(to_pod()), asyncio.create_task(from_pod())
        reset = asyncio.create_task(pair.reset.wait())
        try:
            await asyncio.wait({receiving, reset}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sending, receiving, reset):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(sending, receiving, reset)
        if receiving.done() and not receiving.cancelled():
            receiving.result()  # a send that failed: the session is closing


async def pod_portforward(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise method_not_allowed(request.method)
    check_params(request, ())
    streams = request.app[POD_STREAMS]
    tid = streams.pod_task(s.cluster, s.ns, name)
    ws, _ = upgrade(request, lambda asked: streaming.PORTFORWARD_TUNNEL
                    if streaming.PORTFORWARD_TUNNEL in asked else None,
                    [streaming.PORTFORWARD_TUNNEL], required=True)
    async with opened(request, ws):
        await _Session(ws, streams, tid, name).run()
    return ws
