"""Each task's log routes, resolved at its start before any container runs: an ECS task's from
its containers' awslogs logConfiguration, a pod's from its cluster's aws-logging ConfigMap
(EKS reads it when a pod starts). The routes are kept on the task record; each one's log
stream is made then, and an awslogs group that does not exist (and may not be made) fails the
start as Fargate fails it, before the container runs."""

from __future__ import annotations

import asyncio
import logging

from ..model import logrouter
from ..model.errors import ApiError
from ..model.logconfig import LogRoute, ecs_routes
from ..model.taskrecord import Task
from .kubestate import KubeState
from .logsink import LogSink
from .tasks.book import TaskBook

log = logging.getLogger("fargo.logs")
LOGGER_ARGS = "ResourceInitializationError: failed to validate logger args: "
NO_GROUP = (LOGGER_ARGS + "create stream has been retried 1 times: failed to create Cloudwatch "
            "log stream: ResourceNotFoundException: The specified log group does not exist. "
            ": exit status 1")


class LogStarts:
    """The starter's hook (control/tasks/starter.py), called before a task's containers."""

    def __init__(self, sink: LogSink, book: TaskBook, kube: KubeState | None = None):
        self.sink = sink
        self.book = book
        self.kube = kube

    async def prepare(self, tid: str) -> str | None:
        """Resolve and keep the task's routes, make their streams; why the start fails, if
        it does."""
        task = self.book.fresh(tid)
        routes = self._pod_routes(task) if task.pod else ecs_routes(task.id, task.region,
                                                                    task.plan)
        if routes != task.log_routes:
            task.log_routes = routes
            task.bump()
            self.book.save(task)
        for route in routes:
            why = await asyncio.to_thread(self._ensure, route)
            if why is None:
                continue
            if not route.router:
                return why[:255]
            # EKS's log router does not hold a pod back: its lines wait in the log file.
            log.warning("task %s: the log route of container %s to %s waits: %s", tid,
                        route.container, route.group, why)
        return None

    def _ensure(self, route: LogRoute) -> str | None:
        try:
            if route.create_group:
                try:
                    self.sink.ensure_group(route.region, route.group)
                except ApiError as err:
                    return (f"{LOGGER_ARGS}failed to create Cloudwatch log group: "
                            f"{err.code}: {err.message}")
            if not self.sink.group_exists(route.region, route.group):
                return NO_GROUP
            self.sink.ensure_stream(route.region, route.group, route.stream)
        except ApiError as err:
            if err.code == "ResourceNotFoundException":
                return NO_GROUP
            return (f"{LOGGER_ARGS}failed to create Cloudwatch log stream: {err.code}: "
                    f"{err.message}")
        return None

    def _pod_routes(self, task: Task) -> list[LogRoute]:
        """The pod's logging from the ConfigMap now; the pod's `Logging` annotation and an
        event say what came of it."""
        assert task.pod is not None
        if self.kube is None:
            return []
        ref = task.pod
        cluster = ref.cluster
        ns = self.kube.find(cluster, "namespaces", "", logrouter.NAMESPACE)
        cm = self.kube.find(cluster, "configmaps", logrouter.NAMESPACE, logrouter.CONFIGMAP)
        labelled = ((ns or {}).get("metadata", {}).get("labels") or {}).get(
            "aws-observability") == "enabled"
        data = (cm.get("data") or {}) if cm is not None and labelled else None
        got = logrouter.resolve(data, task_id=task.id, pod_ns=ref.namespace, pod=ref.name,
                                containers=[c.name for c in task.containers])
        pod = self.kube.find(cluster, "pods", ref.namespace, ref.name)
        if pod is None or pod["metadata"].get("uid") != ref.uid:
            return got.routes
        annotations = pod["metadata"].setdefault("annotations", {})
        if annotations.get("Logging") != got.annotation:
            annotations["Logging"] = got.annotation
            pod = self.kube.update(cluster, "pods", ref.namespace, pod)
        if got.problem:
            self.kube.record_event(cluster, pod, "Warning", "LoggingDisabled", got.problem,
                                   "fargate-scheduler")
        elif got.annotation == logrouter.ENABLED:
            self.kube.record_event(cluster, pod, "Normal", "LoggingEnabled",
                                   "Successfully enabled logging for pod", "fargate-scheduler")
        return got.routes
