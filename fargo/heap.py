"""Hands the C heap's free pages back to the system.

Every Python object over 512 bytes, and every C library's buffer, comes from glibc's malloc.
Its heap shrinks only from the top, so after bursts of work (a launch of 100 tasks, a kube
list of every pod) a few long-lived blocks near the top keep what was freed below them
resident: at the end of a whole benchmark run 84 of the heap's 112 MB were free, and the
server's RSS counted all of them. `malloc_trim(0)` tells the kernel every whole free page of
every arena may go (they stay mapped, and a later malloc faults them back in).

The trimmer looks at the RSS, which costs one read of /proc/self/statm, and trims only when
it has grown by `slack` above its lowest since the last trim: a trim costs a few ms of walking free chunks,
and memory that is really in use is not given back by trimming again."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PAGE = os.sysconf("SC_PAGE_SIZE")
M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)
ARENAS = 2


def limit_arenas(count: int = ARENAS) -> bool:
    """At most `count` malloc arenas for the process; call before any thread starts.

    glibc gives a thread that finds the arenas busy one of its own, up to 8 per core, and
    each keeps its own free memory: a block freed in one cannot serve another's malloc. The
    server's threads (the executor's, netlink's, the storage and user namespace makers) run
    Python, which holds the GIL, so they contend little for two; a whole benchmark run ended
    with an RSS 25-30 MB lower (figure 15c). False under a C library without mallopt."""
    fn = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])
    return fn is not None and bool(fn(M_ARENA_MAX, count))


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None under a C library without it (musl)."""
    return _glibc("malloc_trim", [ctypes.c_size_t])


def _glibc(name: str, argtypes: list[type]) -> Any:
    """The C library's function `name` returning an int, or None where it has none."""
    fn = getattr(ctypes.CDLL(None), name, None)
    if fn is not None:
        fn.argtypes, fn.restype = argtypes, ctypes.c_int
    return fn


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


class HeapTrimmer:
    """Trims the heap once the RSS has grown `slack` bytes above its lowest since the last
    trim, looking every `interval` seconds."""

    def __init__(self, interval: float = 10.0, slack: int = 8 << 20):
        self.interval, self.slack = interval, slack
        self._trim = _malloc_trim()
        self._floor = 0  # the lowest RSS since the last trim (0: none yet)
        self._task: asyncio.Task[None] | None = None

    def trim_if_grown(self) -> int:
        """Trims when the RSS has grown by `slack`; the bytes the trim gave back."""
        if self._trim is None:
            return 0
        before = resident_bytes()
        if before < self._floor + self.slack:
            self._floor = min(self._floor, before)  # what Python unmapped by itself
            return 0
        t0 = time.monotonic()
        self._trim(0)
        after = resident_bytes()
        self._floor = after
        log.debug("heap trimmed: RSS %.1f → %.1f MB in %.1f ms", before / 1e6, after / 1e6,
                  (time.monotonic() - t0) * 1e3)
        return max(0, before - after)

    def start(self) -> None:
        if self._trim is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            # In a thread: the walk holds each arena's lock, not the event loop.
            await asyncio.to_thread(self.trim_if_grown)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
