"""A task's start, from PROVISIONING to RUNNING. Network, images and the sandbox's cgroups
and storage do not depend on each other: the pulls and the sandbox are set going first and
run while the interface is made. An ECS task's containers that depend on nothing are created
as soon as their rootfs and the task's (still empty) netns are there, while the interface is
made; every container is started once all three are done."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ...model.errors import ApiError
from ...model.secretref import SecretsManagerRef, parse_secrets
from ...model.task import sandbox_memory_mib, start_refusal
from ...model.taskrecord import ContainerDef, Task
from ...model.vpc import Subnet
from ...port.data import Image, SandboxSpec, VolumeSpec
from ...port.protocols import Network, Runtime
from ..network import Networks
from ..secrets import Secrets
from ..ssm import Ssm
from .book import TaskBook, done_or_set
from .containers import Containers, created_first
from .pulls import SharedPulls
from .turns import StartTurns

log = logging.getLogger("fargo.tasks")
Credentials = Callable[[str], tuple[str, str]]
# Longer than a pull of an image already here takes (its tag checked against the registry,
# ~5 ms), far shorter than any download (figure 6: hundreds of ms).
PULL_CHECK_S = 0.02
SECRETS_FAILED = "ResourceInitializationError: unable to pull secrets or registry auth: "


@dataclass
class SecretSources:
    """Where containers' `secrets` are read at each start."""

    secrets: Secrets | None = None
    ssm: Ssm | None = None


class LogHook(Protocol):
    """Readies a task's log routes before its containers (control/logroutes.py)."""

    async def prepare(self, tid: str) -> str | None:
        """Why the task fails to start, if it does."""


