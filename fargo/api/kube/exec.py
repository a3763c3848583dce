"""pods/exec and pods/attach over the WebSocket channel protocols (streaming.py): what kubectl
1.32 speaks by default (v5.channel.k8s.io; it falls back to SPDY only when the WebSocket
upgrade is refused, and fargo refuses SPDY by name).

Everything that can be refused is refused before the upgrade, as a Status: a pod, container
or command that is not there or not running, a parameter fargo does not know. After it, the
command's end is told on the error channel: a Status with its exit code (v4 and v5)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from ...control.logs import ContainerLogs, LogCursor
from ...control.podstreams import ExecSession, PodStreams
from ...model.kubeerrors import KubeError, bad_request, method_not_allowed
from ..logs import LOGS, parse_line
from . import streaming
from .streaming import ChannelProtocol

if TYPE_CHECKING:  # resources.py names these handlers in its table
    from .resources import Scope

POD_STREAMS = web.AppKey("pod_streams", PodStreams)
OPEN = web.AppKey("open_streams", set[web.WebSocketResponse])  # closed when the server stops

CHUNK = 32 << 10  # bytes per message: client-go reads messages into 32 KiB buffers
QUIET = 0.2  # seconds the output is drained for after the process ended without its EOF
MAX_MESSAGE = 1 << 20  # a client's message: client-go's are at most 32 KiB and a byte


def install(app: web.Application, streams: PodStreams) -> None:
    app[POD_STREAMS] = streams
    app[OPEN] = set()
    app.on_shutdown.append(_close_open)


async def _close_open(app: web.Application) -> None:
    """A stopping server ends its sessions (their processes go with them) rather than wait
    on them: aiohttp would give each a minute."""
    sockets: set[web.WebSocketResponse] = app[OPEN]
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"fargo is stopping")
                           for ws in list(sockets)), return_exceptions=True)


@contextlib.asynccontextmanager
async def opened(request: web.Request, ws: web.WebSocketResponse) -> AsyncIterator[None]:
    """The upgrade, and the session counted as open until it ends."""
    await ws.prepare(request)
    request.app[OPEN].add(ws)
    try:
        yield
    except ConnectionResetError:
        pass  # the client went away mid-stream: there is nobody to answer
    finally:
        request.app[OPEN].discard(ws)


# ---- the request, before the upgrade

_TRUE, _FALSE = {"true", "1", "t", "True", "TRUE"}, {"false", "0", "f", "False", "FALSE", ""}


def _flag(request: web.Request, key: str) -> bool:
    raw = request.query.get(key)
    if raw is None or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise bad_request(f"{key} must be true or false: {raw[:40]!r}")


def check_params(request: web.Request, known: Iterable[str]) -> None:
    """Parameters fargo does not read are refused by name, never ignored."""
    unknown = sorted(set(request.query) - set(known))
    if unknown:
        raise bad_request(f"unknown parameter(s) for {request.path.rsplit('/', 1)[-1]}: "
                          + ", ".join(u[:60] for u in unknown[:5]))


def upgrade(request: web.Request, served: Callable[[list[str]], str | None],
            names: Iterable[str], required: bool = False) -> tuple[web.WebSocketResponse,
                                                                   str | None]:
    """The WebSocket this request upgrades to and its subprotocol (served picks it from the
    offered ones; required: none is no answer); a Status error when it is no WebSocket
    upgrade fargo can take."""
    upgrade_to = request.headers.get("Upgrade", "").strip().lower()
    if upgrade_to.startswith("spdy/"):
        raise bad_request(f"fargo streams {request.path.rsplit('/', 1)[-1]} over WebSocket "
                          f"({', '.join(names)}), not over a SPDY/3.1 upgrade")
    if upgrade_to != "websocket":
        raise bad_request("Upgrade request required")
    if request.method != "GET":
        raise bad_request("a WebSocket upgrade is a GET")
    asked = streaming.offered(request.headers.get("Sec-WebSocket-Protocol"))
    chosen = served(asked)
    if chosen is None and (asked or required):
        raise bad_request(f"requested protocol(s) are not supported: [{' '.join(asked)}]; "
                          f"supports [{' '.join(names)}]")
    ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), autoping=True,
                               max_msg_size=MAX_MESSAGE, compress=False)
    if not ws.can_prepare(request).ok:
        raise bad_request("not a valid WebSocket handshake (Sec-WebSocket-Key, "
                          "Sec-WebSocket-Version 13)")
    return ws, chosen


def _channel_protocol(asked: list[str]) -> str | None:
    proto = streaming.choose(asked)
    return proto.name if proto is not None and asked else None


def _chosen(name: str | None) -> ChannelProtocol:
    return streaming.CHANNEL_PROTOCOLS[name or "channel.k8s.io"]


@dataclass(frozen=True)
class _Options:
    container: str | None
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _options(request: web.Request, exec_: bool) -> _Options:
    keys = ["container", "stdin", "stdout", "stderr", "tty"] + (["command"] if exec_ else [])
    check_params(request, keys)
    command = request.query.getall("command", []) if exec_ else []
    if exec_ and not command:
        raise bad_request("you must specify at least 1 command")
    opts = _Options(request.query.get("container") or None, list(command),
                    *(_flag(request, k) for k in ("stdin", "stdout", "stderr", "tty")))
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return opts


# ---- descriptors, without blocking the loop

def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _readable(fd: int, until: asyncio.Future[None] | None,
                    timeout: float | None) -> bool:
    """Wait for fd to be readable; False when `until` completed first or timeout passed."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    try:
        waiting: set[asyncio.Future[None]] = {ready} | ({until} if until else set())
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return ready.done()
    finally:
        loop.remove_reader(fd)
        ready.cancel()


