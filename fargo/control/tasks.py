"""The task reconciler: drives each task from PROVISIONING to STOPPED against the host agent.

Every transition is written to the store before the next step acts, so a restarted server
re-adopts tasks from the store plus what the runtime still holds."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from ..model import lifecycle, restarts
from ..model import task as taskmodel
from ..model.errors import ApiError, ConflictException, InvalidParameterException
from ..model.ipam import Ipam
from ..model.vpc import Vpc
from ..store.sqlite import Store
from .capacity import Capacity

log = logging.getLogger("fargo.tasks")
POLL = 0.05  # seconds between looks at conmon's exit files
SLOW_PULL_S = 2.0  # a start waiting longer than this on its pulls lets another start go
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
TOKEN_LIFETIME = 12 * 3600.0  # how long a RunTask clientToken is remembered


class TaskEngine:
    def __init__(self, store: Store, agent: Any, vpc: Vpc, capacity: Capacity,
                 retention: float = 3600.0,
                 credentials: Callable[[str], tuple[str, str]] | None = None,
                 hooks: Any = None, networks: Any = None, start_concurrency: int = 6):
        self.store = store
        self.agent = agent
        self.vpc = vpc
        self.capacity = capacity
        # control/network.Networks: user-made subnets and security groups (None: default only)
        self.networks = networks
        self.subnets = networks.subnets if networks else {s.id: s for s in vpc.subnets}
        self._wake: dict[str, asyncio.Event] = {}
        self._drivers: dict[str, asyncio.Task] = {}
        self._watch: dict[str, set[str]] = {}  # task id -> names of containers running
        self._used_ips: set[str] = set()
        # Pods only: containers waiting to be re-created (task id -> name -> monotonic due
        # time) and the images each task's containers came from.
        self._restarts: dict[str, dict[str, float]] = {}
        self._images: dict[str, dict[str, Any]] = {}
        self._monitor: asyncio.Task | None = None
        self._sweeper: asyncio.Task | None = None
        self.retention = retention
        self.credentials = credentials
        # Told when a task's network comes and goes (the metadata endpoint lives there).
        self.hooks = hooks
        # A few starts at a time, each to its end. Unbounded, a burst of n tasks queued every
        # task's first steps (network, storage) before any task's next ones on the shared
        # thread pool: no container was created until all n were half-made, and the server's
        # work and runc's did not overlap. A start holds its turn until its containers are
        # created, or until it waits on a dependency's exit.
        self._start_turns = asyncio.Semaphore(start_concurrency)
        self._turns: dict[str, bool] = {}  # task id -> holds a turn
        # task id -> the pulls its RunTask call shares, (image, auth) -> future
        self._call_pulls: dict[str, dict[Any, Any]] = {}

    # ---- start and stop of the engine itself
    async def start(self) -> None:
        for task in self.store.active_tasks():
            self._used_ips.add(task["_fargo"]["ip"])
            self.capacity.reserve(task["taskArn"], int(task["cpu"]), int(task["memory"]))
            self._spawn(task, adopt=True)
        self._monitor = asyncio.create_task(self._watch_exits())
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def close(self) -> None:
        """Leave tasks running (they outlive the server); stop only our coroutines."""
        for t in [self._monitor, self._sweeper, *self._drivers.values()]:
            if t:
                t.cancel()
        await asyncio.gather(*[t for t in self._drivers.values()], return_exceptions=True)

    # ---- API operations
    def run_task(self, *, td: dict[str, Any], cluster: dict[str, Any], region: str,
                 req: dict[str, Any]) -> dict[str, Any]:
        provider = taskmodel.check_launch(req)
        taskmodel.check_lengths(req)
        taskmodel.require_fargate(td)
        count = taskmodel.check_count(req.get("count"))
        overrides = req.get("overrides") or {}
        cpu, mem = taskmodel.apply_overrides(td, overrides)
        subnets = self._subnets(req)
        groups = self._groups(req, subnets)
        token = req.get("clientToken")
        if token:
            canon = json.dumps({k: v for k, v in req.items() if k != "clientToken"},
                               sort_keys=True)
            seen = self.store.get_token(token)
            if seen:
                if seen[0] != canon:
                    raise ConflictException(
                        "The clientToken was already used with different parameters.")
                arns, failures = seen[1]["arns"], seen[1]["failures"]
                found = self.store.get_tasks([a.rsplit("/", 1)[-1] for a in arns])
                return {"tasks": [taskmodel.public_view(t) for t in found.values()],
                        "failures": failures}
        tasks, failures = [], []
        now = time.time()
        for _ in range(count):
            if not self.capacity.fits(cpu, mem):
                failures.append({"arn": td["taskDefinitionArn"],
                                 "reason": "Capacity is unavailable at this time. Please try "
                                 "again later or in a different availability zone",
                                 "detail": self.capacity.describe()})
                continue
            subnet, ip = self._allocate(subnets)
            if ip is None:
                failures.append({"arn": td["taskDefinitionArn"],
                                 "reason": "RESOURCE:ENI",
                                 "detail": "No free private IP address in the given subnets"})
                continue
            try:
                task = taskmodel.new_task(
                    td=td, cluster_arn=cluster["clusterArn"], region=region, cpu=cpu,
                    memory=mem, overrides=overrides, subnet=subnet, ip=ip,
                    group=req.get("group"), started_by=req.get("startedBy"), now=now,
                    capacity_provider=provider)
            except BaseException:
                self._used_ips.discard(ip)  # nothing holds it yet
                raise
            task["_fargo"]["groups"] = groups
            self.capacity.reserve(task["taskArn"], cpu, mem)
            self.store.put_task(task)
            tasks.append(task)
        if token:
            self.store.put_token(token, canon, {"arns": [t["taskArn"] for t in tasks],
                                                "failures": failures}, now)
        # One call's tasks run one image: each tag is resolved (pulled) once for all of
        # them, as ECS resolves the tags of a service deployment once.
        shared: dict[Any, Any] = {}
        for task in tasks:
            self._spawn(task)
            if len(tasks) > 1:
                self._call_pulls[taskmodel.task_id_of(task)] = shared
        return {"tasks": [taskmodel.public_view(t) for t in tasks], "failures": failures}

    def stop_task(self, task_id: str, reason: str | None,
                  code: str = "UserInitiated", grace: float | None = None) -> dict[str, Any]:
        task = self.store.get_task(task_id)
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        taskmodel.check_lengths({"reason": reason})
        if grace is not None and task["desiredStatus"] != "STOPPED":
            # A pod's terminationGracePeriodSeconds: every container's stop timeout.
            task["_fargo"]["stop_timeout"] = grace
            self.store.put_task(task)
        if lifecycle.request_stop(task, code, reason or "Task stopped by user", time.time()):
            self.store.put_task(task)
            self._poke(task_id)
        return taskmodel.public_view(task)

    def run_sized(self, *, td: dict[str, Any], cluster_arn: str, region: str, cpu: int,
                  memory: int, subnet_ids: list[str], private: dict[str, Any],
                  started_by: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """A task of exactly this size from a ready plan (a pod's): the task, or why not."""
        req = {"networkConfiguration": {"awsvpcConfiguration": {"subnets": subnet_ids}}}
        subnets = self._subnets(req)
        groups = self._groups(req, subnets)
        if not self.capacity.fits(cpu, memory):
            return None, "Capacity is unavailable at this time: " + self.capacity.describe()
        subnet, ip = self._allocate(subnets)
        if ip is None:
            return None, "No free private IP address in the given subnets"
        try:
            task = taskmodel.new_task(
                td=td, cluster_arn=cluster_arn, region=region, cpu=cpu, memory=memory,
                overrides={}, subnet=subnet, ip=ip, group=None, started_by=started_by,
                now=time.time(), capacity_provider=None)
        except BaseException:
            self._used_ips.discard(ip)
            raise
        task["_fargo"]["groups"] = groups
        task["_fargo"].update(private)
        self.capacity.reserve(task["taskArn"], cpu, memory)
        self.store.put_task(task)
        self._spawn(task)
        return task, None

    def _subnets(self, req: dict[str, Any]) -> list[Any]:
        conf = (req.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if not conf:
            raise InvalidParameterException(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
        ids = conf.get("subnets") or []
        if not ids:
            raise InvalidParameterException("subnets can not be empty.")
        if len(ids) > 16:
            raise InvalidParameterException("At most 16 subnets can be given.")
        missing = [s for s in ids if s not in self.subnets]
        if missing:
            raise InvalidParameterException(
                f"Error retrieving subnet information for [{str(missing[0])[:64]}]: "
                f"The subnet ID '{str(missing[0])[:64]}' does not exist")
        return [self.subnets[s] for s in ids]

    def _groups(self, req: dict[str, Any], subnets: list[Any]) -> list[str]:
        """The security groups the task's interface carries: those named, or the default."""
        conf = req["networkConfiguration"]["awsvpcConfiguration"]
        named = list(conf.get("securityGroups") or [])
        if self.networks:
            return self.networks.task_groups(named, subnets)
        for sg in named:
            if sg != self.vpc.default_sg:
                raise InvalidParameterException(
                    f"Error retrieving security group information for [{str(sg)[:64]}]: "
                    f"The security group '{str(sg)[:64]}' does not exist")
        return [self.vpc.default_sg]

    def _allocate(self, subnets: list[Any]) -> tuple[Any, str | None]:
        for subnet in subnets:
            ip = Ipam.pick(subnet.cidr, self._used_ips)
            if ip:
                self._used_ips.add(ip)
                return subnet, ip
        return subnets[0], None

    # ---- the reconciler
    def _spawn(self, task: dict[str, Any], adopt: bool = False) -> None:
        tid = taskmodel.task_id_of(task)
        self._wake[tid] = asyncio.Event()
        self._drivers[tid] = asyncio.create_task(self._drive(tid, adopt))

    def _poke(self, tid: str) -> None:
        ev = self._wake.get(tid)
        if ev:
            ev.set()

    def _save(self, task: dict[str, Any]) -> None:
        self.store.put_task(task)

    def _advance(self, task: dict[str, Any], status: str) -> None:
        if lifecycle.advance(task, status, time.time()):
            self._save(task)

    def _fresh(self, tid: str) -> dict[str, Any]:
        """Re-read the record: StopTask may have changed desiredStatus meanwhile."""
        task = self.store.get_task(tid)
        assert task is not None
        return task

    async def _drive(self, tid: str, adopt: bool) -> None:
        try:
            task = self._fresh(tid)
            if lifecycle.RANK[task["lastStatus"]] < lifecycle.RANK["RUNNING"]:
                if adopt:
                    # Half-made sandboxes cannot be trusted after a crash: fail the start,
                    # but stop what did start properly.
                    lifecycle.request_stop(task, "TaskFailedToStart",
                                           "ResourceInitializationError: the server restarted "
                                           "while the task was starting", time.time())
                    self._save(task)
                    self._watch_started(task)
                else:
                    task = await self._start_in_turn(tid)
            if adopt and lifecycle.RANK[task["lastStatus"]] >= lifecycle.RANK["RUNNING"]:
                # Also when it was already stopping: its containers still need a proper stop.
                await self._adopt_running(task)
            if task["lastStatus"] == "RUNNING":
                task = await self._run(tid)
            await self._teardown(tid)
        except Exception:  # a bug must not leave the task half-way forever
            log.exception("task %s failed in the reconciler", tid)
            task = self._fresh(tid)
            lifecycle.request_stop(task, "TaskFailedToStart",
                                   "ResourceInitializationError: internal error in fargo",
                                   time.time())
            self._save(task)
            await self._teardown(tid)
        finally:
            self._wake.pop(tid, None)
            self._drivers.pop(tid, None)
            self._call_pulls.pop(tid, None)  # stopped before its start began

    async def _start_in_turn(self, tid: str) -> dict[str, Any]:
        try:
            if not await self._take_turn(tid):
                return self._fresh(tid)  # stopped while it waited: it never starts
            return await self._start(self._fresh(tid))
        finally:
            self._end_turn(tid)

    async def _take_turn(self, tid: str) -> bool:
        """Wait for a turn; False if the task is stopped meanwhile (StopTask wakes it)."""
        acquire = asyncio.ensure_future(self._start_turns.acquire())
        try:
            await self._until_stopped(tid, acquire)
        except asyncio.CancelledError:
            if acquire.done() and not acquire.cancelled():
                self._start_turns.release()  # got it just as we were cancelled
            else:
                acquire.cancel()
            raise
        if not acquire.done():
            acquire.cancel()  # stopped: the semaphore passes on a turn it was about to give
            return False
        self._turns[tid] = True
        return True

    def _end_turn(self, tid: str) -> None:
        if self._turns.pop(tid, False):
            self._start_turns.release()

    async def _off_turn(self, tid: str, pending: Any) -> Any | None:
        """pending's result (a pull's), or None when the task is stopped first (StopTask wakes
        it). The turn is given up if that takes long: a slow registry must not keep other
        tasks from starting (a quick one keeps its place in the queue)."""
        gave_up = False
        if self._turns.get(tid) and not await self._until_stopped(tid, pending, SLOW_PULL_S):
            self._end_turn(tid)
            gave_up = True
        if not await self._until_stopped(tid, pending):
            return None
        if gave_up and not await self._take_turn(tid):
            return None
        return pending.result()

    async def _until_stopped(self, tid: str, pending: Any,
                             timeout: float | None = None) -> bool:
        """Wait until pending is done, the task is stopped, or timeout: True if it is done."""
        ev = self._wake.get(tid)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending.done() and self._fresh(tid)["desiredStatus"] != "STOPPED":
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if ev is None:
                await asyncio.wait({pending}, timeout=left)
            else:
                ev.clear()
                await _done_or_set(pending, ev, left)
        return pending.done()

    async def _start(self, task: dict[str, Any]) -> dict[str, Any]:
        """Network, images and the sandbox's cgroups and storage do not depend on each other:
        the pulls and the sandbox are set going first and run while the interface is made."""
        tid = taskmodel.task_id_of(task)
        priv = task["_fargo"]
        plan = priv["plan"]
        try:
            creds = [self._registry_auth(c) for c in plan]
        except ApiError as err:
            return self._fail_start(tid, "ResourceInitializationError: unable to pull secrets "
                                    f"or registry auth: {err.message}"[:255])
        pull_started = time.time()
        shared = self._call_pulls.pop(tid, {})
        for c, auth in zip(plan, creds, strict=True):
            done = shared.get((c["image"], auth))
            if done is not None and done.done() and (done.cancelled() or done.exception()):
                del shared[c["image"], auth]  # a failed pull is tried again, not passed on
            if (c["image"], auth) not in shared:
                shared[c["image"], auth] = asyncio.ensure_future(
                    asyncio.to_thread(self.agent.pull, c["image"], auth))
        # Shielded: a task cancelled mid-pull must not cancel its call's other tasks' pull.
        pulls = asyncio.gather(*[asyncio.shield(shared[c["image"], auth])
                                 for c, auth in zip(plan, creds, strict=True)],
                               return_exceptions=True)
        abandon = asyncio.Event()
        sandbox = asyncio.ensure_future(self._prepare_sandbox(task, plan, pulls, abandon))
        try:
            return await self._start_after_network(tid, task, pulls, sandbox, pull_started)
        finally:
            # Whatever happened, nothing may still be making this task's sandbox when teardown
            # comes: wait for that (its errors are handled below/above), without a turn. A
            # start that ended before its pulls (stopped, failed) does not wait for them: they
            # go on filling the image store, and no rootfs is mounted from them.
            self._end_turn(tid)
            abandon.set()  # whatever of it is still to come is not needed any more
            await asyncio.gather(sandbox, return_exceptions=True)

    async def _prepare_sandbox(self, task: dict[str, Any], plan: list[dict[str, Any]],
                               pulls: Any, abandon: asyncio.Event) -> None:
        """The sandbox's cgroups and storage, then each container's rootfs once its image is
        in (unless the start is abandoned first): all of it while the network interface is
        being made."""
        tid = taskmodel.task_id_of(task)
        await asyncio.to_thread(self.agent.create_sandbox, tid, int(task["cpu"]),
                                int(task["memory"]), int(task["ephemeralStorage"]["sizeInGiB"]))
        if not pulls.done() and not abandon.is_set():
            await _done_or_set(pulls, abandon)
        if abandon.is_set() or not pulls.done():
            return
        for c, res in zip(plan, pulls.result(), strict=True):
            if abandon.is_set():
                return
            if not isinstance(res, BaseException):  # a failed pull is reported by the caller
                await asyncio.to_thread(self.agent.prepare_rootfs, tid, c["name"], res)

    async def _start_after_network(self, tid: str, task: dict[str, Any], pulls: Any,
                                   sandbox: Any, pull_started: float) -> dict[str, Any]:
        priv = task["_fargo"]
        plan = priv["plan"]
        subnet = self.subnets[priv["subnet"]]
        try:
            if self.networks:  # into its groups before its interface exists: never unfiltered
                await asyncio.to_thread(self.networks.task_up, tid, priv["ip"],
                                        priv.get("groups") or [])
            att = await asyncio.to_thread(self.agent.attach_network, tid, subnet, priv["ip"])
        except Exception as err:  # noqa: BLE001 - any failure here is a failed start
            return self._fail_start(tid, f"ResourceInitializationError: {err}")
        if self.hooks:
            try:
                await self.hooks.network_ready(tid)
            except Exception as err:  # noqa: BLE001
                log.exception("task %s: metadata endpoint", tid)
                return self._fail_start(tid, f"ResourceInitializationError: {err}"[:255])
        task = self._fresh(tid)
        taskmodel.set_attachment(task, "ATTACHED", att.mac)
        self._advance(task, "PENDING")
        if task["desiredStatus"] == "STOPPED":
            return task
        self._advance(task, "ACTIVATING")
        task["pullStartedAt"] = pull_started  # when the pulls really began
        self._save(task)
        results = await self._off_turn(tid, pulls)
        if results is None:  # stopped while its images were still coming
            return self._fresh(tid)
        task = self._fresh(tid)
        task["pullStoppedAt"] = time.time()
        images = {}
        for c, res, entry in zip(plan, results, task["containers"], strict=True):
            if isinstance(res, BaseException):
                entry["reason"] = f"CannotPullContainerError: {res}"[:1024]
                self._save(task)
                return self._fail_start(tid, f"CannotPullContainerError: {res}"[:255])
            images[c["name"]] = res
            entry["imageDigest"] = res.digest
        self._save(task)
        if task["desiredStatus"] == "STOPPED":
            return task
        try:
            await sandbox
            self._images[tid] = images
            ok = await self._start_containers(tid, plan, images)
        except Exception as err:  # noqa: BLE001
            log.exception("task %s: container start failed", tid)
            return self._fail_start(tid, f"CannotStartContainerError: {err}"[:255])
        task = self._fresh(tid)
        if ok:
            self._advance(task, "RUNNING")
        return task

    def _registry_auth(self, cdef: dict[str, Any]) -> tuple[str, str] | None:
        param = (cdef.get("repositoryCredentials") or {}).get("credentialsParameter")
        if not param:
            return None
        if self.credentials is None:
            raise ApiError("no secrets store is configured")
        return self.credentials(param)

    def _fail_start(self, tid: str, reason: str) -> dict[str, Any]:
        task = self._fresh(tid)
        lifecycle.request_stop(task, "TaskFailedToStart", reason, time.time())
        self._save(task)
        return task

    async def _start_containers(self, tid: str, plan: list[dict[str, Any]],
                                images: dict[str, Any]) -> bool:
        """Start containers in dependsOn order. Returns False if the start was abandoned."""
        started: set[str] = set()
        pending = [c["name"] for c in plan]
        by_name = {c["name"]: c for c in plan}
        while pending:
            task = self._fresh(tid)
            if task["desiredStatus"] == "STOPPED":
                return False
            states = {c["name"]: c for c in task["containers"]}
            ready, failed = [], None
            for name in pending:
                verdict = self._deps_met(by_name[name], states)
                if verdict is True:
                    ready.append(name)
                elif verdict is None:
                    failed = name
            if failed:
                self._fail_start(tid, f"CannotStartContainerError: a dependency of container "
                                      f"'{failed}' did not succeed")
                return False
            for name in ready:
                await asyncio.to_thread(self.agent.create_container, tid, by_name[name],
                                        images[name], self._task_env(task, name))
                await asyncio.to_thread(self.agent.start_container, tid, name)
                task = self._fresh(tid)
                entry = states_entry(task, name)
                entry["lastStatus"] = "RUNNING"
                entry["runtimeId"] = f"{tid}-{name}"
                _note_start(task, name)
                task["version"] += 1
                self._save(task)
                started.add(name)
                self._watch.setdefault(tid, set()).add(name)
                pending.remove(name)
            if pending and not ready:
                # Waiting on COMPLETE/SUCCESS dependencies (maybe for long): another task
                # may have this one's turn. Let exits be recorded meanwhile.
                self._end_turn(tid)
                await self._wait(tid, POLL * 4)
                await self._record_exits(tid)
                await self._do_restarts(tid)
        return True

    @staticmethod
    def _deps_met(cdef: dict[str, Any], states: dict[str, dict[str, Any]]) -> bool | None:
        """True when every dependency holds, False to keep waiting, None when one never will."""
        for dep in cdef.get("dependsOn") or []:
            other = states[dep["containerName"]]
            cond = dep["condition"]
            if cond in ("START", "HEALTHY"):
                if other["lastStatus"] == "PENDING":
                    return False
            elif other["lastStatus"] != "STOPPED":
                return False
            elif cond == "SUCCESS" and other.get("exitCode") != 0:
                return None
        return True

    def _task_env(self, task: dict[str, Any], name: str) -> dict[str, str]:
        """What Fargate sets in every container (FARGATE.md section 5)."""
        region = task["taskArn"].split(":")[3]
        tid = taskmodel.task_id_of(task)
        uri = f"http://169.254.170.2/v4/{tid}-{name}"
        env = {"AWS_EXECUTION_ENV": "AWS_ECS_FARGATE", "AWS_REGION": region,
               "AWS_DEFAULT_REGION": region, "ECS_CONTAINER_METADATA_URI_V4": uri,
               "ECS_CONTAINER_METADATA_URI": uri.replace("/v4/", "/v3/")}
        if task["_fargo"].get("role"):
            env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = (
                f"/v2/credentials/{task['_fargo']['credentials_id']}")
        return env

    async def _wait(self, tid: str, timeout: float) -> None:
        ev = self._wake.get(tid)
        if ev is None:
            await asyncio.sleep(timeout)
            return
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass
        ev.clear()

    async def _adopt_running(self, task: dict[str, Any]) -> None:
        tid = taskmodel.task_id_of(task)
        if self.hooks:
            try:
                await self.hooks.network_ready(tid)
            except Exception:  # noqa: BLE001 - the task runs on without its endpoint
                log.exception("task %s: reopening the metadata endpoint", tid)
        self._watch_started(task)
        self._resume_restarts(task)
        await self._record_exits(tid)

    def _watch_started(self, task: dict[str, Any]) -> None:
        tid = taskmodel.task_id_of(task)
        for c in task["containers"]:
            if c["lastStatus"] == "RUNNING":
                self._watch.setdefault(tid, set()).add(c["name"])

    async def _run(self, tid: str) -> dict[str, Any]:
        while True:
            await self._record_exits(tid)
            await self._do_restarts(tid)
            task = self._fresh(tid)
            if task["desiredStatus"] == "STOPPED":
                return task
            await self._wait(tid, self._next_restart(tid, 5.0))

    async def _record_exits(self, tid: str) -> None:
        """Write down containers that ended; an essential one ending stops the task."""
        names = self._watch.get(tid) or set()
        done = [n for n in names if self.agent.exited(tid, n)]
        if not done:
            return
        # Reading results runs runc and cgroup reads: off the loop, then one atomic update.
        results = await asyncio.to_thread(lambda: {n: self.agent.result(tid, n) for n in done})
        task = self._fresh(tid)
        plan = {c["name"]: c for c in task["_fargo"]["plan"]}
        now = time.time()
        for name in done:
            names.discard(name)
            code, oom = results[name]
            if self._restart_later(task, name, code, oom, now):
                continue
            entry = states_entry(task, name)
            entry["lastStatus"] = "STOPPED"
            if code is not None:
                entry["exitCode"] = code
            else:
                entry["reason"] = ("CannotInspectContainerError: the container's monitor "
                                   "ended without recording an exit code")
            if oom:
                entry["reason"] = OOM_REASON
            task["version"] += 1
            if plan[name].get("essential", True) and task["desiredStatus"] != "STOPPED":
                lifecycle.request_stop(task, "EssentialContainerExited",
                                       "Essential container in task exited", now)
        _pod_finished(task, now)
        self._save(task)

    # ---- pods' restartPolicy (ECS tasks carry no "restart" in _fargo: none of this applies)
    def _restart_later(self, task: dict[str, Any], name: str, code: int | None, oom: bool,
                       now: float) -> bool:
        """Note a pod container's exit; True when its policy brings it back (after a
        back-off), False when it stays stopped."""
        policy = task["_fargo"].get("restart")
        if not policy:
            return False
        run = task["_fargo"].setdefault("runs", {}).setdefault(name, {})
        run.update(finishedAt=now, exitCode=code, oom=oom)
        if task["desiredStatus"] == "STOPPED" or not restarts.restart_wanted(policy, name, code):
            return False
        count = run.get("restartCount", 0) + 1
        delay = restarts.backoff(count)
        run.update(restartCount=count, restartAt=now + delay, last={
            "exitCode": code, "oom": oom, "startedAt": run.get("startedAt"), "finishedAt": now})
        states_entry(task, name)["lastStatus"] = "PENDING"
        task["version"] += 1
        tid = taskmodel.task_id_of(task)
        self._restarts.setdefault(tid, {})[name] = time.monotonic() + delay
        return True

    def _resume_restarts(self, task: dict[str, Any]) -> None:
        """After a server restart: containers that were waiting to come back, come back."""
        if not task["_fargo"].get("restart") or task["desiredStatus"] == "STOPPED":
            return
        tid = taskmodel.task_id_of(task)
        for name, run in (task["_fargo"].get("runs") or {}).items():
            if run.get("restartCount") and states_entry(task, name)["lastStatus"] == "PENDING":
                self._restarts.setdefault(tid, {})[name] = time.monotonic()

    def _next_restart(self, tid: str, longest: float) -> float:
        due = (self._restarts.get(tid) or {}).values()
        return min([longest, *[max(at - time.monotonic(), 0.0) for at in due]])

    async def _do_restarts(self, tid: str) -> None:
        """Re-create the containers whose back-off is over: delete, create, start."""
        due = self._restarts.get(tid) or {}
        for name in [n for n, at in list(due.items()) if at <= time.monotonic()]:
            due.pop(name, None)
            task = self._fresh(tid)
            if task["desiredStatus"] == "STOPPED":
                return
            cdef = next(c for c in task["_fargo"]["plan"] if c["name"] == name)
            try:
                image = (self._images.get(tid) or {}).get(name)
                if image is None:  # the server restarted since the pull
                    image = await asyncio.to_thread(self.agent.pull, cdef["image"],
                                                    self._registry_auth(cdef))
                    self._images.setdefault(tid, {})[name] = image
                await asyncio.to_thread(self.agent.remove_container, tid, name)
                await asyncio.to_thread(self.agent.create_container, tid, cdef, image,
                                        self._task_env(task, name))
                await asyncio.to_thread(self.agent.start_container, tid, name)
            except Exception as err:  # noqa: BLE001 - the pod fails, the engine goes on
                log.exception("task %s: restarting container %s", tid, name)
                task = self._fresh(tid)
                entry = states_entry(task, name)
                entry["lastStatus"] = "STOPPED"
                entry["reason"] = f"CannotStartContainerError: {err}"[:1024]
                lifecycle.request_stop(task, "EssentialContainerExited",
                                       f"CannotStartContainerError: {err}"[:255], time.time())
                self._save(task)
                return
            task = self._fresh(tid)
            states_entry(task, name)["lastStatus"] = "RUNNING"
            _note_start(task, name)
            task["version"] += 1
            self._save(task)
            self._watch.setdefault(tid, set()).add(name)

    async def _teardown(self, tid: str) -> None:
        """Best effort at every step: whatever fails is logged, and the task still reaches
        STOPPED with its IP and capacity given back."""
        task = self._fresh(tid)
        self._advance(task, "DEACTIVATING")
        self._advance(task, "STOPPING")
        await self._attempt(tid, "stopping containers", self._stop_containers(tid))
        task = self._fresh(tid)
        self._advance(task, "DEPROVISIONING")
        if self.hooks:
            await self._attempt(tid, "closing the metadata endpoint",
                                self.hooks.network_gone(tid))
        await self._attempt(tid, "removing the sandbox",
                            asyncio.to_thread(self.agent.destroy, tid))
        if self.networks:  # after the interface is gone, so it never lives unfiltered
            await self._attempt(tid, "leaving its security groups",
                                asyncio.to_thread(self.networks.task_down, tid))
        task = self._fresh(tid)
        taskmodel.set_attachment(task, "DELETED")
        for c in task["containers"]:
            c["lastStatus"] = "STOPPED"
        self._advance(task, "STOPPED")
        self._used_ips.discard(task["_fargo"]["ip"])
        self.capacity.release(task["taskArn"])
        self._watch.pop(tid, None)
        self._images.pop(tid, None)
        self._restarts.pop(tid, None)

    @staticmethod
    async def _attempt(tid: str, what: str, step: Any) -> None:
        try:
            await step
        except Exception:  # noqa: BLE001 - teardown goes on; the log says what was left
            log.exception("task %s: %s failed", tid, what)

    async def _stop_containers(self, tid: str) -> None:
        """Stop signal to each running container, SIGKILL after its stopTimeout."""
        self._restarts.pop(tid, None)  # a stopping pod brings nothing back
        await self._record_exits(tid)
        names = set(self._watch.get(tid) or set())
        if not names:
            return
        task = self._fresh(tid)
        plan = {c["name"]: c for c in task["_fargo"]["plan"]}
        deadline: dict[str, float] = {}
        now = time.monotonic()
        for name in names:
            await asyncio.to_thread(self.agent.signal, tid, name, None)
            timeout = task["_fargo"].get("stop_timeout", plan[name].get("stopTimeout"))
            deadline[name] = now + (30 if timeout is None else timeout)
        while True:
            await self._record_exits(tid)
            left = self._watch.get(tid) or set()
            if not left:
                return
            now = time.monotonic()
            for name in list(left):
                if now >= deadline[name]:
                    await asyncio.to_thread(self.agent.signal, tid, name, "SIGKILL")
                    deadline[name] = now + 3600
            await asyncio.sleep(POLL)

    def sweep(self, now: float | None = None) -> int:
        """Forget tasks stopped longer ago than the retention (AWS keeps them about an hour),
        with their logs and files."""
        now = now or time.time()
        self.store.drop_tokens(now - TOKEN_LIFETIME)
        ids = self.store.stopped_before(now - self.retention)
        if ids:
            docs = self.store.get_tasks(ids)
            # Files first: once DescribeTasks says MISSING, the task's logs are gone too.
            for tid in ids:
                try:
                    self.agent.forget(tid)
                except Exception:  # noqa: BLE001 - the others are still forgotten
                    log.exception("forgetting task %s", tid)
            self.store.delete_tasks(ids, [d["taskArn"] for d in docs.values()])
        return len(ids)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, max(self.retention / 4, 1.0)))
            try:
                await asyncio.to_thread(self.sweep)
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("sweeping stopped tasks")

    async def _watch_exits(self) -> None:
        """One loop for the whole host: notice exit files and wake the tasks they belong to."""
        while True:
            await asyncio.sleep(POLL)
            try:
                for tid, names in list(self._watch.items()):
                    if any(self.agent.exited(tid, n) for n in list(names)):
                        self._poke(tid)
            except Exception:  # noqa: BLE001 - this loop must outlive any one bad reading
                log.exception("watching container exits")


async def _done_or_set(pending: Any, event: asyncio.Event, timeout: float | None = None) -> None:
    """Wait until pending is done or event is set (or timeout), cancelling neither."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({pending, waiter}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


def _note_start(task: dict[str, Any], name: str) -> None:
    """Pods report when each container (re)started."""
    if task["_fargo"].get("restart"):
        run = task["_fargo"].setdefault("runs", {}).setdefault(name, {})
        run["startedAt"] = time.time()
        run.pop("restartAt", None)


def _pod_finished(task: dict[str, Any], now: float) -> None:
    """A pod ends when every app container has stopped for good (its policy brings none
    back); ECS tasks end by their essential containers instead."""
    policy = task["_fargo"].get("restart")
    if not policy or task["desiredStatus"] == "STOPPED":
        return
    init = set(policy.get("init") or [])
    apps = [c for c in task["containers"] if c["name"] not in init]
    if apps and all(c["lastStatus"] == "STOPPED" for c in apps):
        lifecycle.request_stop(task, "EssentialContainerExited",
                               "All containers of the pod exited", now)


def states_entry(task: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in task["containers"] if c["name"] == name)
