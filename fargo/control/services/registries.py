"""A service's tasks as Cloud Map instances (serviceRegistries): a RUNNING task is registered
(instance id: its task id; its IP, the port for SRV records, ECS's attributes), and
deregistered as soon as it is on its way out, before its containers are stopped. Which tasks
are registered is kept in the service record, so a pass after a restart picks up from there."""

from __future__ import annotations

from typing import Protocol

from ...model.errors import ApiError, InvalidParameterException
from ...model.service import RegistryBinding, Service
from ...model.taskrecord import Task
from ..cloudmap import Registry


class CloudMapServices(Protocol):
    """What the services need of Cloud Map (control/cloudmap.py's CloudMap)."""

    def registry(self, service_arn: str) -> Registry: ...

    def register(self, service_arn: str, instance_id: str, ip: str, port: int | None = None,
                 attributes: dict[str, str] | None = None) -> str: ...

    def deregister(self, service_arn: str, instance_id: str) -> bool: ...


class ServiceRegistries:
    def __init__(self, cloudmap: CloudMapServices):
        self.cloudmap = cloudmap

    def check(self, bindings: list[RegistryBinding]) -> None:
        """Each Cloud Map service exists, and one with SRV records is given a port."""
        for b in bindings:
            try:
                registry = self.cloudmap.registry(b.registry_arn)
            except ApiError:
                raise InvalidParameterException(
                    f"serviceRegistries: the service registry {b.registry_arn[:300]} does "
                    "not exist.") from None
            if registry.needs_port and b.port is None and b.container_port is None:
                raise InvalidParameterException(
                    "serviceRegistries: the Cloud Map service has SRV records, so a port or "
                    "a containerName and containerPort is needed.")

    def sync(self, svc: Service, tasks: list[Task], leaving: set[str]) -> tuple[int, int]:
        """Register the running tasks the pass keeps, deregister the rest; updates
        svc.registered. Returns (registered, deregistered) counts."""
        keep = {t.id: t for t in tasks
                if t.last_status == "RUNNING" and not t.stopping and t.id not in leaving}
        added = removed = 0
        for b in svc.registries:
            for tid in [t for t in svc.registered if t not in keep]:
                try:
                    self.cloudmap.deregister(b.registry_arn, tid)
                except ApiError:
                    continue  # tried again next pass
                svc.registered.remove(tid)
                removed += 1
            for tid, task in keep.items():
                if tid in svc.registered:
                    continue
                port = b.port if b.port is not None else b.container_port
                try:
                    self.cloudmap.register(b.registry_arn, tid, task.ip, port, {
                        "AVAILABILITY_ZONE": task.availability_zone,
                        "ECS_CLUSTER_NAME": svc.cluster_name, "ECS_SERVICE_NAME": svc.name,
                        "ECS_TASK_DEFINITION_FAMILY": task.family})
                except ApiError:
                    continue
                svc.registered.append(tid)
                added += 1
        return added, removed
