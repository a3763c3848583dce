"""An in-memory data plane: Images, Runtime and Network of fargo/port/protocols.py without
root, runc or netns, so control/ can be unit-tested in milliseconds.

Containers "run" until a test ends them (`plane.runtime.exit(tid, name, code)`) or a signal
does; pulls answer from images added with `plane.images.add(ref, config)`. Every call is
recorded in order across the three parts (`plane.calls`), and any method can be made to fail
(`plane.fail("start_container", SandboxError("boom"), tid=tid)`). Thread-safe: control calls
the data plane from worker threads."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import ipaddress
import os
import signal as signals
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fargo.model.vpc import Subnet
from fargo.port.data import (
    ContainerExit,
    ContainerSpec,
    Image,
    LogChunk,
    NetworkAttachment,
    SandboxSpec,
    TaskStats,
    VolumeFile,
)
from fargo.port.errors import ContainerGone, NetworkError, PullError, SandboxError
from fargo.port.firewall import FirewallSpec, PolicySpec
from fargo.port.services import ServicesSpec


@dataclass(frozen=True)
class Call:
    part: str  # "images", "runtime" or "network"
    method: str
    args: tuple[object, ...]


@dataclass
class _Failure:
    method: str
    error: Exception
    tid: str | None  # None: whatever the call's task
    times: int | None  # None: every call from now on


class _Log:
    """The call record and the injected failures that the three parts share."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.failures: list[_Failure] = []

    def enter(self, part: str, method: str, *args: object) -> None:
        """Record a call, then raise the first failure injected for it, if any."""
        with self.lock:
            self.calls.append(Call(part, method, args))
            tid = args[0] if args and isinstance(args[0], str) else None
            for f in self.failures:
                if f.method == method and f.tid in (None, tid):
                    if f.times is not None:
                        f.times -= 1
                        if f.times <= 0:
                            self.failures.remove(f)
                    raise f.error


class FakeImages:
    def __init__(self, log: _Log):
        self._log = log
        self.known: dict[str, Image] = {}
        self._credentials: dict[str, tuple[str, str]] = {}
        self._held: dict[str, threading.Event] = {}

    def add(self, ref: str, config: dict[str, Any] | None = None, *,
            credentials: tuple[str, str] | None = None) -> Image:
        """Make `ref` pullable; with credentials, only by whoever gives them."""
        digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        image = Image(ref=ref, digest=digest, config=dict(config or {}))
        with self._log.lock:
            self.known[ref] = image
            if credentials:
                self._credentials[ref] = credentials
        return image

    def hold(self, ref: str) -> None:
        """Pulls of ref hang (like a registry that never answers) until release(ref)."""
        with self._log.lock:
            self._held.setdefault(ref, threading.Event())

    def release(self, ref: str) -> None:
        with self._log.lock:
            gate = self._held.pop(ref, None)
        if gate:
            gate.set()

    def release_all(self) -> None:
        with self._log.lock:
            gates, self._held = list(self._held.values()), {}
        for gate in gates:
            gate.set()

    def pull(self, ref: str, credentials: tuple[str, str] | None) -> Image:
        self._log.enter("images", "pull", ref, credentials)
        with self._log.lock:
            gate = self._held.get(ref)
        if gate:
            gate.wait()
        with self._log.lock:
            image = self.known.get(ref)
            wanted = self._credentials.get(ref)
        if image is None:
            raise PullError(f"failed to pull {ref}: not found")
        if wanted is not None and credentials != wanted:
            raise PullError(f"pull access denied for {ref}: unauthorized")
        return image


@dataclass
class FakeContainer:
    spec: ContainerSpec
    image: Image
    state: str = "created"  # created -> running -> exited
    exit: ContainerExit | None = None
    signals: list[str] = field(default_factory=list)  # as received, resolved
    ignored: set[str] = field(default_factory=set)  # signals it shrugs off (never SIGKILL)
    delay: float | None = None  # its own signal delay (None: the runtime's)


@dataclass
class FakeSandbox:
    spec: SandboxSpec
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    rootfs: set[str] = field(default_factory=set)  # names with a prepared rootfs
    stats: TaskStats = field(default_factory=TaskStats)
    # The files volumes' content, as last written (Runtime.write_volume).
    volumes: dict[str, list[VolumeFile]] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)  # scratch volumes' bytes, as set


