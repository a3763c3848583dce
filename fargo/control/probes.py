"""Pods' liveness, readiness and startup probes, as kubelet runs them: one loop for the host
follows the engine's running containers (Containers.watch, as control/tasks/health.py does),
finds each pod container's probes in its pod, runs each when due (exec inside the container
through Runtime.exec_check; httpGet and tcpSocket to the pod's address from a socket inside
its own netns, Network.probe_socket, so no security group stands between kubelet and its
pod, as on Fargate), and keeps what they said of each container run: started, ready.

The pods' loop (control/pods.py) asks `view` when it writes a pod's status, and is woken when
a view changes. A failed liveness or startup probe stops the container (its stop signal, then
SIGKILL after the probe's or the pod's grace); the engine's restartPolicy brings it back.

What the probes said survives a server restart in the pods' status: a run the stored status
describes (same start, same restart count) starts from its started and ready; streaks of
results start again from none, as health checks' do."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from ..model import probes as rules
from ..model.podtask import rfc3339
from ..model.probes import Exec, HttpGet, Probe, ProbeView, Streak, TcpSocket
from ..model.taskrecord import Task
from ..port.errors import AgentError, ContainerGone
from ..port.protocols import Network, Runtime
from .kubestate import KubeState
from .tasks.book import TaskBook
from .tasks.health import _in_thread
from .tasks.running import Running

log = logging.getLogger("fargo.probes")
TICK = 0.1  # seconds between looks for due probes (periods are whole seconds)
CONCURRENCY = 32  # probes running at once on the host
HEAD_MAX = 64 * 1024  # bytes of a response's status line and headers read at most


@dataclass
class _Worker:
    """One probe of one container run (in memory only)."""

    probe: Probe
    due: float  # monotonic
    streak: Streak = field(default_factory=Streak)
    busy: bool = False


@dataclass
class _Run:
    """A run of a pod container that has probes, as the prober follows it."""

    tid: str
    name: str
    run: float  # its start (wall clock): the view is of this run only
    cluster: str
    pod: dict[str, Any]  # as found: events name it
    container: dict[str, Any]  # its spec
    ip: str
    workers: dict[str, _Worker]
    started: bool
    ready: bool
    stopping: bool = False
    held: bool = False  # a liveness or startup probe failed: nothing more is probed
    kill_at: float | None = None  # monotonic: SIGKILL then, if this run still lives


@dataclass(frozen=True)
class _Result:
    passed: bool | None  # None: nothing was there to probe (the container went)
    message: str = ""
    errored: bool = False  # the probe could not be made (kubelet's "errored" event)


class Prober:
    def __init__(self, book: TaskBook, runtime: Runtime, network: Network, state: KubeState,
                 watch: Running, concurrency: int = CONCURRENCY):
        self.book = book
        self.runtime = runtime
        self.network = network
        self.state = state
        self.watch = watch  # task id -> names of its running containers (Containers')
        self.concurrency = concurrency
        self._runs: dict[str, dict[str, _Run]] = {}  # task id -> container -> its run
        self._plain: set[tuple[str, str]] = set()  # running, but no probes (or no pod)
        self._dirty: set[str] = set()  # pod tasks written since the last look
        self._running: set[asyncio.Task[None]] = set()
        self._followed = -1  # the watch's version _follow last saw
        self._loop: asyncio.Task[None] | None = None

    # ---- what the pods' loop reads
    def view(self, tid: str) -> dict[str, ProbeView]:
        return {name: ProbeView(r.run, r.started, r.ready)
                for name, r in (self._runs.get(tid) or {}).items()}

    def task_changed(self, task: Task) -> None:
        """The task book's listener: a pod's task changed (a container began or ended, the
        task is stopping): its runs are looked at again."""
        if task.pod is not None:
            self._dirty.add(task.id)

    # ---- the loop
    def start(self) -> None:
        self._loop = asyncio.create_task(self.loop())

    async def close(self) -> None:
        for t in [*self._running, *([self._loop] if self._loop else [])]:
            t.cancel()
        await asyncio.gather(*self._running, *([self._loop] if self._loop else []),
                             return_exceptions=True)

    async def loop(self) -> None:
        while True:
            try:
                self._follow()
                self._kill_late()
                self._launch_due()
            except Exception:  # noqa: BLE001 - this loop must outlive any one bad reading
                log.exception("running pods' probes")
            await asyncio.sleep(TICK)

    def _changed(self) -> None:
        self.state.changed.set()  # the pods' loop writes the status anew

    def _follow(self) -> None:
        """Runs for pod containers that began running; none for those that ended."""
        if self.watch.version == self._followed and not self._dirty:
            return
        self._followed = self.watch.version
        running = self.watch.pairs()
        for tid in list(self._runs):
            runs = self._runs[tid]
            for name in [n for n in runs if (tid, n) not in running]:
                del runs[name]
            if not runs:
                del self._runs[tid]
        self._plain &= running
        known = {(tid, n) for tid, runs in self._runs.items() for n in runs}
        look = {tid for tid, _ in running - known - self._plain}
        look |= self._dirty & {tid for tid, _ in running}
        self._dirty.clear()
        for tid in look:
            self._look(tid, {n for t, n in running if t == tid})

    def _look(self, tid: str, names: set[str]) -> None:
        task = self.book.store.get_task(tid)
        pod = None
        if task is not None and task.pod is not None:
            ref = task.pod
            pod = self.state.find(ref.cluster, "pods", ref.namespace, ref.name)
            if pod is not None and pod["metadata"].get("uid") != ref.uid:
                pod = None  # a new pod of the same name: not this task's
        if task is None or task.pod is None or pod is None:
            self._plain |= {(tid, n) for n in names}
            return
        specs = {c["name"]: c for c in pod["spec"].get("containers") or []}
        runs = self._runs.setdefault(tid, {})
        for c in task.containers:
            if c.name not in names or (tid, c.name) in self._plain:
                continue
            spec = specs.get(c.name)
            found = rules.probes_of(spec) if spec else {}
            if not found or c.last_status != "RUNNING" or c.started_at is None:
                self._plain.add((tid, c.name))
                continue
            run = runs.get(c.name)
            if run is None or run.run != c.started_at:
                run = runs[c.name] = self._new_run(task, pod, spec or {}, c.started_at, found)
            run.stopping = task.stopping or bool(pod["metadata"].get("deletionTimestamp"))
        if not runs:
            self._runs.pop(tid, None)

    def _new_run(self, task: Task, pod: dict[str, Any], spec: dict[str, Any], started_at: float,
                 found: dict[str, Probe]) -> _Run:
        name = spec["name"]
        now, mono = time.time(), time.monotonic()
        workers = {kind: _Worker(p, mono + rules.first_due(started_at, p, now) - now)
                   for kind, p in found.items()}
        started, ready = rules.container_state(spec, True, started_at, None)
        entry = self._stored(task, pod, name, started_at)
        if entry is not None:  # the stored status is of this very run: carry on from it
            started, ready = bool(entry.get("started")), bool(entry.get("ready"))
            for kind, w in workers.items():
                said = started if kind == "startupProbe" else ready
                if kind != "livenessProbe":
                    w.streak = Streak(said, 1)
        self._changed()
        assert task.pod is not None
        return _Run(tid=task.id, name=name, run=started_at, cluster=task.pod.cluster, pod=pod,
                    container=spec, ip=task.ip, workers=workers, started=started, ready=ready)

    @staticmethod
    def _stored(task: Task, pod: dict[str, Any], name: str,
                started_at: float) -> dict[str, Any] | None:
        c = task.container(name)
        restarts = c.run.restart_count if c.run else 0
        for entry in (pod.get("status") or {}).get("containerStatuses") or []:
            running = (entry.get("state") or {}).get("running") or {}
            if entry.get("name") == name and entry.get("restartCount") == restarts and \
                    running.get("startedAt") == rfc3339(started_at):
                return dict(entry)
        return None

    def _launch_due(self) -> None:
        now = time.monotonic()
        for runs in list(self._runs.values()):
            for run in list(runs.values()):
                if run.held:
                    continue
                for kind, w in run.workers.items():
                    if w.busy or w.due > now:
                        continue
                    # A startup probe holds the others back, and stops once it has passed;
                    # a pod being deleted is probed for readiness only (kubelet's rule).
                    if (kind == "startupProbe") == run.started or (
                            run.stopping and kind != "readinessProbe"):
                        continue
                    if len(self._running) >= self.concurrency:
                        return  # the rest wait for the next tick
                    w.busy = True
                    t = asyncio.create_task(self._probe(run, kind, w))
                    self._running.add(t)
                    t.add_done_callback(self._running.discard)

    async def _probe(self, run: _Run, kind: str, w: _Worker) -> None:
        try:
            result = await self._attempt(run, w.probe)
        finally:
            w.busy = False
            w.due = time.monotonic() + w.probe.period
        if result.passed is None or self._runs.get(run.tid, {}).get(run.name) is not run \
                or run.held:
            return  # the container went, or ended and began again meanwhile
        if not result.passed:
            message = (rules.errored_event if result.errored else rules.failed_event)(
                kind, result.message)
            self.state.record_event(run.cluster, run.pod, "Warning", "Unhealthy", message,
                                    "kubelet")
        w.streak, said = rules.step(w.streak, result.passed, w.probe)
        if said is None:
            return
        if kind == "readinessProbe":
            if run.ready != said:
                run.ready = said
                self._changed()
        elif said and kind == "startupProbe":
            run.started = True
            self._changed()
        elif not said:
            await self._kill(run, kind, w.probe)

    async def _kill(self, run: _Run, kind: str, probe: Probe) -> None:
        """Stop the run with its stop signal; SIGKILL follows after the grace."""
        run.held = True
        restarts = run.pod["spec"].get("restartPolicy", "Always") != "Never"
        self.state.record_event(run.cluster, run.pod, "Normal", "Killing",
                                rules.killing_event(run.name, kind, restarts), "kubelet")
        grace = rules.kill_grace(probe, run.pod["spec"].get("terminationGracePeriodSeconds"))
        run.kill_at = time.monotonic() + grace
        await self._signal(run, None if grace > 0 else "SIGKILL")

    async def _signal(self, run: _Run, sig: str | None) -> None:
        try:
            await asyncio.to_thread(self.runtime.signal, run.tid, run.name, sig)
        except AgentError as err:  # it ended meanwhile: the engine records the exit
            log.info("task %s: signalling %s after its probe failed: %s", run.tid, run.name,
                     err)

    def _kill_late(self) -> None:
        now = time.monotonic()
        for runs in list(self._runs.values()):
            for run in list(runs.values()):
                if run.kill_at is None or run.kill_at > now:
                    continue
                run.kill_at = None
                task = self.book.store.get_task(run.tid)
                c = next((x for x in task.containers if x.name == run.name), None) if task \
                    else None
                # Only this very run: a container begun again is not killed for its last.
                if c is not None and c.last_status == "RUNNING" and c.started_at == run.run:
                    t = asyncio.create_task(self._signal(run, "SIGKILL"))
                    self._running.add(t)
                    t.add_done_callback(self._running.discard)

    # ---- one probe
    async def _attempt(self, run: _Run, probe: Probe) -> _Result:
        action = probe.action
        if isinstance(action, Exec):
            return await self._exec(run, action, probe.timeout)
        try:
            port = rules.resolve_port(action.port, run.container)
        except ValueError as err:
            return _Result(False, str(err), errored=True)
        if isinstance(action, TcpSocket):
            return await self._tcp(run, port, probe.timeout)
        return await self._http(run, action, port, probe.timeout)

    async def _exec(self, run: _Run, action: Exec, timeout: int) -> _Result:
        try:
            code = await _in_thread(lambda: self.runtime.exec_check(
                run.tid, run.name, list(action.argv), float(timeout)))
        except ContainerGone:
            return _Result(None)
        except AgentError as err:
            return _Result(False, str(err), errored=True)
        if code == 0:
            return _Result(True)
        return _Result(False, rules.exec_failed(action.argv, code))

    async def _connect(self, run: _Run, port: int) -> Any:
        """A socket inside the pod's netns, connected to its address (OSError if refused)."""
        sock = await asyncio.to_thread(self.network.probe_socket, run.tid)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (run.ip, port))
        except BaseException:
            sock.close()
            raise
        return sock

    async def _tcp(self, run: _Run, port: int, timeout: int) -> _Result:
        try:
            async with asyncio.timeout(timeout):
                sock = await self._connect(run, port)
        except TimeoutError:
            return _Result(False, rules.timed_out_tcp(run.ip, port))
        except AgentError as err:
            return _Result(False, str(err), errored=True)
        except OSError as err:
            return _Result(False, _dial_error("", run.ip, port, err))
        sock.close()
        return _Result(True)

    async def _http(self, run: _Run, action: HttpGet, port: int, timeout: int) -> _Result:
        url = rules.http_url(action, run.ip, port)
        path: str | None = action.path
        try:
            async with asyncio.timeout(timeout):
                for _ in range(rules.REDIRECTS + 1):
                    assert path is not None
                    code, location = await self._get(run, action, port, path)
                    path = rules.same_host_redirect(location, action, run.ip, port) \
                        if 300 <= code < 400 and location else None
                    if path is None:
                        passed, message = rules.http_verdict(code, b"")
                        return _Result(passed, message)
                return _Result(True)  # redirects without end: kubelet's warning, a pass
        except TimeoutError:
            return _Result(False, rules.timed_out_http(url))
        except AgentError as err:
            return _Result(False, str(err), errored=True)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) \
                as err:
            if isinstance(err, OSError) and err.errno is not None:
                return _Result(False, _dial_error(f'Get "{url}": ', run.ip, port, err))
            return _Result(False, f'Get "{url}": {_short(err)}')

    async def _get(self, run: _Run, action: HttpGet, port: int, path: str) -> tuple[int, str]:
        """One GET: the response's status code and Location (no body is read)."""
        sock = await self._connect(run, port)
        tls = _insecure_tls() if action.scheme == "HTTPS" else None
        reader, writer = await asyncio.open_connection(sock=sock, ssl=tls, limit=HEAD_MAX,
                                                       server_hostname="" if tls else None)
        try:
            writer.write(rules.http_request(action, run.ip, port, path))
            await writer.drain()
            status = (await reader.readline()).decode("latin-1")
            parts = status.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
                raise ValueError(f"malformed HTTP response {status.strip()[:80]!r}")
            location = ""
            while True:
                line = (await reader.readline()).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                if name.strip().lower() == "location":
                    location = value.strip()
            return int(parts[1]), location
        finally:
            writer.close()


@functools.cache
def _insecure_tls() -> ssl.SSLContext:
    """As kubelet's HTTPS probes: encrypted, the certificate not checked."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return tls


def _dial_error(prefix: str, ip: str, port: int, err: OSError) -> str:
    if err.errno == errno.ECONNREFUSED:
        return rules.refused(prefix, ip, port)
    reason = (err.strerror or str(err)).lower()
    return f"{prefix}dial tcp {rules.host_port(ip, port)}: connect: {reason}"


def _short(err: BaseException) -> str:
    return (str(err) or type(err).__name__)[:200]
