"""The task record: what fargo knows of one task, in named fields. The store persists it as it
is; the ECS face (api/ecs_render.py) and the Kubernetes face (model/podtask.py) render it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .logconfig import LogRoute

# A container definition with RunTask's overrides merged in: the user's own ECS JSON (or a
# pod's containers in that shape), kept as given so every field of it can be honoured.
ContainerDef = dict[str, Any]


@dataclass
class LastRun:
    """How a pod container's previous run ended (its lastState)."""

    exit_code: int | None = None
    oom: bool = False
    started_at: float | None = None
    finished_at: float | None = None


@dataclass
class ContainerRun:
    """A pod container's restarts (restartPolicy): ECS tasks never fill this."""

    restart_count: int = 0
    restart_at: float | None = None  # wall clock: when its back-off ends
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    oom: bool = False
    last: LastRun | None = None


@dataclass
class Container:
    name: str
    arn: str
    image: str
    cpu: int = 0
    memory: int | None = None
    memory_reservation: int | None = None
    last_status: str = "PENDING"  # PENDING | RUNNING | STOPPED
    health_status: str = "UNKNOWN"
    exit_code: int | None = None
    reason: str | None = None
    image_digest: str | None = None
    runtime_id: str | None = None
    run: ContainerRun | None = None
    # Wall clock of its (latest) start: a health check's startPeriod counts from it.
    started_at: float | None = None


@dataclass
class RestartPolicy:
    """A pod's restartPolicy, and which of its containers are init containers."""

    policy: str = "Always"  # Always | OnFailure | Never
    init: list[str] = field(default_factory=list)


@dataclass
class PodRef:
    """The pod a task runs for."""

    cluster: str
    namespace: str
    name: str
    uid: str


@dataclass
class Interface:
    """The task's elastic network interface."""

    attachment_id: str
    eni_id: str
    subnet_id: str
    ip: str
    private_dns: str
    status: str = "PRECREATED"  # PRECREATED | ATTACHED | DELETED
    mac: str | None = None
    groups: list[str] = field(default_factory=list)
    endpoint: str = ""  # its VPC's address of fargo's API (model/ipam.py); "": none offered


@dataclass
class Task:
    id: str
    arn: str
    cluster_arn: str
    task_definition_arn: str
    family: str
    region: str
    cpu: int
    memory: int
    created_at: float
    availability_zone: str
    interface: Interface
    containers: list[Container]
    plan: list[ContainerDef]
    overrides: dict[str, Any] = field(default_factory=dict)  # RunTask's, as the user sent them
    storage_gib: int = 20
    group: str = ""
    started_by: str | None = None
    capacity_provider: str | None = None
    launch_type: str = "FARGATE"
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    version: int = 1
    stop_code: str | None = None
    stopped_reason: str | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    # Task role: the role its credentials endpoint speaks for, the path token of that endpoint,
    # and the access key last handed out (rotated by control/metadata.py).
    role: str | None = None
    credentials_id: str = ""
    role_key: str | None = None
    # Pods only.
    restart: RestartPolicy | None = None
    pod: PodRef | None = None
    stop_timeout: float | None = None  # terminationGracePeriodSeconds, for every container
    # Where its containers' output goes in CloudWatch Logs (model/logconfig.py), fixed at its
    # start: the awslogs driver's, or EKS's log router's for a pod.
    log_routes: list[LogRoute] = field(default_factory=list)
    # Its sandbox tier (model/isolation.py), resolved when the task is made and kept: records
    # of older servers lack it and read as "runc", the only tier they had.
    isolation: str = "runc"

    @property
    def ip(self) -> str:
        return self.interface.ip

    @property
    def stopping(self) -> bool:
        return self.desired_status == "STOPPED"

    def container(self, name: str) -> Container:
        return next(c for c in self.containers if c.name == name)

    def container_def(self, name: str) -> ContainerDef:
        return next(c for c in self.plan if c["name"] == name)

    def bump(self) -> None:
        """Every change a describer can see raises the version, as ECS's does."""
        self.version += 1