class FakeExecSession:
    """port.protocols.ExecSession over pipes (a socket pair for a terminal), with a thread as
    its process: it copies its input to its output, ^D or EOF ends it."""

    def __init__(self, *, tty: bool, stdin: bool, code: int):
        self.sizes: list[tuple[int, int]] = []  # resizes, as given
        self._code: int | None = None
        self._final = code
        self.stdin: int | None
        self.stdout: int | None
        self.stderr: int | None = None
        self._sock: socket.socket | None
        self._err: int | None = None
        end_r, self._end_w = os.pipe()
        self.ended = end_r
        if tty:
            ours, theirs = socket.socketpair()
            self._sock = ours
            self.stdin = self.stdout = ours.fileno()
            self._in: Any = theirs
            self._out: Any = theirs
        else:
            self._sock = None
            in_r, in_w = os.pipe() if stdin else (None, None)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.stdin, self.stdout, self.stderr = in_w, out_r, err_r
            self._in, self._out, self._err = in_r, out_w, err_w
        for fd in (self.stdin, self.stdout, self.stderr):
            if fd is not None:
                os.set_blocking(fd, False)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> bytes:
        if self._in is None:
            return b""
        if isinstance(self._in, socket.socket):
            return self._in.recv(4096)
        return os.read(self._in, 4096)

    def _run(self) -> None:
        try:
            while True:
                data = self._read()
                if not data or data == b"\x04":
                    break
                if isinstance(self._out, socket.socket):
                    self._out.sendall(data)
                else:
                    os.write(self._out, data)
        except OSError:
            pass
        self._finish(self._final)

    def _finish(self, code: int) -> None:
        if self._code is not None:
            return
        self._code = code
        if isinstance(self._out, socket.socket):
            self._out.close()
        else:
            for fd in (self._in, self._out, self._err):
                if fd is not None:
                    os.close(fd)
        os.close(self._end_w)

    def code(self) -> int | None:
        return self._code

    def resize(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    def close_stdin(self) -> None:
        if self._sock is not None:
            self._sock.send(b"\x04")
        elif self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None

    def kill(self) -> None:
        if self._code is None:
            self._final = 137  # SIGKILL's
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_WR)  # its thread sees EOF and ends
            elif self.stdin is not None:
                os.close(self.stdin)
                self.stdin = None
        self._thread.join(5)

    def close(self) -> None:
        self.kill()
        if self._sock is not None:
            self._sock.close()
        else:
            for fd in (self.stdin, self.stdout, self.stderr):
                if fd is not None:
                    os.close(fd)
        self.stdin = self.stdout = self.stderr = None
        os.close(self.ended)


def _signal_name(sig: str) -> str:
    sig = sig.upper()
    return sig if sig.startswith("SIG") else "SIG" + sig


