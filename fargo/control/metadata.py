"""Each task's endpoint at 169.254.170.2 (task metadata v4 and role credentials): opened on a
socket inside the task's own netns when its network is up, closed when it goes. What it
serves comes from here; api/metadata.py renders it and routes the paths."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from ..model.taskrecord import Task
from ..model.vpc import Subnet
from ..port.data import TaskStats
from ..port.protocols import Network, Runtime
from ..store.sqlite import Store
from .iam import Iam, Key

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
# Makes the HTTP handler of one task's endpoint (api/metadata.py's).
HandlerFactory = Callable[["TaskEndpoints", str], Handler]


class TaskEndpoints:
    def __init__(self, store: Store, network: Network, runtime: Runtime, iam: Iam,
                 subnets: Mapping[str, Subnet], handler: HandlerFactory):
        self.store = store
        self.network = network
        self.runtime = runtime
        self.iam = iam
        self.subnets = subnets
        self.handler = handler
        self._servers: dict[str, asyncio.base_events.Server] = {}

    # ---- lifecycle (the task engine's network hooks)
    async def network_ready(self, tid: str) -> None:
        if tid in self._servers:
            return
        sock = await asyncio.to_thread(self.network.metadata_listener, tid)
        server = web.Server(self.handler(self, tid))
        loop = asyncio.get_running_loop()
        self._servers[tid] = await loop.create_server(server, sock=sock)

    async def network_gone(self, tid: str) -> None:
        server = self._servers.pop(tid, None)
        if server is not None:
            server.close()

    async def close_all(self) -> None:
        for tid in list(self._servers):
            await self.network_gone(tid)

    # ---- what the endpoint serves
    def task(self, tid: str) -> Task | None:
        return self.store.get_task(tid)

    def subnet(self, task: Task) -> Subnet:
        return self.subnets[task.interface.subnet_id]

    async def stats(self, tid: str) -> TaskStats:
        return await asyncio.to_thread(self.runtime.stats, tid)

    def role_credentials(self, tid: str, credentials_id: str) -> Key | None:
        """The task role's current credentials, or None when this path is not the task's.
        A rotated key is written to the task's record, so a restart hands out the same."""
        task = self.store.get_task(tid)
        if task is None or not task.role or credentials_id != task.credentials_id:
            return None
        key = self.iam.current_role_credentials(task.role, task.role_key)
        if key.id != task.role_key:
            task = self.store.get_task(tid)  # as fresh as can be: the engine writes it too
            if task is not None:
                task.role_key = key.id
                self.store.put_task(task)
        return key
