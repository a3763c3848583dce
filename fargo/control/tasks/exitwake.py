"""Woken by the kernel when a container's monitor ends, rather than looking every 50 ms.

For each running container the runtime may hand a descriptor that turns readable once its
monitor has ended, its exit recorded or lost (`Runtime.exit_fd`: a pidfd of its conmon); the
event loop watches them all in its one epoll. A container without one is looked at every
POLL as before, and every container still once per sweep (the engine's), so a descriptor that
never fires (after a reboot a monitor's old pid may name another process) costs at most that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from ...port.protocols import Runtime

log = logging.getLogger("fargo.tasks")
Key = tuple[str, str]  # (task id, container name)


class ExitWakers:
    def __init__(self, runtime: Runtime, poke: Callable[[str], None]):
        self._runtime = runtime
        self._poke = poke
        self._fds: dict[Key, int] = {}
        self.unarmed: set[Key] = set()  # watched containers with no descriptor: polled

    def arm(self, tid: str, name: str) -> None:
        """Watch the container's end; called on the event loop's thread."""
        key = (tid, name)
        if key in self._fds:
            return
        try:
            fd = self._runtime.exit_fd(tid, name)
        except Exception:  # noqa: BLE001 - it is polled instead
            log.exception("task %s: watching container %s for its exit", tid, name)
            fd = None
        if fd is None:
            self.unarmed.add(key)
            return
        self.unarmed.discard(key)
        self._fds[key] = fd
        asyncio.get_running_loop().add_reader(fd, self._fire, key)

    def disarm(self, tid: str, name: str) -> None:
        key = (tid, name)
        self.unarmed.discard(key)
        fd = self._fds.pop(key, None)
        if fd is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closing already
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)

    def disarm_task(self, tid: str) -> None:
        for key in [k for k in (*self._fds, *self.unarmed) if k[0] == tid]:
            self.disarm(*key)

    def close(self) -> None:
        for key in list(self._fds):
            self.disarm(*key)
        self.unarmed.clear()

    def _fire(self, key: Key) -> None:
        self.disarm(*key)
        self.unarmed.add(key)  # polled from now on, until its end is written down
        self._poke(key[0])