async def _write_all(fd: int, data: bytes) -> bool:
    """False when the reader has gone (EPIPE): the rest is dropped, as a pipe drops it."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        except OSError as err:
            if err.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                return False
            raise
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_writer(fd, _wake, ready)
        try:
            await ready
        finally:
            loop.remove_writer(fd)
    return True


class _Exec:
    """One upgraded exec: the client's messages into the process, its output out, its end
    on the error channel, then a normal close (client-go's streams end on that close)."""

    def __init__(self, ws: web.WebSocketResponse, proto: ChannelProtocol,
                 session: ExecSession, opts: _Options):
        self.ws, self.proto, self.session, self.opts = ws, proto, session, opts
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.resizes = streaming.ResizeReader()
        self.stdin_open = session.stdin is not None

    async def send(self, channel: int, data: bytes) -> None:
        message = streaming.encode(self.proto, channel, data)
        if isinstance(message, str):
            await self.ws.send_str(message)
        else:
            await self.ws.send_bytes(message)

    async def copy_out(self, fd: int | None, channel: int, wanted: bool) -> None:
        while fd is not None:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                ended = self.ended.done()
                if not await _readable(fd, None if ended else self.ended,
                                       QUIET if ended else None) and ended:
                    return  # ended, and nothing more came: a child of it may hold the pipe
                continue
            except OSError as err:
                if err.errno == errno.EIO:  # a terminal whose other side has closed
                    return
                raise
            if not data:
                return
            if wanted:
                await self.send(channel, data)

    async def copy_in(self) -> None:
        """Until the client closes (or breaks the protocol)."""
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                break
            try:
                frame = streaming.decode(self.proto, msg.data)
                if frame is None:
                    continue
                if frame.closed:
                    if frame.channel == streaming.STDIN and self.stdin_open:
                        self.stdin_open = False
                        self.session.close_stdin()
                elif frame.channel == streaming.STDIN:
                    if self.stdin_open and self.opts.stdin and self.session.stdin is not None:
                        if not await _write_all(self.session.stdin, frame.data):
                            self.stdin_open = False
                elif frame.channel == streaming.RESIZE:
                    for width, height in self.resizes.feed(frame.data):
                        self.session.resize(width, height)
                # Other channels are the server's to write: what comes on them is dropped,
                # as the apiserver drops it.
            except streaming.FrameError as err:
                await self.ws.close(code=WSCloseCode.PROTOCOL_ERROR,
                                    message=str(err)[:100].encode())
                break

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.session.ended, _wake, self.ended)
        inbound: asyncio.Future[Any] = asyncio.create_task(self.copy_in())
        outputs: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(
            self.copy_out(self.session.stdout, streaming.STDOUT,
                          self.opts.stdout or self.opts.tty),
            self.copy_out(self.session.stderr, streaming.STDERR, self.opts.stderr)))
        try:
            await asyncio.wait({inbound, outputs}, return_when=asyncio.FIRST_COMPLETED)
            if outputs.done() and not inbound.done():  # all read: the process's end is next
                ended: asyncio.Future[Any] = self.ended
                await asyncio.wait({inbound, ended}, return_when=asyncio.FIRST_COMPLETED)
            if inbound.done() or not self.ended.done():
                # The client went first (or broke the protocol): the process goes too.
                await asyncio.to_thread(self.session.kill)
                return
            failed = outputs.exception()
            if failed is not None and not isinstance(failed, ConnectionResetError):
                raise failed
            code = self.session.code()
            message = streaming.exit_message(self.proto, code if code is not None else 255,
                                             self.opts.command)
            with contextlib.suppress(ConnectionResetError):  # it left meanwhile
                if message:
                    await self.send(streaming.ERROR, message)
                await self.ws.close()
        finally:
            loop.remove_reader(self.session.ended)
            for task in (inbound, outputs):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(inbound, outputs)


