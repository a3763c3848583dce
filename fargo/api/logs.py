"""fargo's own HTTP face: container logs (which the AWS APIs of this issue do not carry)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from ..model.errors import ApiError, InvalidParameterException
from ..model.names import task_id_from
from .auth import authenticate
from .awsjson import error_response


def parse_line(line: str) -> tuple[str, str, str, bool] | None:
    """A k8s-file log line: 'TIMESTAMP STREAM P|F message' -> (ts, stream, message, partial)."""
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    return ts, stream, parts[3] if len(parts) > 3 else "", tag == "P"


async def follow_file(path: Path, done: Callable[[], bool], follow: bool) -> AsyncIterator[str]:
    """Yield whole lines; when following, keep reading until `done()` and nothing is left."""
    while follow and not path.exists():
        if done():
            return
        await asyncio.sleep(0.1)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8", errors="replace") as f:
        buf = ""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith("\n"):
                    yield buf
                    buf = ""
                continue
            if not follow:
                break
            if done():
                rest = f.read()
                if rest:
                    buf += rest
                    for line in buf.splitlines(keepends=True):
                        yield line
                return
            await asyncio.sleep(0.1)


async def task_logs(request: web.Request) -> web.StreamResponse:
    app = request.app
    try:
        authenticate(request, b"", "fargo", "rest")
        tid = task_id_from(request.match_info["task"])
    except ApiError as err:
        return error_response(err)
    task = app["store"].get_task(tid)
    if task is None:
        return error_response(InvalidParameterException("The referenced task was not found.",
                                                        status=404))
    names = [c["name"] for c in task["containers"]]
    wanted = request.query.get("container")
    if wanted and wanted not in names:
        return error_response(InvalidParameterException(
            f"Task has no container named {wanted[:255]!r}."))
    follow = request.query.get("follow") in ("1", "true")
    stamps = request.query.get("timestamps") in ("1", "true")
    chosen = [wanted] if wanted else names
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)

    def done() -> bool:
        t = app["store"].get_task(tid)
        return t is None or t["lastStatus"] == "STOPPED"

    async def one(name: str) -> None:
        path = app["agent"].log_path(tid, name)
        async for line in follow_file(path, done, follow):
            parsed = parse_line(line)
            if parsed is None:
                continue
            ts, _stream, msg, partial = parsed
            prefix = f"{name} | " if len(chosen) > 1 else ""
            prefix += f"{ts} " if stamps else ""
            await resp.write(f"{prefix}{msg}{'' if partial else chr(10)}".encode())

    await asyncio.gather(*[one(n) for n in chosen])
    await resp.write_eof()
    return resp
