"""pods/log: a container's output from its k8s-file log, as kubelet serves it: the current
run (or with `previous`, the one before), `sinceSeconds`/`sinceTime`, `tailLines`,
`limitBytes`, `timestamps`, and `follow` until that run ends. (`-l`, `--all-containers` and
`--prefix` are kubectl's own: it lists the pods and asks for each container.)

A container's runs share one log file (its restarts append to it). The runs are told apart by
time: each line carries its timestamp, and the task record keeps when the previous run began
and when it ended (recorded after its exit, so its last line is before that)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from ...control.kubestate import KubeState
from ...model.kubeerrors import bad_request, invalid
from ...model.taskrecord import Container, Task
from ..logs import LOGS, parse_line

POLL = 0.1  # seconds between looks for more output while following
# A run's first lines may come a moment before its start is recorded; the run before it
# ended at least a back-off earlier (model/restarts.py: 0.5 s at first).
EARLY = 0.25


def _int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 12:
        raise bad_request(f"{key} must be an integer: {raw[:40]!r}")
    return int(raw)


def _bool(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "false")
    if raw.lower() not in ("true", "1", "false", "0", ""):
        raise bad_request(f"{key} must be a boolean: {raw[:40]!r}")
    return raw.lower() in ("true", "1")


def parse_stamp(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Window:
    """The lines of one run: timestamps after `after` and up to `until` (None: open)."""

    after: float | None
    until: float | None
    start: float | None  # the run's recorded start: a follow ends when another begins

    def holds(self, at: float | None) -> bool:
        if at is None:
            return True
        return (self.after is None or at > self.after) and (self.until is None
                                                            or at <= self.until)


def _previous_window(e: Container) -> Window | None:
    """The run before the latest (kubelet's lastState), if the record still knows it."""
    run = e.run
    last = run.last if run else None
    if run is None or last is None or last.finished_at is None:
        return None
    # Before the first restart every earlier line is that run's; later, the run before
    # it ended a back-off before it began.
    after = None if run.restart_count <= 1 or last.started_at is None else \
        last.started_at - EARLY
    return Window(after, last.finished_at, last.started_at)


def _window(e: Container, previous: bool, pod: str, name: str) -> Window:
    if previous:
        found = _previous_window(e)
        if found is None:
            raise bad_request(f'previous terminated container "{name}" in pod "{pod}" not '
                              "found")
        return found
    run = e.run
    if e.last_status == "PENDING" and run is not None and run.restart_count:
        # Waiting to come back: its latest run is the one that just ended (kubelet serves
        # the last terminated container then).
        found = _previous_window(e)
        if found is not None:
            return found
    last = run.last if run else None
    return Window(last.finished_at if last else None, None, e.started_at)


def _waiting(pod: dict[str, Any], name: str) -> str:
    status = pod.get("status") or {}
    for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses")
                                                        or []):
        if s.get("name") == name:
            reason = ((s.get("state") or {}).get("waiting") or {}).get("reason")
            if reason:
                return "image can't be pulled" if reason == "ErrImagePull" else reason
    return "ContainerCreating"


def _ended(task: Task | None, name: str, window: Window) -> Window | None:
    """None while the followed run goes on; else its window, closed where it ended."""
    if task is None:
        return Window(window.after, window.until, window.start)
    e = next((c for c in task.containers if c.name == name), None)
    if e is None:
        return window
    if e.last_status == "RUNNING" and e.started_at == window.start and \
            task.last_status != "STOPPED":
        return None
    run, until = e.run, None
    if run is not None and run.last is not None and run.last.started_at == window.start:
        until = run.last.finished_at  # it ended and the container is coming back
    elif run is not None and e.started_at == window.start:
        until = run.finished_at
    return Window(window.after, until, window.start)