async def pod_exec(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise method_not_allowed(request.method)
    opts = _options(request, exec_=True)
    streams = request.app[POD_STREAMS]
    tid, container = streams.container(s.cluster, s.ns, name, opts.container)
    ws, chosen = upgrade(request, _channel_protocol, streaming.CHANNEL_PROTOCOLS)
    # With a terminal, the process's stderr is the terminal: it reaches the client on stdout,
    # as the kubelet sends it.
    session = await asyncio.to_thread(streams.exec, tid, container, opts.command,
                                      tty=opts.tty, stdin=opts.stdin)
    try:
        async with opened(request, ws):
            await _Exec(ws, _chosen(chosen), session, opts).run()
    finally:
        await asyncio.to_thread(session.close)
    return ws


# ---- attach: the container's own output from now on (pods cannot ask for stdin or a tty)

async def pod_attach(request: web.Request, s: Scope, name: str) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise method_not_allowed(request.method)
    opts = _options(request, exec_=False)
    streams = request.app[POD_STREAMS]
    tid, container = streams.container(s.cluster, s.ns, name, opts.container, "attach to")
    if opts.stdin or opts.tty:
        raise bad_request(f"container {container} of pod {name} was not started with "
                          f"{'stdin' if opts.stdin else 'a tty'}: fargo runs no pod with "
                          "stdin or tty, so attach gives its output only")
    ws, chosen = upgrade(request, _channel_protocol, streaming.CHANNEL_PROTOCOLS)
    proto = _chosen(chosen)
    logs = request.app[LOGS]
    cursor = logs.cursor(tid, container)
    while True:  # from the log's end as it is now: attach shows what comes next
        await asyncio.to_thread(cursor.lines)
        if not cursor.more:
            break
    async with opened(request, ws):
        await _attach(ws, proto, opts, streams, tid, container, logs, cursor)
    return ws


async def _attach(ws: web.WebSocketResponse, proto: ChannelProtocol, opts: _Options,
                  streams: PodStreams, tid: str, container: str, logs: ContainerLogs,
                  cursor: LogCursor) -> None:
    inbound = asyncio.create_task(_drain(ws))

    def gone() -> bool:
        return inbound.done() or streams.ended(tid, container)

    async def out(line: str) -> None:
        parsed = parse_line(line)
        if parsed is None:
            return
        _ts, stream, msg, partial = parsed
        channel, wanted = ((streaming.STDERR, opts.stderr) if stream == "stderr"
                           else (streaming.STDOUT, opts.stdout))
        if wanted:
            data = streaming.encode(proto, channel, (msg + ("" if partial else "\n")).encode())
            await (ws.send_str(data) if isinstance(data, str) else ws.send_bytes(data))

    try:
        async for line in logs.follow(cursor, follow=True, gone=gone):
            await out(line)
        if not inbound.done():  # the container ended: what it wrote last, then the close
            for line in await asyncio.to_thread(cursor.rest):
                await out(line)
            await ws.close()
    finally:
        inbound.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inbound


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and drop) what the client sends until it closes: nothing is forwarded."""
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            break


__all__ = ["POD_STREAMS", "KubeError", "install", "opened", "pod_attach", "pod_exec"]
