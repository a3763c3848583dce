"""Where a new task goes: its subnets and security groups, a free private IP, and room in the
host's capacity. Holds the addresses in use; the store is the truth after a restart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...model.errors import InvalidParameterException
from ...model.ipam import AddressBook, Ipam
from ...model.taskrecord import Task
from ...model.vpc import Subnet, Vpc
from ..capacity import Capacity
from ..network import Networks

CAPACITY_REASON = ("Capacity is unavailable at this time. Please try again later or in a "
                   "different availability zone")


class Placement:
    def __init__(self, vpc: Vpc, capacity: Capacity, networks: Networks | None,
                 api_in_tasks: bool = True):
        self.vpc = vpc
        # Whether tasks are offered fargo's API at their VPC's endpoint address: not with
        # --no-auth, where it would be open to every task unsigned.
        self.api_in_tasks = api_in_tasks
        self.capacity = capacity
        self.networks = networks  # None: the default VPC's subnets only (unit tests)
        self.subnets: Mapping[str, Subnet] = (
            networks.subnets if networks else {s.id: s for s in vpc.subnets})
        self._ips = AddressBook()

    def adopt(self, task: Task) -> None:
        """A task found running at start-up keeps its address and its share of the host."""
        self._ips.hold(task.ip)
        self.capacity.reserve(task.arn, task.cpu, task.memory)

    def subnets_of(self, conf: Mapping[str, Any] | None) -> list[Subnet]:
        """The awsvpcConfiguration's subnets, or the error ECS gives."""
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

    def groups_of(self, conf: Mapping[str, Any], subnets: list[Subnet]) -> list[str]:
        """The security groups the task's interface carries: those named, or the default."""
        named = list(conf.get("securityGroups") or [])
        if self.networks:
            return self.networks.task_groups(named, subnets)
        for sg in named:
            if sg != self.vpc.default_sg:
                raise InvalidParameterException(
                    f"Error retrieving security group information for [{str(sg)[:64]}]: "
                    f"The security group '{str(sg)[:64]}' does not exist")
        return [self.vpc.default_sg]

    def endpoint(self, subnet: Subnet) -> str:
        """The address of fargo's API inside the subnet's VPC ("" if its VPC is gone, or
        tasks are offered no API)."""
        if not self.api_in_tasks:
            return ""
        if subnet.vpc_id == self.vpc.id:
            return Ipam.endpoint(self.vpc.cidr)
        vpcs = self.networks.vpc_items() if self.networks else []
        return next((Ipam.endpoint(v.cidr) for v in vpcs if v.id == subnet.vpc_id), "")

    def fits(self, cpu: int, memory: int) -> bool:
        return self.capacity.fits(cpu, memory)

    def allocate(self, subnets: list[Subnet]) -> tuple[Subnet, str | None]:
        """The first subnet with a free address, and that address (held from now on)."""
        for subnet in subnets:
            ip = self._ips.pick(subnet.cidr)
            if ip:
                return subnet, ip
        return subnets[0], None

    def hold(self, task: Task) -> None:
        self.capacity.reserve(task.arn, task.cpu, task.memory)

    def give_back_ip(self, ip: str) -> None:
        self._ips.free(ip)

    def hold_ip(self, ip: str) -> None:
        """An address found at start-up that something other than a task keeps (a load
        balancer's): no task is given it, as adopt does for a task's own."""
        self._ips.hold(ip)

    def release(self, task: Task) -> None:
        self._ips.free(task.ip)
        self.capacity.release(task.arn)
