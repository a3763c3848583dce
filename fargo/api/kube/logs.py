"""pods/log: a container's output from its k8s-file log, with follow, tailLines, timestamps."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ...control.kubestate import KubeState
from ...model.kubeerrors import KubeError, bad_request
from ..logs import LOGS, parse_line


def _int(request: web.Request, key: str) -> int | None:
    raw = request.query.get(key)
    if raw is None:
        return None
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 12:
        raise bad_request(f"{key} must be an integer: {raw[:40]!r}")
    return int(raw)


def _format(line: str, stamps: bool) -> str | None:
    parsed = parse_line(line)
    if parsed is None:
        return None
    ts, _stream, msg, partial = parsed
    return f"{ts + ' ' if stamps else ''}{msg}{'' if partial else chr(10)}"


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
    tail = _int(request, "tailLines")
    limit = _int(request, "limitBytes")
    follow = request.query.get("follow") in ("true", "1")
    stamps = request.query.get("timestamps") in ("true", "1")
    tid = (pod.get("_fargo") or {}).get("task")
    logs = request.app[LOGS]
    cursor = logs.cursor(tid, wanted) if tid else None
    lines = await asyncio.to_thread(cursor.all_lines) if cursor else []
    if cursor is None or not cursor.exists:
        raise KubeError(400, "BadRequest", f'container "{wanted}" in pod "{name}" is waiting '
                        "to start: ContainerCreating")

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    sent = 0

    async def out(text: str) -> bool:
        nonlocal sent
        data = text.encode()
        if limit is not None and limit >= 0:
            data = data[:max(limit - sent, 0)]
        if data:
            await resp.write(data)
            sent += len(data)
        return limit is None or sent < limit

    def gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()  # the client went away

    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    for line in lines:
        text = _format(line, stamps)
        if text is not None and not await out(text):
            return await _finish(resp)
    if follow:
        async for line in logs.follow(cursor, follow=True, gone=gone):
            text = _format(line, stamps)
            if text is not None and not await out(text):
                break
    return await _finish(resp)


async def _finish(resp: web.StreamResponse) -> Any:
    await resp.write_eof()
    return resp
