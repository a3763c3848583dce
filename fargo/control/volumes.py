"""Task volumes, control's side: what each task's sandbox holds (an ECS task's bind mounts, a
pod's emptyDirs and config volumes), the files of a pod's config volumes rendered from its
namespace's ConfigMaps and Secrets, its account's tokens and the downward API (written
before any container starts, then kept up to date while it runs, as kubelet does), and what
each container gets at its creation: its mounts, and its variables from ConfigMaps and
Secrets.

A pod whose volumes or variables name what is not there waits, as kubelet makes it wait:
FailedMount events and ContainerCreating for a volume, CreateContainerConfigError for a
variable; it starts once they are there. Nothing starts without them."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..model import lifecycle, podvolumes, secret, varexpand
from ..model import serviceaccount as sa_rules
from ..model.downward import Placed
from ..model.errors import ApiError
from ..model.podtask import EVICTED
from ..model.podvolumes import Missing, Sources
from ..model.taskrecord import ContainerDef, Task
from ..port.data import ContainerSpec, VolumeFile, VolumeSpec
from ..port.protocols import Runtime
from .kubestate import Change, KubeState
from .passloop import PassLoop
from .satokens import ServiceAccountTokens
from .tasks.book import TaskBook

log = logging.getLogger("fargo.volumes")
CONFIG_ERROR = "CreateContainerConfigError"
WAIT = 1.0  # seconds between looks while a pod waits for what its volumes name
# Seconds between passes over running pods' volumes when nothing pokes: what no write
# announces (a token's renewal, labels in downward API files; kubelet takes up to a minute).
REFRESH = 3.0
TOKEN_REFRESH = 0.8  # a token is minted again once this much of its life has gone
TOKEN_MAX_AGE = 24 * 3600
USAGE_EVERY = 10.0  # seconds between measures of a pod's emptyDirs (kubelet's housekeeping)


def _digest(files: list[VolumeFile]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.mode}\0{len(f.data)}\0".encode())
        h.update(f.data)
    return h.hexdigest()


class TaskVolumes:
    def __init__(self, state: KubeState, runtime: Runtime, book: TaskBook,
                 tokens: ServiceAccountTokens, active: Callable[[], list[Task]]):
        self.state = state
        self.runtime = runtime
        self.book = book
        self.tokens = tokens
        self.active = active
        # What each running task's config volumes hold (digests), as last written here.
        self._written: dict[str, dict[str, str]] = {}
        # (tid, audience, expiry) -> (token, minted at): reused until due for renewal.
        self._tokens: dict[tuple[str, str, int], tuple[str, float]] = {}
        self._told: dict[str, set[str]] = {}  # events already recorded, by task
        self._waiting: dict[str, tuple[str, str]] = {}  # tid -> (cluster, ns) of a waiting pod
        self._measured: dict[str, float] = {}  # when each task's emptyDirs were last measured
        self.loop = PassLoop(self._refresh, REFRESH, 0.2, log, "refreshing pods' volumes")
        state.listeners.append(self._changed)

    # ---- the sandbox's volumes
    def specs(self, task: Task) -> tuple[VolumeSpec, ...]:
        if task.pod is None:
            return podvolumes.ecs_volume_specs(task.plan)
        pod = self._pod(task)
        return podvolumes.volume_specs(pod["spec"], task.memory) if pod else ()

    def _pod(self, task: Task) -> dict[str, Any] | None:
        ref = task.pod
        if ref is None:
            return None
        pod = self.state.find(ref.cluster, "pods", ref.namespace, ref.name)
        return pod if pod is not None and pod["metadata"].get("uid") == ref.uid else None

    def _sources(self, task: Task, pod: dict[str, Any]) -> Sources:
        ref = task.pod
        assert ref is not None
        cluster, ns = ref.cluster, ref.namespace

        def token(audience: str, expiry: int) -> str:
            key = (task.id, audience, expiry)
            now = time.time()
            held = self._tokens.get(key)
            if held and now - held[1] < min(expiry * TOKEN_REFRESH, TOKEN_MAX_AGE):
                return held[0]
            name = sa_rules.account_name(pod)
            sa = self.state.find(cluster, "serviceaccounts", ns, name)
            if sa is None:
                raise Missing(f'serviceaccount "{name}" not found')
            minted, _ = self.tokens.mint(
                cluster, ns, sa, [audience] if audience else list(sa_rules.API_AUDIENCES),
                expiry, {"kind": "Pod", "name": pod["metadata"]["name"],
                         "uid": pod["metadata"].get("uid", "")}, now=int(now))
            self._tokens[key] = (minted, now)
            return minted

        return Sources(ns, lambda n: self.state.find(cluster, "configmaps", ns, n),
                       lambda n: self.state.find(cluster, "secrets", ns, n), token)

    def _render(self, task: Task, pod: dict[str, Any]) -> dict[str, list[VolumeFile]]:
        """Every config volume's files; Missing (with kubelet's FailedMount words)."""
        sources = self._sources(task, pod)
        placed = Placed(task.ip, pod["spec"].get("nodeName") or "", task.cpu, task.memory,
                        task.storage_gib)
        out = {}
        for v in podvolumes.config_volumes(pod["spec"]):
            try:
                out[v["name"]] = podvolumes.volume_files(pod, v, sources, placed)
            except Missing as err:
                raise Missing(f'MountVolume.SetUp failed for volume "{v["name"]}" : '
                              f"{err}") from None
        return out

    def pull_auth(self, task: Task) -> list[tuple[str, str] | None] | None:
        """A pod's credentials for each container's image, from its imagePullSecrets (one
        missing is said in an event, and the pull goes on without it, as kubelet does)."""
        pod = self._pod(task)
        names = [r.get("name") for r in ((pod or {}).get("spec") or {}).get(
            "imagePullSecrets") or [] if isinstance(r, dict)]
        if pod is None or not names:
            return None
        assert task.pod is not None
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for name in names:
            obj = self.state.find(task.pod.cluster, "secrets", task.pod.namespace, str(name))
            if obj is None:
                missing.append(str(name))
            else:
                found.append(obj)
        if missing:
            self._tell(task, pod, "FailedToRetrieveImagePullSecret",
                       "Unable to retrieve some image pull secrets (" + ", ".join(missing)
                       + "); attempting to pull the image may not succeed.")
        return [secret.pull_credentials(c["image"], found) for c in task.plan]

    # ---- the start: before any container
    async def prepare(self, tid: str, on_wait: Callable[[], None]) -> str | None:
        """Write a pod's config volumes once everything they and its containers' variables
        name is there, waiting (without the start's turn) as long as it is not; returns at
        once when the task is stopped. Why the start fails, if it does."""
        try:
            while True:
                task = self.book.fresh(tid)
                if task.stopping or task.pod is None:
                    return None
                pod = self._pod(task)
                if pod is None:  # deleted meanwhile: its task is being stopped
                    await self.book.wait(tid, WAIT)
                    continue
                self._waiting[tid] = (task.pod.cluster, task.pod.namespace)
                try:
                    files = self._render(task, pod)
                    blocked = self._env_errors(task, pod)
                except Missing as err:
                    self._tell(task, pod, "FailedMount", str(err))
                    blocked = {}
                    files = None
                self._mark(task, blocked)
                if files is not None and not blocked:
                    await self._write(tid, files)
                    return None
                on_wait()  # another task may start meanwhile
                await self.book.wait(tid, WAIT)
        finally:
            self._waiting.pop(tid, None)

    def _env_errors(self, task: Task, pod: dict[str, Any]) -> dict[str, str]:
        out = {}
        spec = pod["spec"]
        for c in (spec.get("initContainers") or []) + spec["containers"]:
            if not podvolumes.uses_objects(c):
                continue
            try:
                podvolumes.container_env(c, self._sources(task, pod))
            except Missing as err:
                out[c["name"]] = str(err)
                self._tell(task, pod, "Failed", f"Error: {err}")
        return out

    def _mark(self, task: Task, blocked: dict[str, str]) -> None:
        """The containers waiting on their variables say why (the pod's status shows it)."""
        task = self.book.fresh(task.id)
        changed = False
        for c in task.containers:
            want = f"{CONFIG_ERROR}: {blocked[c.name]}"[:1024] if c.name in blocked else None
            if want is None and not (c.reason or "").startswith(CONFIG_ERROR):
                continue
            if c.reason != want:
                c.reason, changed = want, True
        if changed:
            task.bump()
            self.book.save(task)

    def _tell(self, task: Task, pod: dict[str, Any], reason: str, message: str) -> None:
        told = self._told.setdefault(task.id, set())
        if message in told:
            return
        told.add(message)
        assert task.pod is not None
        self.state.record_event(task.pod.cluster, pod, "Warning", reason, message, "kubelet")

    async def _write(self, tid: str, files: dict[str, list[VolumeFile]]) -> None:
        written = self._written.setdefault(tid, {})
        for name, content in files.items():
            digest = _digest(content)
            if written.get(name) == digest:
                continue
            await asyncio.to_thread(self.runtime.write_volume, tid, name, content)
            written[name] = digest

    # ---- each container, at its creation
    def extras(self, task: Task, cdef: ContainerDef, config: dict[str, Any],
               spec: ContainerSpec) -> ContainerSpec:
        """The container's mounts, and a pod container's variables from ConfigMaps and
        Secrets as they are now (read again at each restart, as kubelet does)."""
        mounts = podvolumes.task_mounts(task.plan, cdef, config.get("Volumes"))
        env = dict(spec.env)
        pod = self._pod(task)
        if pod is not None:
            spec_ = pod["spec"]
            c = next((x for x in (spec_.get("initContainers") or []) + spec_["containers"]
                      if x.get("name") == cdef["name"]), None)
            if c is not None and podvolumes.uses_objects(c):
                sources = self._sources(task, pod)
                try:
                    env.update(podvolumes.container_env(c, sources))
                except Missing as err:
                    raise ApiError(f"{CONFIG_ERROR}: {err}") from None
                if sources.invalid_env:
                    self._tell(task, pod, "InvalidEnvironmentVariableNames", "Keys ["
                               + ", ".join(sources.invalid_env) + "] from the EnvFrom were "
                               "skipped since they are considered invalid environment "
                               "variable names.")
            if c is not None:
                env, args = varexpand.container_expansion(c, env, list(spec.args))
                return dataclasses.replace(spec, env=env, args=args, volume_mounts=mounts)
        return dataclasses.replace(spec, env=env, volume_mounts=mounts)

    # ---- while it runs
    def _changed(self, cluster: str, change: Change) -> None:
        """A ConfigMap, Secret or account written: the pods waiting in its namespace look
        again, and the files of running ones follow within a pass. (Pods are written far
        more often, by their status: their labels reach downward API files by REFRESH.)"""
        if change.resource in ("configmaps", "secrets", "serviceaccounts"):
            for tid, (c, ns) in list(self._waiting.items()):
                if c == cluster and ns == change.ns:
                    self.book.poke(tid)
            self.loop.poke()

    async def _refresh(self) -> None:
        """Every running pod's config volumes rendered again; what changed is written (an
        object gone or a key missing leaves the files as they were, as kubelet does). And
        its emptyDirs' usage, against their sizeLimit."""
        live = set()
        for task in self.active():
            if task.pod is None or task.stopping:
                continue
            live.add(task.id)
            if task.last_status != "RUNNING" and task.id not in self._written:
                continue  # not started yet: prepare writes it
            pod = self._pod(task)
            if pod is None:
                continue
            try:
                if podvolumes.config_volumes(pod["spec"]):
                    try:
                        files = self._render(task, pod)
                    except Missing:
                        files = {}
                    await self._write(task.id, files)
                if task.last_status == "RUNNING":
                    await self._check_usage(task, pod)
            except Exception:  # noqa: BLE001 - one task's trouble must not stop the others
                log.exception("task %s: refreshing its volumes", task.id)
        for tid in [t for t in self._measured if t not in live]:
            self._measured.pop(tid, None)
        for tid in [t for t in self._written if t not in live and t not in self._waiting]:
            self.forget(tid)

    async def _check_usage(self, task: Task, pod: dict[str, Any]) -> None:
        """kubelet's eviction of a pod whose emptyDir outgrew its sizeLimit: stopped at
        once, Failed with reason Evicted."""
        limits = podvolumes.disk_limits(pod["spec"])
        now = time.monotonic()
        if not limits or now - self._measured.get(task.id, 0.0) < USAGE_EVERY:
            return
        self._measured[task.id] = now
        for name, (limit, given) in limits.items():
            used = await asyncio.to_thread(self.runtime.volume_usage, task.id, name)
            if used <= limit:
                continue
            message = f'Usage of EmptyDir volume "{name}" exceeds the limit "{given}". '
            fresh = self.book.fresh(task.id)
            fresh.stop_timeout = 0
            if lifecycle.request_stop(fresh, "TerminationNotice", f"{EVICTED}{message}"[:255],
                                      time.time()):
                self.book.save(fresh)
                self.book.poke(task.id)
                self._tell(fresh, pod, "Evicted", message)
            return

    def forget(self, tid: str) -> None:
        self._written.pop(tid, None)
        self._told.pop(tid, None)
        for key in [k for k in self._tokens if k[0] == tid]:
            self._tokens.pop(key, None)

    def start(self) -> None:
        self.loop.start()

    async def close(self) -> None:
        await self.loop.close()