class VolumeHook(Protocol):
    """A task's volumes (control/volumes.py): made with its sandbox, filled before its
    containers."""

    def specs(self, task: Task) -> tuple[VolumeSpec, ...]: ...

    async def prepare(self, tid: str, on_wait: Callable[[], None]) -> str | None:
        """Once what the volumes hold is written (waiting for it, without the start's turn,
        until the task is stopped): why the task fails to start, if it does."""

    def pull_auth(self, task: Task) -> list[tuple[str, str] | None] | None:
        """A pod's registry credentials per container (its imagePullSecrets); None: the
        containers' own repositoryCredentials."""


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
        self.sources = SecretSources()  # server.py hands it the services' control objects
        self.logs: LogHook | None = None  # server.py: CloudWatch Logs' routes
        self.volumes: VolumeHook | None = None  # server.py: task volumes

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
        refused = start_refusal(task)  # what its tier cannot give: nothing is made for it
        if refused:
            return self.book.fail_start(tid, refused)
        try:
            pod_auth = self.volumes.pull_auth(task) if self.volumes else None
            creds = pod_auth or [self.registry_auth(c) for c in task.plan]
            # Before any container exists; again at each start (a redone one too).
            env = {} if task.pod else resolve_secrets(task, self.sources)
        except ApiError as err:
            return self.book.fail_start(tid, f"{SECRETS_FAILED}{err.message}"[:255])
        if env:
            self.containers.secret_env[tid] = env
        try:
            return await self._start_resolved(task, creds)
        finally:
            self.containers.secret_env.pop(tid, None)  # the values live only this long

    async def _start_resolved(self, task: Task, creds: list[tuple[str, str] | None]) -> Task:
        tid = task.id
        pull_started = time.time()
        mine = [self.pulls.pull(tid, c["image"], auth)
                for c, auth in zip(task.plan, creds, strict=True)]
        # Shielded: a task cancelled mid-pull must not cancel the pull others share.
        pulls = asyncio.gather(*[asyncio.shield(p) for p in mine], return_exceptions=True)
        abandon = asyncio.Event()
        # Set when the network may be made: once the first container created ahead has its
        # conmon spawned (or that creation ended some other way), once the sandbox is made
        # when nothing is created ahead, or as soon as a pull is seen to be still under way
        # (the network then goes beside it). A start from images already here thus makes its
        # sandbox and rootfs, and has conmon spawned, without the interface's Python work
        # beside it on the GIL; the interface is then made while runc creates the container
        # (its longest step, spent in other processes).
        net_go = asyncio.Event()
        # The containers created ahead mount their rootfs in the same worker-thread job as
        # their create (one hand-off through the event loop less on the start's path).
        ahead_names = (frozenset(c["name"] for c in created_first(task.plan))
                       if creates_ahead(task) else frozenset())
        sandbox = asyncio.ensure_future(
            self._prepare_sandbox(task, pulls, abandon, net_go, ahead_names))
        if not ahead_names:
            sandbox.add_done_callback(lambda _: net_go.set())
        ahead: list[asyncio.Future[None]] = []  # the containers created ahead, if they are
        try:
            return await self._after_network(tid, pulls, sandbox, ahead, abandon, pull_started,
                                             net_go)
        finally:
            # Whatever happened, nothing may still be making this task's sandbox or containers
            # when teardown comes: wait for that, without a turn. A start that ended before its
            # pulls (stopped, failed) does not wait for them: they go on filling the image
            # store, and no rootfs is mounted from them.
            self.turns.end(tid)
            abandon.set()
            await asyncio.gather(sandbox, *ahead, return_exceptions=True)

    async def _prepare_sandbox(self, task: Task, pulls: asyncio.Future[list[Any]],
                               abandon: asyncio.Event, net_go: asyncio.Event,
                               ahead: frozenset[str]) -> None:
        """The sandbox's cgroups and storage, then the rootfs of each container not in
        `ahead` (those created ahead mount theirs as they are created) once its image is in,
        unless the start is abandoned first. net_go is set if a pull is still going once the
        sandbox is made (when containers are created ahead: PULL_CHECK_S after)."""
        spec = SandboxSpec(task.cpu, sandbox_memory_mib(task), task.storage_gib,
                           self.volumes.specs(task) if self.volumes else (),
                           isolation=task.isolation, containers=len(task.plan))
        await asyncio.to_thread(self.runtime.create_sandbox, task.id, spec)
        if ahead and not pulls.done() and not abandon.is_set():
            # An image already here is only checked against its registry: a few ms, often
            # ending just after the sandbox is made. The network then waits for the conmon of
            # a container created ahead, unless the pull is still going after that (a
            # download: the network goes beside it).
            await done_or_set(pulls, abandon, PULL_CHECK_S)
        if not pulls.done() and not abandon.is_set():
            net_go.set()
            await done_or_set(pulls, abandon)
        if abandon.is_set() or not pulls.done():
            return
        for c, res in zip(task.plan, pulls.result(), strict=True):
            if abandon.is_set():
                return
            if c["name"] not in ahead and not isinstance(res, BaseException):
                # (a failed pull is reported by the caller)
                await asyncio.to_thread(self.runtime.prepare_rootfs, task.id, c["name"], res)

    async def _create_ahead(self, tid: str, pulls: asyncio.Future[list[Any]],
                            sandbox: asyncio.Future[None], abandon: asyncio.Event,
                            net_go: asyncio.Event) -> None:
        """The first containers, once the sandbox is made and their images are in (the netns
        is pinned already), net_go set as the first one's conmon is spawned; nothing when a
        pull or the sandbox failed (the start reports that) or it is over."""
        await done_or_set(sandbox, abandon)
        if abandon.is_set() or not sandbox.done() or sandbox.cancelled() or sandbox.exception():
            return
        results = pulls.result() if pulls.done() else None
        if results is None or any(isinstance(r, BaseException) for r in results):
            return
        plan = self.book.fresh(tid).plan
        loop = asyncio.get_running_loop()

        def spawned() -> None:  # in the worker thread that creates the container
            with contextlib.suppress(RuntimeError):  # the loop closed: no one waits
                loop.call_soon_threadsafe(net_go.set)

        await self.containers.create_first(
            tid, {c["name"]: r for c, r in zip(plan, results, strict=True)}, spawned)

    async def _hook(self, tid: str, call: Callable[[str], Awaitable[None]]) -> str | None:
        try:
            await call(tid)
        except Exception as err:  # noqa: BLE001 - any failure here is a failed start
            log.exception("task %s: metadata endpoint", tid)
            return f"ResourceInitializationError: {err}"[:255]
        return None

    async def _after_network(self, tid: str, pulls: asyncio.Future[list[Any]],
                             sandbox: asyncio.Future[None], ahead: list[asyncio.Future[None]],
                             abandon: asyncio.Event, pull_started: float,
                             net_go: asyncio.Event) -> Task:
        task = self.book.fresh(tid)
        eni = task.interface
        subnet = self.subnets.get(eni.subnet_id)
        try:
            if subnet is None:  # deleted since RunTask: nothing of the network is made
                raise ApiError(f"subnet {eni.subnet_id} is unknown")
            # runc needs no more than the netns to exist to create a container.
            if creates_ahead(task):
                await asyncio.to_thread(self.network.pin, tid)
                created = asyncio.ensure_future(
                    self._create_ahead(tid, pulls, sandbox, abandon, net_go))
                created.add_done_callback(lambda _: net_go.set())  # whatever became of it
                ahead.append(created)
                await net_go.wait()
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
        if self.logs is not None:  # a log group the container cannot log to: it never runs
            why = await self.logs.prepare(tid)
            if why:
                return self.book.fail_start(tid, why)
        try:
            await sandbox
            for made in ahead:
                await made  # a failure to create is the start's
            if self.volumes is not None:
                why = await self.volumes.prepare(tid, lambda: self.turns.end(tid))
                if why:
                    return self.book.fail_start(tid, why)
            ok = await self.containers.start_all(tid, images, lambda: self.turns.end(tid))
        except Exception as err:  # noqa: BLE001
            log.exception("task %s: container start failed", tid)
            return self.book.fail_start(tid, f"CannotStartContainerError: {err}"[:255])
        task = self.book.fresh(tid)
        if ok:
            self.book.advance(task, "RUNNING")
        return task


