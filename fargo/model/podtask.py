"""A pod as a task, and a task as a pod's status (pure; FARGATE.md section 7 sizes it)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from . import podvolumes, probes, quantity
from .probes import ProbeView
from .taskrecord import ContainerRun, RestartPolicy, Task

TIME = "%Y-%m-%dT%H:%M:%SZ"
CONFIG_ERROR = "CreateContainerConfigError"
EVICTED = "Evicted: "  # a stopped reason so made is the pod's eviction


def rfc3339(at: float | None) -> str | None:
    return time.strftime(TIME, time.gmtime(at)) if at else None


def _container_def(c: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes container as an ECS-style container definition for the engine: command
    is the entry point, args the command (Docker's and ECS's words for the same two)."""
    cdef: dict[str, Any] = {"name": c["name"], "image": c["image"], "essential": False}
    if c.get("command") is not None:
        cdef["entryPoint"] = list(c["command"])
    if c.get("args") is not None:
        cdef["command"] = list(c["args"])
    env = [{"name": e["name"], "value": e.get("value") or ""} for e in c.get("env") or []
           if "valueFrom" not in e]
    if env:
        cdef["environment"] = env
    if c.get("workingDir"):
        cdef["workingDirectory"] = c["workingDir"]
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    if "memory" in limits:
        cdef["memory"] = max(quantity.mebibytes(limits["memory"]), 6)
    if "memory" in requests:
        cdef["memoryReservation"] = max(quantity.mebibytes(requests["memory"]), 6)
    cpu = requests.get("cpu", limits.get("cpu"))
    if cpu is not None:
        cdef["cpu"] = max(quantity.cpu_units(cpu), 2)
    sc = c.get("securityContext") or {}
    if sc.get("runAsUser") is not None:
        cdef["user"] = str(sc["runAsUser"]) + (
            f":{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else "")
    if sc.get("readOnlyRootFilesystem"):
        cdef["readonlyRootFilesystem"] = True
    drop = (sc.get("capabilities") or {}).get("drop")
    if drop:
        cdef["linuxParameters"] = {"capabilities": {"drop": list(drop)}}
    return cdef


def pod_plan(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], RestartPolicy]:
    """The container plan (init containers one after another, each needing the previous to
    succeed, then the app containers) and the restart policy the engine honours."""
    plan: list[dict[str, Any]] = []
    previous = None
    inits = spec.get("initContainers") or []
    for c in inits + spec["containers"]:
        cdef = _container_def(c)
        points = podvolumes.mount_points(c, spec)  # the pod's volumes it mounts
        if points:
            cdef["mountPoints"] = points
        if previous:
            cdef["dependsOn"] = [{"containerName": previous, "condition": "SUCCESS"}]
        if c in inits:
            previous = c["name"]
        plan.append(cdef)
    policy = RestartPolicy(spec.get("restartPolicy", "Always"), [c["name"] for c in inits])
    return plan, policy


def _reason(code: int | None, oom: bool) -> str:
    if oom:
        return "OOMKilled"
    return "Completed" if code == 0 else "Error"


def _terminated(code: int | None, oom: bool, started: float | None,
                finished: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {"exitCode": 137 if code is None else code,
                           "reason": _reason(code, oom)}
    if started:
        out["startedAt"] = rfc3339(started)
    if finished:
        out["finishedAt"] = rfc3339(finished)
    return out


def _kept(pod: dict[str, Any], status: dict[str, Any], run: float | None) -> ProbeView | None:
    """What the stored status said of this very run (same state, same restarts), for as long
    as the prober has not looked at it (a server just restarted): no flap of Ready."""
    for old in (pod.get("status") or {}).get("containerStatuses") or []:
        if old.get("name") == status["name"] and old.get("state") == status["state"] and \
                old.get("restartCount") == status["restartCount"]:
            return ProbeView(run, bool(old.get("started")), bool(old.get("ready")))
    return None


def container_statuses(pod: dict[str, Any], task: Task, init: bool, now: float,
                       views: Mapping[str, ProbeView] | None = None) -> list[dict[str, Any]]:
    spec = pod["spec"]
    wanted = spec.get("initContainers") or [] if init else spec["containers"]
    entries = {c.name: c for c in task.containers}
    initializing = any(entries[c["name"]].last_status != "STOPPED"
                       for c in spec.get("initContainers") or [])
    out = []
    for c in wanted:
        e = entries[c["name"]]
        run = e.run or ContainerRun()
        status: dict[str, Any] = {"name": c["name"], "image": c["image"],
                                  "imageID": "", "restartCount": run.restart_count,
                                  "ready": False, "started": False}
        if e.image_digest:
            status["imageID"] = f"{c['image'].split('@')[0]}@{e.image_digest}"
        if e.runtime_id:
            status["containerID"] = f"runc://{e.runtime_id}"
        oom = run.oom or "OutOfMemory" in (e.reason or "")
        if e.last_status == "RUNNING":
            status["state"] = {"running": {"startedAt": rfc3339(
                run.started_at or task.started_at or now)}}
            if not init:  # started and ready as its probes (if any) say of this run
                view = (views or {}).get(c["name"])
                if view is None or view.run != e.started_at:
                    view = _kept(pod, status, e.started_at)
                status["started"], status["ready"] = probes.container_state(
                    c, True, e.started_at, view)
        elif e.last_status == "STOPPED":
            status["state"] = {"terminated": _terminated(
                e.exit_code, oom, run.started_at or task.started_at,
                run.finished_at or task.execution_stopped_at)}
            if init and e.exit_code == 0:
                status["ready"] = True
        elif run.restart_count and task.last_status != "STOPPED":
            status["state"] = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container {c['name']}"}}
        elif task.last_status == "STOPPED":
            status["state"] = {"terminated": {"exitCode": 137,
                                              "reason": "ContainerStatusUnknown"}}
        else:
            reason = "PodInitializing" if (initializing and not init) else "ContainerCreating"
            if (e.reason or "").startswith("CannotPull"):
                reason = "ErrImagePull"
            status["state"] = {"waiting": {"reason": reason}}
            why = e.reason or ""
            if why.startswith(CONFIG_ERROR):  # the objects its variables name are missing
                status["state"] = {"waiting": {"reason": CONFIG_ERROR,
                                               "message": why[len(CONFIG_ERROR) + 2:]}}
        last = run.last
        status["lastState"] = {"terminated": _terminated(
            last.exit_code, last.oom, last.started_at, last.finished_at)} if last else {}
        out.append(status)
    return out


def _condition(kind: str, ok: bool, old: list[dict[str, Any]], now: str,
               reason: str | None = None) -> dict[str, Any]:
    value = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == kind), None)
    stamp = prev["lastTransitionTime"] if prev and prev.get("status") == value else now
    cond = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp}
    if reason and not ok:
        cond["reason"] = reason
    return cond


