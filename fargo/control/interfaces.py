"""The tasks' elastic network interfaces as EC2 lists them (DescribeNetworkInterfaces): read
off the task records, with each interface's subnet, VPC and security group names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..model.taskrecord import Task
from .network import Networks

_DETACHING = ("DEACTIVATING", "STOPPING", "DEPROVISIONING")


@dataclass(frozen=True)
class TaskInterface:
    eni_id: str
    attachment_id: str  # EC2's attachment id (ela-attach-…), made from the ENI's
    description: str  # as Fargate writes it: the ECS attachment's ARN
    task_arn: str
    subnet_id: str
    vpc_id: str
    zone: str
    zone_id: str
    ip: str
    private_dns: str
    mac: str | None
    groups: tuple[tuple[str, str], ...]  # (id, name); name "" when the group is gone
    attachment_status: str  # attaching | attached | detaching
    attach_time: float


def _attachment_status(task: Task) -> str:
    if task.interface.status == "PRECREATED":
        return "attaching"
    return "detaching" if task.last_status in _DETACHING else "attached"


class TaskInterfaces:
    def __init__(self, tasks: Callable[[], Iterable[Task]], networks: Networks):
        self.tasks = tasks  # the tasks not yet STOPPED
        self.networks = networks

    def _group_name(self, group_id: str) -> str:
        try:
            return self.networks.group(group_id).name
        except ApiError:
            return ""

    def list(self) -> list[TaskInterface]:
        """Every interface a task still has (one whose task reached STOPPED is deleted)."""
        out = []
        for task in self.tasks():
            eni = task.interface
            if eni.status == "DELETED":
                continue
            subnet = self.networks.subnet(eni.subnet_id)
            out.append(TaskInterface(
                eni_id=eni.eni_id, attachment_id="ela-attach-" + eni.eni_id[4:],
                description=f"arn:aws:ecs:{task.region}:{ACCOUNT}:attachment/"
                            f"{eni.attachment_id}",
                task_arn=task.arn, subnet_id=eni.subnet_id,
                vpc_id=subnet.vpc_id if subnet else "", zone=task.availability_zone,
                zone_id=subnet.zone_id if subnet else "", ip=eni.ip,
                private_dns=eni.private_dns, mac=eni.mac,
                groups=tuple((g, self._group_name(g)) for g in eni.groups),
                attachment_status=_attachment_status(task), attach_time=task.created_at))
        return out