def _options(request: web.Request, name: str) -> tuple[int | None, int | None, float | None]:
    """tailLines, limitBytes and the since cut-off (wall clock), checked as the apiserver
    checks PodLogOptions."""
    tail, limit = _int(request, "tailLines"), _int(request, "limitBytes")
    seconds = _int(request, "sinceSeconds")
    since_time = request.query.get("sinceTime")
    errors = []
    if tail is not None and tail < 0:
        errors.append(("tailLines", f"Invalid value: {tail}: must be greater than or equal "
                       "to 0"))
    if limit is not None and limit < 1:
        errors.append(("limitBytes", f"Invalid value: {limit}: must be greater than 0"))
    if seconds is not None and seconds < 1:
        errors.append(("sinceSeconds", f"Invalid value: {seconds}: must be greater than 0"))
    if seconds is not None and since_time is not None:
        errors.append(("", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be "
                       "specified"))
    if errors:
        raise invalid("PodLogOptions", name, errors)
    since = None
    if seconds is not None:
        since = time.time() - seconds
    elif since_time is not None:
        since = parse_stamp(since_time)
        if since is None:
            raise bad_request(f"sinceTime must be an RFC3339 time: {since_time[:60]!r}")
    return tail, limit, since


async def pod_logs(request: web.Request, state: KubeState, cluster: str, ns: str,
                   name: str) -> web.StreamResponse:
    pod = state.get(cluster, "pods", ns, name)
    names = [c["name"] for c in pod["spec"]["containers"]]
    inits = [c["name"] for c in pod["spec"].get("initContainers") or []]
    wanted = request.query.get("container")
    if not wanted:
        if len(names) > 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one "
                              f"of: [{' '.join(names)}]"
                              + (f" or one of the init containers: [{' '.join(inits)}]"
                                 if inits else ""))
        wanted = names[0]
    if wanted not in names + inits:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    tail, limit, since = _options(request, name)
    follow, stamps = _bool(request, "follow"), _bool(request, "timestamps")
    previous = _bool(request, "previous")
    tid = (pod.get("_fargo") or {}).get("task")
    logs = request.app[LOGS]
    task = logs.task(tid) if tid else None
    entry = next((c for c in task.containers if c.name == wanted), None) if task else None
    if entry is None or (not previous and entry.last_status == "PENDING"
                         and not (entry.run and entry.run.restart_count)):
        raise bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: '
                          f"{_waiting(pod, wanted)}")
    assert tid is not None
    window = _window(entry, previous, name, wanted)
    follow = follow and not previous and window.until is None
    cursor = logs.cursor(tid, wanted)
    lines = await asyncio.to_thread(cursor.all_lines)
    if not cursor.exists:
        raise bad_request(f'container "{wanted}" in pod "{name}" is waiting to start: '
                          f"{_waiting(pod, wanted)}")

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    out = _Writer(resp, limit, stamps, since)
    kept = [p for p in (_parsed(line) for line in lines) if p and window.holds(p[0])]
    if tail is not None:
        kept = kept[-tail:] if tail > 0 else []
    for line in kept:
        if not await out.send(line):
            return await _finish(resp)
    while follow:
        transport = request.transport
        if transport is None or transport.is_closing():  # the client went away
            break
        ended = _ended(await asyncio.to_thread(logs.task, tid), wanted, window)
        more = await asyncio.to_thread(cursor.rest if ended else cursor.all_lines)
        for got in (_parsed(line) for line in more):
            if got and (ended or window).holds(got[0]) and not await out.send(got):
                return await _finish(resp)
        if ended:
            break
        await asyncio.sleep(POLL)
    return await _finish(resp)


Parsed = tuple[float | None, str, str, bool]  # (time, its text, message, partial)


def _parsed(line: str) -> Parsed | None:
    got = parse_line(line)
    if got is None:
        return None
    ts, _stream, msg, partial = got
    return parse_stamp(ts), ts, msg, partial


class _Writer:
    def __init__(self, resp: web.StreamResponse, limit: int | None, stamps: bool,
                 since: float | None):
        self.resp = resp
        self.limit = limit
        self.stamps = stamps
        self.since = since
        self.sent = 0

    async def send(self, parsed: Parsed) -> bool:
        """Write one line; False once limitBytes is reached."""
        at, ts, msg, partial = parsed
        if self.since is not None and at is not None and at < self.since:
            return True
        if self.stamps and ts.endswith("+00:00"):
            ts = ts[:-6] + "Z"  # UTC as kubelet writes it
        data = f"{ts + ' ' if self.stamps else ''}{msg}{'' if partial else chr(10)}".encode()
        if self.limit is not None:
            data = data[:max(self.limit - self.sent, 0)]
        if data:
            await self.resp.write(data)
            self.sent += len(data)
        return self.limit is None or self.sent < self.limit


async def _finish(resp: web.StreamResponse) -> Any:
    await resp.write_eof()
    return resp