def phase_of(pod: dict[str, Any], task: Task) -> str:
    if task.last_status != "STOPPED":  # stopping counts as running until it has stopped
        started = any(c.last_status != "PENDING" for c in task.containers)
        late = task.last_status not in ("PROVISIONING", "PENDING", "ACTIVATING")
        return "Running" if late and started else "Pending"
    if task.stop_code == "TaskFailedToStart":
        return "Failed"
    init = {c["name"] for c in pod["spec"].get("initContainers") or []}
    apps = [c for c in task.containers if c.name not in init]
    return "Succeeded" if all(c.exit_code == 0 for c in apps) else "Failed"


def pod_status(pod: dict[str, Any], task: Task, now: float,
               views: Mapping[str, ProbeView] | None = None) -> dict[str, Any]:
    """The pod's status as its task stands now (and as the prober's views of its containers
    say); transition times kept from the old one."""
    old = pod.get("status") or {}
    old_conds = old.get("conditions") or []
    stamp = rfc3339(now) or ""
    inits = container_statuses(pod, task, init=True, now=now)
    apps = container_statuses(pod, task, init=False, now=now, views=views)
    phase = phase_of(pod, task)
    initialized = all("terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
                      for s in inits)
    ready = phase == "Running" and all(s["ready"] for s in apps)
    # Readiness gates (spec.readinessGates): conditions others set (a load balancer's
    # controller) are kept, and the pod is Ready only once each is True, as kubelet has it.
    gates = [g.get("conditionType") for g in pod["spec"].get("readinessGates") or []
             if isinstance(g, dict)]
    gated = [c for c in old_conds if c.get("type") in gates]
    gates_ok = all(any(c.get("type") == g and c.get("status") == "True" for c in gated)
                   for g in gates)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            _condition("PodReadyToStartContainers", task.last_status != "PROVISIONING",
                       old_conds, stamp),
            _condition("Initialized", initialized, old_conds, stamp, "ContainersNotInitialized"),
            _condition("Ready", ready and gates_ok, old_conds, stamp,
                       "ContainersNotReady" if not ready else "ReadinessGatesNotReady"),
            _condition("ContainersReady", ready, old_conds, stamp, "ContainersNotReady"),
            _condition("PodScheduled", True, old_conds, stamp),
            *gated,
        ],
        "qosClass": old.get("qosClass", "BestEffort"),
        "startTime": old.get("startTime") or rfc3339(task.created_at),
        "containerStatuses": apps,
    }
    if inits:
        status["initContainerStatuses"] = inits
    ip = task.ip
    if task.last_status not in ("PROVISIONING", "STOPPED"):
        status.update(podIP=ip, podIPs=[{"ip": ip}], hostIP=ip, hostIPs=[{"ip": ip}])
    elif old.get("podIP"):
        status.update({k: old[k] for k in ("podIP", "podIPs", "hostIP", "hostIPs") if k in old})
    if phase == "Failed" and task.stopped_reason:
        status["message"] = task.stopped_reason
        if task.stopped_reason.startswith(EVICTED):  # kubelet's eviction (control/volumes.py)
            status["reason"], status["message"] = "Evicted", task.stopped_reason[len(EVICTED):]
    return status


def qos_class(spec: dict[str, Any]) -> str:
    res = [c.get("resources") or {} for c in spec["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    for r in res:
        lim, req = r.get("limits") or {}, r.get("requests") or {}
        if not all(k in lim and req.get(k, lim[k]) == lim[k] for k in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


def display_status(pod: dict[str, Any]) -> str:
    """The STATUS column of `kubectl get pods`, worked out as kubectl's printer does."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    inits = status.get("initContainerStatuses") or []
    initializing = False
    for i, s in enumerate(inits):
        state = s.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        initializing = True
        if "terminated" in state:
            t = state["terminated"]
            reason = "Init:" + (t.get("reason") or f"ExitCode:{t.get('exitCode')}")
        elif "waiting" in state and state["waiting"].get("reason") not in (
                None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{i}/{len(pod['spec'].get('initContainers') or [])}"
        break
    if not initializing:
        running = False
        for s in reversed(status.get("containerStatuses") or []):
            state = s.get("state") or {}
            if "waiting" in state and state["waiting"].get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                reason = state["terminated"].get("reason") or "Error"
            elif "running" in state:
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason
