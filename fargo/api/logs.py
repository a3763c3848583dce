"""fargo's own HTTP face: container logs (which the AWS APIs of this issue do not carry)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..control.logs import ContainerLogs
from ..model.errors import ApiError, InvalidParameterException
from ..model.names import task_id_from
from ..port.logline import parse_log_line
from .auth import authenticate
from .awsjson import error_response
from .errors import HttpError

LOGS = web.AppKey("logs", ContainerLogs)


def parse_line(line: str) -> tuple[str, str, str, bool] | None:
    """(timestamp, stream, message, partial) of a k8s-file log line; None for another shape."""
    try:
        return parse_log_line(line)
    except ValueError:
        return None


async def task_logs(request: web.Request) -> web.StreamResponse:
    logs = request.app[LOGS]
    try:
        authenticate(request, b"", "fargo", "rest")
        tid = task_id_from(request.match_info["task"])
    except ApiError as err:
        return error_response(err)
    task = logs.task(tid)
    if task is None:
        return error_response(HttpError("The referenced task was not found.",
                                        "InvalidParameterException", 404))
    names = [c.name for c in task.containers]
    wanted = request.query.get("container")
    if wanted and wanted not in names:
        return error_response(InvalidParameterException(
            f"Task has no container named {wanted[:255]!r}."))
    follow = request.query.get("follow") in ("1", "true")
    stamps = request.query.get("timestamps") in ("1", "true")
    chosen = [wanted] if wanted else names
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)

    async def one(name: str) -> None:
        async for line in logs.follow(logs.cursor(tid, name), follow=follow):
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
