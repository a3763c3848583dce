"""Image pulls, shared: one pull per (image, credentials) in flight for the whole host, and the
tasks of one RunTask call reuse its result, as ECS resolves a deployment's tags once. This is
the only de-duplication of pulls (the image store below does none of its own)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from ...port.data import Image
from ...port.protocols import Images

Key = tuple[str, Any]  # (image reference, registry credentials or None)


class SharedPulls:
    def __init__(self, images: Images):
        self.images = images
        self._inflight: dict[Key, asyncio.Future[Image]] = {}
        self._call_of: dict[str, int] = {}  # task id -> its call
        self._calls: dict[int, dict[Key, asyncio.Future[Image]]] = {}  # call -> its results
        self._next_call = 0

    def share_call(self, tids: list[str]) -> None:
        """These tasks came from one call: a pull done for one serves the others."""
        if len(tids) < 2:
            return
        self._next_call += 1
        self._calls[self._next_call] = {}
        for tid in tids:
            self._call_of[tid] = self._next_call

    def pull(self, tid: str, image: str, auth: Any) -> asyncio.Future[Image]:
        key = (image, auth)
        call = self._calls.get(self._call_of.get(tid, 0))
        done = call.get(key) if call is not None else None
        if done is not None and not (done.done() and (done.cancelled() or done.exception())):
            return done  # a failed pull is tried again, not passed on
        fut = self._inflight.get(key)
        if fut is None or fut.done():
            fut = asyncio.ensure_future(asyncio.to_thread(self.images.pull, image, auth))
            self._inflight[key] = fut
            fut.add_done_callback(functools.partial(self._forget, key))
        if call is not None:
            call[key] = fut
        return fut

    def _forget(self, key: Key, fut: asyncio.Future[Image]) -> None:
        if self._inflight.get(key) is fut:
            del self._inflight[key]

    def done_with(self, tid: str) -> None:
        """The task's start is over: its call keeps results only for the tasks still to go."""
        call = self._call_of.pop(tid, None)
        if call is not None and call not in self._call_of.values():
            self._calls.pop(call, None)
