"""Watches: a chunked stream of {"type", "object"} lines, resuming after a resourceVersion."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ...control.kubestate import Change, KubeState, public
from ...model.kubeerrors import KubeError, bad_request
from . import tables
from .resources import Resource

MAX_TIMEOUT = 3600.0
BOOKMARK_EVERY = 10.0  # seconds between bookmarks when nothing else was sent
INITIAL_END = "k8s.io/initial-events-end"


def _since(raw: str | None) -> int | None:
    """None: start with the current objects as ADDED (no version, or "0")."""
    if raw in (None, "", "0"):
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise bad_request(f"invalid resourceVersion {raw[:40]!r}")
    return int(raw)


async def watch(request: web.Request, state: KubeState, cluster: str, res: Resource,
                ns: str | None, match: Callable[[dict[str, Any]], bool]) -> web.StreamResponse:
    resource = res.plural
    since = _since(request.query.get("resourceVersion"))
    raw_timeout = request.query.get("timeoutSeconds", "")
    if raw_timeout and not (raw_timeout.isascii() and raw_timeout.isdigit()):
        raise bad_request(f"timeoutSeconds must be a whole number of seconds: "
                          f"{raw_timeout[:40]!r}")
    timeout = float(raw_timeout[:8]) if raw_timeout else 1800.0
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    include = request.query.get("includeObject")
    bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
    initial = request.query.get("sendInitialEvents") in ("true", "1")
    if initial and (not bookmarks or request.query.get("resourceVersionMatch") != "NotOlderThan"):
        raise KubeError(422, "Invalid", "sendInitialEvents is forbidden for watch unless "
                        "allowWatchBookmarks=true and resourceVersionMatch=NotOlderThan")
    w, backlog = state.watch(cluster, resource, ns, None if initial else since)
    try:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            view = public(obj)
            if as_table:
                view = tables.table(res.printer, [view], view["metadata"]["resourceVersion"],
                                    include)
            await resp.write(json.dumps({"type": kind, "object": view}).encode() + b"\n")

        async def bookmark(annotations: dict[str, str] | None = None) -> None:
            meta: dict[str, Any] = {"resourceVersion": str(state.current_rv)}
            if annotations:
                meta["annotations"] = annotations
            await resp.write(json.dumps({"type": "BOOKMARK", "object": {
                "kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}).encode()
                + b"\n")

        if since is None or initial:
            for obj in state.list(cluster, resource, ns):
                if match(obj):
                    await send("ADDED", obj)
            if initial:
                await bookmark({INITIAL_END: "true"})
        for past in backlog:
            if match(past.obj):
                await send(past.type, past.obj)
        deadline = time.monotonic() + min(timeout, MAX_TIMEOUT)
        quiet_since = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(min(left, 1.0)):
                    change: Change = await w.queue.get()
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    break  # the client went away
                if bookmarks and time.monotonic() - quiet_since >= BOOKMARK_EVERY:
                    await bookmark()
                    quiet_since = time.monotonic()
                continue
            quiet_since = time.monotonic()
            if change.type == "CLOSE":
                break
            if match(change.obj):
                await send(change.type, change.obj)
        await resp.write_eof()
        return resp
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        raise
    finally:
        state.unwatch(cluster, w)