class FakeRuntime:
    def __init__(self, log: _Log):
        self._log = log
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.logs: dict[tuple[str, str], bytearray] = {}  # outlive destroy, as on a host
        self.signal_delay = 0.0  # seconds from a catchable signal to the exit it causes
        self.prepared = False  # prepare() was called
        self.warmed: int | None = None  # the count warm() was given
        self.closed = False
        self._timers: list[threading.Timer] = []
        # exec_check's outcomes: per container, the codes its next checks end with in turn
        # (None: timed out); the last one holds. A container with none set passes.
        self.checks: dict[tuple[str, str], list[int | None]] = {}
        self.exec_codes: dict[tuple[str, str], int] = {}  # what exec sessions end with
        self.sessions: list[FakeExecSession] = []  # every exec session, in order

    # what tests drive
    def set_check(self, tid: str, name: str, *codes: int | None) -> None:
        """The container's next health checks end with these exit codes in turn (None: it
        timed out); the last one holds from then on."""
        with self._log.lock:
            self.checks[(tid, name)] = list(codes)

    def container(self, tid: str, name: str) -> FakeContainer:
        with self._log.lock:
            box = self.sandboxes.get(tid)
            if box is None or name not in box.containers:
                raise ContainerGone(f"no container {name} in task {tid}")
            return box.containers[name]

    def running(self, tid: str) -> list[str]:
        with self._log.lock:
            box = self.sandboxes.get(tid)
            return [n for n, c in box.containers.items() if c.state == "running"] if box else []

    def exit(self, tid: str, name: str, code: int | None, oom: bool = False) -> None:
        """The container's process ends now with `code` (None: no code was recorded)."""
        with self._log.lock:
            c = self.container(tid, name)
            if c.state != "exited":
                c.state = "exited"
                c.exit = ContainerExit(code, oom)

    def write_log(self, tid: str, name: str, data: bytes) -> None:
        with self._log.lock:
            self.logs.setdefault((tid, name), bytearray()).extend(data)

    def set_stats(self, tid: str, stats: TaskStats) -> None:
        with self._log.lock:
            self._sandbox(tid).stats = stats

    # Runtime
    def prepare(self) -> list[Path]:
        self._log.enter("runtime", "prepare")
        self.prepared = True
        return []

    def warm(self, count: int) -> None:
        self._log.enter("runtime", "warm", count)
        self.warmed = count

    def close(self) -> None:
        self._log.enter("runtime", "close")
        self.closed = True
        with self._log.lock:
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()

    def create_sandbox(self, tid: str, spec: SandboxSpec) -> None:
        self._log.enter("runtime", "create_sandbox", tid, spec)
        with self._log.lock:
            if tid in self.sandboxes:
                raise SandboxError(f"task {tid} already has a sandbox")
            self.sandboxes[tid] = FakeSandbox(spec)

    def prepare_rootfs(self, tid: str, name: str, image: Image) -> None:
        self._log.enter("runtime", "prepare_rootfs", tid, name, image)
        with self._log.lock:
            self._sandbox(tid).rootfs.add(name)

    def create_container(self, tid: str, spec: ContainerSpec, image: Image,
                         spawned: Callable[[], None] | None = None) -> None:
        self._log.enter("runtime", "create_container", tid, spec, image)
        with self._log.lock:
            box = self._sandbox(tid)
            if spec.name in box.containers:
                raise SandboxError(f"container {spec.name} of task {tid} already exists")
            box.rootfs.add(spec.name)
            box.containers[spec.name] = FakeContainer(spec, image)
        if spawned is not None:
            spawned()

    def write_volume(self, tid: str, name: str, files: list[VolumeFile]) -> bool:
        self._log.enter("runtime", "write_volume", tid, name)
        with self._log.lock:
            box = self._sandbox(tid)
            if not any(v.name == name and v.kind == "files" for v in box.spec.volumes):
                raise SandboxError(f"volume {name} of task {tid} does not exist")
            if box.volumes.get(name) == files:
                return False
            box.volumes[name] = list(files)
            return True

    def volume_usage(self, tid: str, name: str) -> int:
        with self._log.lock:
            return self._sandbox(tid).usage.get(name, 0)

    def start_container(self, tid: str, name: str) -> None:
        self._log.enter("runtime", "start_container", tid, name)
        with self._log.lock:
            c = self.container(tid, name)
            if c.state != "created":
                raise SandboxError(f"container {name} of task {tid} is {c.state}")
            c.state = "running"

    def remove_container(self, tid: str, name: str) -> None:
        self._log.enter("runtime", "remove_container", tid, name)
        with self._log.lock:
            box = self.sandboxes.get(tid)
            c = box.containers.get(name) if box else None
            if c is None or box is None:
                return
            if c.state == "running":
                raise SandboxError(f"container {name} of task {tid} is still running")
            del box.containers[name]
            box.rootfs.discard(name)

    def exit_fd(self, tid: str, name: str) -> int | None:
        return None  # no process to wait on: control polls exited()

    def exited(self, tid: str, name: str) -> bool:
        # Not recorded: control asks this every few tens of milliseconds.
        with self._log.lock:
            box = self.sandboxes.get(tid)
            c = box.containers.get(name) if box else None
            return c is None or c.state == "exited"  # unknown to the runtime: gone

    def result(self, tid: str, name: str) -> ContainerExit:
        self._log.enter("runtime", "result", tid, name)
        with self._log.lock:
            return self.container(tid, name).exit or ContainerExit(None)

    def started(self, tid: str, name: str) -> bool:
        self._log.enter("runtime", "started", tid, name)
        with self._log.lock:
            box = self.sandboxes.get(tid)
            c = box.containers.get(name) if box else None
            return c is not None and c.state != "created"

    def signal(self, tid: str, name: str, sig: str | None) -> None:
        self._log.enter("runtime", "signal", tid, name, sig)
        with self._log.lock:
            c = self.container(tid, name)
            resolved = _signal_name(sig or c.spec.stop_signal)
            c.signals.append(resolved)
            if c.state != "running" or resolved in c.ignored - {"SIGKILL"}:
                return
            code = 128 + signals.Signals[resolved].value
            delay = 0.0 if resolved == "SIGKILL" else (
                self.signal_delay if c.delay is None else c.delay)
            if delay <= 0:
                self.exit(tid, name, code)
                return
            timer = threading.Timer(delay, self._exit_if_same, (tid, name, c, code))
            timer.daemon = True
            self._timers.append(timer)
        timer.start()

    def _exit_if_same(self, tid: str, name: str, c: FakeContainer, code: int) -> None:
        with self._log.lock:
            box = self.sandboxes.get(tid)
            if box and box.containers.get(name) is c:  # not removed and made anew meanwhile
                self.exit(tid, name, code)

    def exec_check(self, tid: str, name: str, argv: list[str], timeout: float) -> int | None:
        self._log.enter("runtime", "exec_check", tid, name, list(argv), timeout)
        with self._log.lock:
            if self.container(tid, name).state != "running":
                raise ContainerGone(f"container {name} of task {tid} is not running")
            codes = self.checks.get((tid, name))
            if not codes:
                return 0
            return codes.pop(0) if len(codes) > 1 else codes[0]

    def set_exec(self, tid: str, name: str, code: int) -> None:
        """Exec sessions in the container end with this code (0 unless set)."""
        with self._log.lock:
            self.exec_codes[(tid, name)] = code

    def exec_session(self, tid: str, name: str, argv: list[str], *, tty: bool,
                     stdin: bool) -> FakeExecSession:
        """A `cat`: what the session is given on stdin comes back on stdout (with a tty, on
        the terminal's one descriptor), then it ends with set_exec's code; without stdin it
        ends at once."""
        self._log.enter("runtime", "exec_session", tid, name, list(argv), tty, stdin)
        with self._log.lock:
            if self.container(tid, name).state != "running":
                raise ContainerGone(f"container {name} of task {tid} is not running")
            code = self.exec_codes.get((tid, name), 0)
        session = FakeExecSession(tty=tty, stdin=stdin, code=code)
        with self._log.lock:
            self.sessions.append(session)
        return session

    def stats(self, tid: str) -> TaskStats:
        self._log.enter("runtime", "stats", tid)
        with self._log.lock:
            return self._sandbox(tid).stats

    def read_log(self, tid: str, name: str, offset: int, limit: int) -> LogChunk:
        self._log.enter("runtime", "read_log", tid, name, offset, limit)
        with self._log.lock:
            data = self.logs.get((tid, name))
            if data is None:
                return LogChunk(b"", offset, exists=False)
            chunk = bytes(data[offset:offset + limit])
            return LogChunk(chunk, offset + len(chunk), exists=True)

    def destroy(self, tid: str) -> None:
        self._log.enter("runtime", "destroy", tid)
        with self._log.lock:
            self.sandboxes.pop(tid, None)

    def forget(self, tid: str) -> None:
        self._log.enter("runtime", "forget", tid)
        with self._log.lock:
            for key in [k for k in self.logs if k[0] == tid]:
                del self.logs[key]

    def _sandbox(self, tid: str) -> FakeSandbox:
        box = self.sandboxes.get(tid)
        if box is None:
            raise ContainerGone(f"task {tid} has no sandbox")
        return box


