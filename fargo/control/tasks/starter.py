"""A task's start, from PROVISIONING to RUNNING. Network, images and the sandbox's cgroups
and storage do not depend on each other: the pulls and the sandbox are set going first and
run while the interface is made; the containers are created once all three are there."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ...model.errors import ApiError
from ...model.taskrecord import ContainerDef, Task
from ...model.vpc import Subnet
from ...port.data import Image, SandboxSpec
from ...port.protocols import Network, Runtime
from ..network import Networks
from .book import TaskBook, done_or_set
from .containers import Containers
from .pulls import SharedPulls
from .turns import StartTurns

log = logging.getLogger("fargo.tasks")
Credentials = Callable[[str], tuple[str, str]]


class NetworkHooks(Protocol):
    """Told when a task's network comes and goes (the metadata endpoint lives there)."""

    async def network_ready(self, tid: str) -> None: ...

    async def network_gone(self, tid: str) -> None: ...


class Starter:
    def __init__(self, book: TaskBook, turns: StartTurns, pulls: SharedPulls,
                 runtime: Runtime, network: Network, networks: Networks | None,
                 subnets: Mapping[str, Subnet], containers: Containers, hooks: NetworkHooks | None,
                 credentials: Credentials | None):
        self.book = book
        self.turns = turns
        self.pulls = pulls
        self.runtime = runtime
        self.network = network
        self.networks = networks
        self.subnets = subnets
        self.containers = containers
        self.hooks = hooks
        self.credentials = credentials

    def registry_auth(self, cdef: ContainerDef) -> tuple[str, str] | None:
        return registry_auth(self.credentials, cdef)

    async def start_in_turn(self, tid: str) -> Task:
        try:
            if not await self.turns.take(tid):
                return self.book.fresh(tid)  # stopped while it waited: it never starts
            return await self._start(self.book.fresh(tid))
        finally:
            self.turns.end(tid)
            self.pulls.done_with(tid)

    async def _start(self, task: Task) -> Task:
        tid = task.id
        try:
            creds = [self.registry_auth(c) for c in task.plan]
        except ApiError as err:
            return self.book.fail_start(tid, "ResourceInitializationError: unable to pull "
                                        f"secrets or registry auth: {err.message}"[:255])
        pull_started = time.time()
        mine = [self.pulls.pull(tid, c["image"], auth)
                for c, auth in zip(task.plan, creds, strict=True)]
        # Shielded: a task cancelled mid-pull must not cancel the pull others share.
        pulls = asyncio.gather(*[asyncio.shield(p) for p in mine], return_exceptions=True)
        abandon = asyncio.Event()
        sandbox = asyncio.ensure_future(self._prepare_sandbox(task, pulls, abandon))
        try:
            return await self._after_network(tid, pulls, sandbox, pull_started)
        finally:
            # Whatever happened, nothing may still be making this task's sandbox when teardown
            # comes: wait for that, without a turn. A start that ended before its pulls
            # (stopped, failed) does not wait for them: they go on filling the image store,
            # and no rootfs is mounted from them.
            self.turns.end(tid)
            abandon.set()
            await asyncio.gather(sandbox, return_exceptions=True)

    async def _prepare_sandbox(self, task: Task, pulls: asyncio.Future[list[Any]],
                               abandon: asyncio.Event) -> None:
        """The sandbox's cgroups and storage, then each container's rootfs once its image is
        in (unless the start is abandoned first)."""
        spec = SandboxSpec(task.cpu, task.memory, task.storage_gib)
        await asyncio.to_thread(self.runtime.create_sandbox, task.id, spec)
        if not pulls.done() and not abandon.is_set():
            await done_or_set(pulls, abandon)
        if abandon.is_set() or not pulls.done():
            return
        for c, res in zip(task.plan, pulls.result(), strict=True):
            if abandon.is_set():
                return
            if not isinstance(res, BaseException):  # a failed pull is reported by the caller
                await asyncio.to_thread(self.runtime.prepare_rootfs, task.id, c["name"], res)

    async def _hook(self, tid: str, call: Callable[[str], Awaitable[None]]) -> str | None:
        try:
            await call(tid)
        except Exception as err:  # noqa: BLE001 - any failure here is a failed start
            log.exception("task %s: metadata endpoint", tid)
            return f"ResourceInitializationError: {err}"[:255]
        return None

    async def _after_network(self, tid: str, pulls: asyncio.Future[list[Any]],
                             sandbox: asyncio.Future[None], pull_started: float) -> Task:
        task = self.book.fresh(tid)
        eni = task.interface
        subnet = self.subnets.get(eni.subnet_id)
        try:
            if subnet is None:  # deleted since RunTask: nothing of the network is made
                raise ApiError(f"subnet {eni.subnet_id} is unknown")
            if self.networks:  # into its groups before its interface exists: never unfiltered
                await asyncio.to_thread(self.networks.task_up, tid, eni.ip, eni.groups,
                                        eni.subnet_id)
            att = await asyncio.to_thread(self.network.attach, tid, subnet, eni.ip,
                                         eni.endpoint)
        except Exception as err:  # noqa: BLE001 - any failure here is a failed start
            return self.book.fail_start(tid, f"ResourceInitializationError: {err}")
        if self.hooks:
            why = await self._hook(tid, self.hooks.network_ready)
            if why:
                return self.book.fail_start(tid, why)
        task = self.book.fresh(tid)
        task.interface.status, task.interface.mac = "ATTACHED", att.mac
        self.book.advance(task, "PENDING")
        if task.stopping:
            return task
        self.book.advance(task, "ACTIVATING")
        task.pull_started_at = pull_started  # when the pulls really began
        self.book.save(task)
        results = await self.turns.off_turn(tid, pulls)
        if results is None:  # stopped while its images were still coming
            return self.book.fresh(tid)
        task = self.book.fresh(tid)
        task.pull_stopped_at = time.time()
        images: dict[str, Image] = {}
        for cdef, res, c in zip(task.plan, results, task.containers, strict=True):
            if isinstance(res, BaseException):
                c.reason = f"CannotPullContainerError: {res}"[:1024]
                self.book.save(task)
                return self.book.fail_start(tid, f"CannotPullContainerError: {res}"[:255])
            images[cdef["name"]] = res
            c.image_digest = res.digest
        self.book.save(task)
        if task.stopping:
            return task
        try:
            await sandbox
            ok = await self.containers.start_all(tid, images, lambda: self.turns.end(tid))
        except Exception as err:  # noqa: BLE001
            log.exception("task %s: container start failed", tid)
            return self.book.fail_start(tid, f"CannotStartContainerError: {err}"[:255])
        task = self.book.fresh(tid)
        if ok:
            self.book.advance(task, "RUNNING")
        return task


def registry_auth(credentials: Credentials | None,
                  cdef: ContainerDef) -> tuple[str, str] | None:
    """The registry username and password a container definition names (a secret), if any."""
    param = (cdef.get("repositoryCredentials") or {}).get("credentialsParameter")
    if not param:
        return None
    if credentials is None:
        raise ApiError("no secrets store is configured")
    return credentials(param)
