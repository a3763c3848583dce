"""fargo driven as a user drives it: boto3 against the ECS face, plus pre-signed raw HTTP for
the API throughput figure (so the client's own parsing does not cap what we measure)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from .env import IDLE, FargoServer, await_term_trap, log

POLL_S = 0.005  # between DescribeTasks polls while waiting for one task's status
BATCH_POLL_S = 0.05  # ... for many: each poll of 100 tasks costs the shared CPUs a few ms
# Figures 1 and 3 time a start or stop by the server's own stamp of the status (startedAt,
# stoppedAt, on this machine's clock), so they can poll seldom: polling every 5 ms took ~20 ms
# of CPU from a ~70 ms start on two cores (p50 98 against 82 ms, alternated in one server).
# Their first poll also waits one interval: one sent as RunTask returns landed in the first
# milliseconds of every start, the busiest, and its CPU (the server's SigV4 check and render,
# boto3's parse) was taken from the start being measured, which the peers' waits never do.
STAMPED_POLL_S = 0.05
LAUNCH_POLL_S = 0.2  # figure 2 likewise, by the last startedAt
ECS_TARGET = "AmazonEC2ContainerServiceV20141113"


def task_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


class FargoBench:
    def __init__(self, server: FargoServer, image: str):
        self.server = server
        self.image = image
        self.ecs = server.client("ecs")
        self.subnet = server.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
        self.family = self.register(image)
        self.phases: list[dict[str, float]] = []  # server-side stamps of each measured start
        import requests

        # Polls go over raw signed HTTP and the C JSON parser: botocore spends ~15 ms of CPU
        # parsing 100 tasks, which on two cores would be taken from the server being measured.
        self._poll_session = requests.Session()

    def register(self, image: str, command: list[str] | None = None,
                 environment: dict[str, str] | None = None, family: str | None = None) -> str:
        family = family or "bench" + uuid.uuid4().hex[:8]
        self.ecs.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
            cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": image,
                                   "command": command or IDLE,
                                   "environment": [{"name": k, "value": v} for k, v in
                                                   (environment or {}).items()]}])
        return family

    def run(self, count: int = 1, family: str | None = None,
            cluster: str | None = None) -> list[str]:
        extra = {"cluster": cluster} if cluster else {}
        out = self.ecs.run_task(
            taskDefinition=family or self.family, launchType="FARGATE", count=count,
            networkConfiguration={"awsvpcConfiguration": {"subnets": [self.subnet]}}, **extra)
        if out["failures"]:
            raise RuntimeError(f"RunTask failures: {out['failures'][:2]}")
        return [t["taskArn"] for t in out["tasks"]]

    def call(self, action: str, params: dict[str, Any], session: Any = None) -> dict[str, Any]:
        """One ECS call over raw signed HTTP, its JSON answer (timestamps stay epoch seconds);
        another thread passes a requests.Session of its own."""
        body, headers = self.signed(action, params)
        r = (session or self._poll_session).post(self.server.endpoint + "/", data=body, headers=headers,
                                    timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"{action}: HTTP {r.status_code}: {r.text[:300]}")
        out: dict[str, Any] = r.json()
        return out

    def describe(self, arns: list[str], cluster: str | None = None) -> list[dict[str, Any]]:
        """DescribeTasks (raw), 100 at a time."""
        found: list[dict[str, Any]] = []
        extra = {"cluster": cluster} if cluster else {}
        for i in range(0, len(arns), 100):
            found += self.call("DescribeTasks", {"tasks": arns[i:i + 100], **extra})["tasks"]
        return found

    def wait(self, arns: list[str], status: str, timeout: float = 120,
             cluster: str | None = None, poll: float | None = None,
             first_after: float = 0.0) -> list[dict[str, Any]]:
        """Poll until every task reached `status`; a task that stops on the way is an error.
        first_after: seconds before the first poll."""
        deadline = time.monotonic() + timeout
        time.sleep(first_after)
        pending = list(arns)
        done: list[dict[str, Any]] = []
        while pending:
            for t in self.describe(pending, cluster):
                if t["lastStatus"] == status:
                    done.append(t)
                    pending.remove(t["taskArn"])
                elif t["lastStatus"] == "STOPPED":
                    raise RuntimeError(f"task {task_id(t['taskArn'])} stopped: "
                                       f"{t.get('stoppedReason')}")
            if not pending:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} tasks never reached {status}")
            time.sleep(poll or (POLL_S if len(arns) == 1 else BATCH_POLL_S))
        return done

    # -- figures 1 and 3

    def start_one(self) -> tuple[float, str]:
        """Seconds from RunTask until the task was RUNNING (its startedAt); the task's ARN."""
        t0 = time.time()
        arn = self.run()[0]
        task = self.wait([arn], "RUNNING", poll=STAMPED_POLL_S, first_after=STAMPED_POLL_S)[0]
        self.phases.append(phase_stamps(task))
        return stamped(task, "startedAt", t0), arn

    def stop_one(self, arn: str) -> float:
        """Seconds from StopTask until the task was STOPPED (its stoppedAt)."""
        await_term_trap(next(iter(self.container_pids([arn])), None))
        t0 = time.time()
        self.ecs.stop_task(task=arn, reason="bench")
        return stamped(self.wait([arn], "STOPPED", poll=STAMPED_POLL_S,
                                 first_after=STAMPED_POLL_S)[0], "stoppedAt", t0)

    # -- figure 2

    def launch(self, calls: int, count: int,
               cluster: str | None = None) -> tuple[float, list[str]]:
        """`calls` RunTask calls of `count` back to back; seconds until all were RUNNING (the
        last startedAt)."""
        t0 = time.time()
        arns: list[str] = []
        for _ in range(calls):
            arns += self.run(count, cluster=cluster)
        tasks = self.wait(arns, "RUNNING", timeout=600, cluster=cluster, poll=LAUNCH_POLL_S)
        return max(stamped(t, "startedAt", t0) for t in tasks), arns

    def stop_all(self, arns: list[str], timeout: float = 300,
                 cluster: str | None = None) -> float:
        t0 = time.perf_counter()
        extra = {"cluster": cluster} if cluster else {}
        for task in self.describe(arns, cluster):
            if task["desiredStatus"] != "STOPPED":
                self.ecs.stop_task(task=task["taskArn"], reason="bench done", **extra)
        self.wait(arns, "STOPPED", timeout=timeout, cluster=cluster)
        return time.perf_counter() - t0

    def running_arns(self) -> list[str]:
        arns: list[str] = []
        kw: dict[str, Any] = {}
        while True:
            page = self.ecs.list_tasks(**kw)
            arns += page["taskArns"]
            if not page.get("nextToken"):
                return arns
            kw["nextToken"] = page["nextToken"]

    # -- figure 4 helpers

    def container_pids(self, arns: list[str]) -> list[int]:
        pids = []
        for arn in arns:
            path = Path(f"/run/{self.server.prefix}-tasks") / task_id(arn) / "app" / "pid"
            try:
                pids.append(int(path.read_text()))
            except (OSError, ValueError):
                pass
        return pids

    # -- figure 5

    def signed(self, action: str, params: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """Body and SigV4 headers for one ECS call; the signature stays valid for 15 minutes,
        so a load generator can replay it without signing (or parsing) in its loop."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = json.dumps(params).encode()
        headers = {"Content-Type": "application/x-amz-json-1.1",
                   "X-Amz-Target": f"{ECS_TARGET}.{action}"}
        req = AWSRequest(method="POST", url=self.server.endpoint + "/", data=body,
                         headers=headers)
        SigV4Auth(Credentials(self.server.key_id, self.server.secret), "ecs",
                  "us-east-1").add_auth(req)
        return body, dict(req.headers.items())

    def raw_latencies(self, action: str, params: dict[str, Any], n: int) -> list[float]:
        """One keep-alive connection, one request at a time."""
        import requests

        body, headers = self.signed(action, params)
        out = []
        with requests.Session() as s:
            for _ in range(n):
                t0 = time.perf_counter()
                r = s.post(self.server.endpoint + "/", data=body, headers=headers, timeout=30)
                r.content  # noqa: B018 - the whole body is part of the answer
                out.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{action}: HTTP {r.status_code}: {r.text[:300]}")
        return out

    def boto_latencies(self, action: str, params: dict[str, Any], n: int) -> list[float]:
        call = getattr(self.ecs, {"DescribeTasks": "describe_tasks",
                                  "ListTasks": "list_tasks"}[action])
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            call(**params)
            out.append(time.perf_counter() - t0)
        return out

    def throughput(self, action: str, params: dict[str, Any], clients: int,
                   seconds: float) -> tuple[float, int]:
        """Requests per second with `clients` concurrent keep-alive connections (aiohttp, one
        connection each, pre-signed requests); returns (req/s, errors)."""
        body, headers = self.signed(action, params)
        return asyncio.run(_hammer(self.server.endpoint + "/", body, headers, clients, seconds))


async def _hammer(url: str, body: bytes, headers: dict[str, str], clients: int,
                  seconds: float) -> tuple[float, int]:
    import aiohttp

    done = errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn) as session:
            while time.perf_counter() < stop_at:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1
                    else:
                        errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(clients)])
    return done / (time.perf_counter() - t0), errors


def stamped(task: dict[str, Any], key: str, since: float) -> float:
    """Seconds from since (time.time() before the call) to the task's stamp key; the time
    now if the server left it out (then what a poll saw)."""
    value = task.get(key)
    return (float(value) if value else time.time()) - since


def phase_stamps(task: dict[str, Any]) -> dict[str, float]:
    """Where a start spent its time, by the server's own stamps (seconds)."""
    def stamp(key: str) -> float:
        return float(task.get(key) or 0)

    created, pull0, pull1, started = (stamp(k) for k in
                                      ("createdAt", "pullStartedAt", "pullStoppedAt", "startedAt"))
    # The pulls, the sandbox (cgroups, storage, rootfs mounts) and the network interface are
    # made side by side between pullStartedAt and pullStoppedAt; before them only the task's
    # registry credentials are looked up.
    return {"queued": pull0 - created, "prepare": pull1 - pull0, "containers": started - pull1,
            "server_total": started - created}


def server_python_children(server_pid: int) -> int:
    """Python processes descended from the server (there should be none: no helper per task;
    the one spawn helper of the whole server, agent/spawner.py, is not counted)."""
    from .env import processes

    procs = list(processes())
    children: dict[int, list[int]] = {}
    for p in procs:
        children.setdefault(p.ppid, []).append(p.pid)
    by_pid = {p.pid: p for p in procs}
    count, stack = 0, list(children.get(server_pid, []))
    while stack:
        pid = stack.pop()
        if "python" in by_pid[pid].comm and "fargo.agent.spawner" not in by_pid[pid].cmdline:
            count += 1
        stack += children.get(pid, [])
    return count


def task_processes(tids: set[str], runtime_prefix: str) -> dict[str, int]:
    """Processes on the host that belong to these tasks, by name: conmon (found by its runc
    root argument) and whatever runs inside the tasks' cgroups."""
    from .env import processes

    counts: dict[str, int] = {}
    root_arg = f"--root=/run/{runtime_prefix}-runc"
    for p in processes():
        parts = p.memory_cgroup.split("/")
        at = parts.index("fargo") if "fargo" in parts else -1
        in_task = 0 <= at < len(parts) - 1 and parts[at + 1] in tids
        if p.comm == "conmon" and root_arg in p.cmdline:
            counts["conmon"] = counts.get("conmon", 0) + 1
        elif in_task:
            counts[p.comm] = counts.get(p.comm, 0) + 1
    return counts


def log_phases(phases: list[dict[str, float]]) -> None:
    if phases:
        keys = phases[0].keys()
        med = {k: sorted(p[k] for p in phases)[len(phases) // 2] * 1000 for k in keys}
        log("fargo start phases p50 (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