def creates_ahead(task: Task) -> bool:
    """Whether the task's first containers are created while its interface is made: an
    ECS task's on runc (a pod's wait for their volumes' contents, and a gVisor sandbox boots
    as it is created)."""
    return task.pod is None and task.isolation == "runc"


def resolve_secrets(task: Task, sources: SecretSources) -> dict[str, dict[str, str]]:
    """Every container's `secrets` as environment variables, by container name; ApiError
    naming (never quoting) what could not be read, in the words of ECS's agent."""
    out: dict[str, dict[str, str]] = {}
    missing: list[str] = []  # SSM parameters: ECS names them all at once
    for cdef in task.plan:
        env: dict[str, str] = {}
        for secret in parse_secrets(cdef.get("secrets"), cdef["name"], task.region):
            src = secret.source
            if isinstance(src, SecretsManagerRef):
                env[secret.name] = _from_secrets_manager(src, sources.secrets)
            elif sources.ssm is None:
                raise ApiError("no SSM parameter store is configured")
            else:
                try:
                    env[secret.name] = sources.ssm.task_value(src.given, task.region)
                except ApiError:
                    missing.append(src.given)
            if "\x00" in env.get(secret.name, ""):  # no environment can carry it
                raise ApiError(f"the value of secret {secret.name} holds a NUL character")
        if env:
            out[cdef["name"]] = env
    if missing:
        raise ApiError("unable to retrieve secrets from ssm: invalid parameters: "
                       + ", ".join(dict.fromkeys(missing)))
    return out


def _from_secrets_manager(ref: SecretsManagerRef, secrets: Secrets | None) -> str:
    asm = "unable to retrieve secret from asm"
    where = f"{asm}: failed to fetch secret {ref.secret_id}"
    if secrets is None:
        raise ApiError(f"{where}: no secrets store is configured")
    try:
        secret = secrets.find(ref.secret_id)
    except ApiError as err:
        raise ApiError(f"{where} from secrets manager: {err.code}: {err.message}") from None
    # fargo keeps one version of a secret, AWSCURRENT: nothing older to pick.
    if ref.version_stage not in (None, "AWSCURRENT"):
        raise ApiError(f"{where}: ResourceNotFoundException: Secrets Manager can't find the "
                       f"specified secret value for staging label: {ref.version_stage}")
    if ref.version_id not in (None, secret.version_id):
        raise ApiError(f"{where}: ResourceNotFoundException: Secrets Manager can't find the "
                       f"specified secret value for VersionId: {ref.version_id}")
    if ref.json_key is None:
        return secret.value
    try:
        doc = json.loads(secret.value)
    except ValueError:
        doc = None
    # As the agent words these: the key, not the whole ARN (a reason holds 255 characters).
    if not isinstance(doc, dict):
        raise ApiError(f"{asm}: the secret {secret.name} is not a JSON object: no json key "
                       f"{ref.json_key}")
    if ref.json_key not in doc:
        raise ApiError(f"{asm}: retrieved secret from Secrets Manager did not contain json "
                       f"key {ref.json_key}")
    picked = doc[ref.json_key]
    return picked if isinstance(picked, str) else json.dumps(picked, separators=(",", ":"))


def registry_auth(credentials: Credentials | None,
                  cdef: ContainerDef) -> tuple[str, str] | None:
    """The registry username and password a container definition names (a secret), if any."""
    param = (cdef.get("repositoryCredentials") or {}).get("credentialsParameter")
    if not param:
        return None
    if credentials is None:
        raise ApiError("no secrets store is configured")
    return credentials(param)