@dataclass
class FakeAttachment:
    subnet: Subnet
    ip: str
    made: NetworkAttachment


class FakeNetwork:
    def __init__(self, log: _Log):
        self._log = log
        self.started = False
        self.bridges: dict[str, Subnet] = {}
        self.attached: dict[str, FakeAttachment] = {}
        self.firewall: FirewallSpec | None = None  # the last spec applied
        self.policies: PolicySpec | None = None  # the last NetworkPolicy spec applied
        self.services: ServicesSpec | None = None  # the last ClusterIP spec applied
        self.groups: dict[str, set[str]] = {}  # task id -> the groups it has joined
        self._listeners: list[socket.socket] = []

    def start(self) -> None:
        self._log.enter("network", "start")
        self.started = True

    def ensure_bridge(self, subnet: Subnet) -> None:
        self._log.enter("network", "ensure_bridge", subnet)
        with self._log.lock:
            self.bridges[subnet.id] = subnet

    def remove_bridge(self, subnet_id: str) -> None:
        self._log.enter("network", "remove_bridge", subnet_id)
        with self._log.lock:
            self.bridges.pop(subnet_id, None)

    def pin(self, tid: str) -> None:
        self._log.enter("network", "pin", tid)

    def attach(self, tid: str, subnet: Subnet, ip: str, endpoint: str = "") -> NetworkAttachment:
        self._log.enter("network", "attach", tid, subnet, ip)
        net = ipaddress.ip_network(subnet.cidr)
        if ipaddress.ip_address(ip) not in net:
            raise NetworkError(f"{ip} is not in subnet {subnet.cidr}")
        octets = ipaddress.ip_address(ip).packed
        made = NetworkAttachment(mac="02:42:" + ":".join(f"{b:02x}" for b in octets),
                                 gateway=subnet.gateway, prefixlen=net.prefixlen)
        with self._log.lock:
            self.bridges[subnet.id] = subnet  # the attach converges the bridge, as the host's
            self.attached[tid] = FakeAttachment(subnet, ip, made)  # a second attach replaces
        return made

    def detach(self, tid: str) -> None:
        self._log.enter("network", "detach", tid)
        with self._log.lock:
            self.attached.pop(tid, None)

    def forget_flows(self, ip: str) -> None:
        self._log.enter("network", "forget_flows", ip)

    def metadata_listener(self, tid: str) -> socket.socket:
        """A listening socket on a free loopback port (a host's is 169.254.170.2:80 in the
        task's netns)."""
        self._log.enter("network", "metadata_listener", tid)
        return self._listener(tid)

    def _listener(self, tid: str) -> socket.socket:
        with self._log.lock:
            if tid not in self.attached:
                raise NetworkError(f"task {tid} has no network namespace")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        with self._log.lock:
            self._listeners.append(sock)
        return sock

    def api_listener(self, tid: str, address: str) -> socket.socket:
        """Like metadata_listener's (a host's is address:80 in the task's netns)."""
        self._log.enter("network", "api_listener", tid, address)
        return self._listener(tid)

    def probe_socket(self, tid: str) -> socket.socket:
        """A plain non-blocking TCP socket of this host (a host's is made in the task's
        netns)."""
        self._log.enter("network", "probe_socket", tid)
        with self._log.lock:
            if tid not in self.attached:
                raise NetworkError(f"task {tid} has no network namespace")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        return sock

    def dns_listeners(self, tid: str, address: str, aliases: Sequence[str] = ()
                      ) -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on one free loopback port (a host's are address:53 in the
        task's netns)."""
        self._log.enter("network", "dns_listeners", tid, address)
        with self._log.lock:
            if tid not in self.attached:
                raise NetworkError(f"task {tid} has no network namespace")
        tcp = self._listener(tid)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", tcp.getsockname()[1]))
        tcp.setblocking(False)
        udp.setblocking(False)
        return udp, tcp

    def apply_firewall(self, spec: FirewallSpec) -> None:
        self._log.enter("network", "apply_firewall", spec)
        with self._log.lock:
            self.firewall = dataclasses.replace(
                spec, members={g: set(ips) for g, ips in spec.members.items()})

    def apply_policies(self, spec: PolicySpec) -> None:
        self._log.enter("network", "apply_policies", spec)
        with self._log.lock:
            self.policies = dataclasses.replace(spec)

    def apply_services(self, spec: ServicesSpec) -> None:
        self._log.enter("network", "apply_services", spec)
        with self._log.lock:
            self.services = copy.deepcopy(spec)

    def join_groups(self, tid: str, ip: str, groups: list[str]) -> None:
        self._log.enter("network", "join_groups", tid, ip, groups)
        with self._log.lock:
            self.groups.setdefault(tid, set()).update(groups)

    def leave_groups(self, tid: str, ip: str, groups: list[str]) -> None:
        self._log.enter("network", "leave_groups", tid, ip, groups)
        with self._log.lock:
            left = self.groups.get(tid, set()) - set(groups)
            if left:
                self.groups[tid] = left
            else:
                self.groups.pop(tid, None)

    def close(self) -> None:
        """Not in the Protocol: closes the listeners the fake handed out."""
        with self._log.lock:
            listeners, self._listeners = self._listeners, []
        for sock in listeners:
            sock.close()


class FakePlane:
    """One host's data plane: `images`, `runtime` and `network`, sharing a call record."""

    def __init__(self) -> None:
        self._log = _Log()
        self.images = FakeImages(self._log)
        self.runtime = FakeRuntime(self._log)
        self.network = FakeNetwork(self._log)

    @property
    def calls(self) -> list[Call]:
        with self._log.lock:
            return list(self._log.calls)

    def methods(self, part: str | None = None) -> list[str]:
        """The methods called so far, in order (of one part, or of all)."""
        return [c.method for c in self.calls if part in (None, c.part)]

    def calls_to(self, method: str) -> list[tuple[object, ...]]:
        return [c.args for c in self.calls if c.method == method]

    def fail(self, method: str, error: Exception, *, tid: str | None = None,
             times: int | None = 1) -> None:
        """The next `times` calls of `method` (for task `tid`, or any; for pull, tid is the
        reference) raise `error` after being recorded; times=None: every call until cleared."""
        with self._log.lock:
            self._log.failures.append(_Failure(method, error, tid, times))

    def clear_failures(self) -> None:
        with self._log.lock:
            self._log.failures.clear()

    def close(self) -> None:
        self.runtime.close()
        self.network.close()
        self.images.release_all()

