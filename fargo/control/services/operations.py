"""CreateService, UpdateService, DeleteService, DescribeServices and ListServices over the
service records; the scheduler (scheduler.py) acts on what they write."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ...model import capacity
from ...model import service as rules
from ...model.capacity import Strategy
from ...model.errors import (
    ApiError,
    InvalidParameterException,
    ServiceNotActiveException,
    ServiceNotFoundException,
)
from ...model.names import arn, cluster_name_from
from ...model.service import Deployment, NetworkConf, Service
from ...model.tags import check_tags
from ...model.task import require_fargate
from ...store.services import ServiceTable
from ..catalog import Catalog
from ..tasks import TaskEngine
from . import views
from .registries import ServiceRegistries
from .targets import ServiceTargets


@dataclass
class ServiceState:
    """A service as DescribeServices shows it: its record and its tasks' counts."""

    service: Service
    counts: views.Counts
    per_deployment: dict[str, views.Counts]
    tags: list[dict[str, str]] | None = None


def new_deployment_id() -> str:
    return rules.deployment_id(random.SystemRandom().randrange(10 ** 18, 10 ** 19))


class Services:
    def __init__(self, catalog: Catalog, engine: TaskEngine, table: ServiceTable,
                 poke: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.time,
                 targets: ServiceTargets | None = None,
                 registries: ServiceRegistries | None = None):
        self.catalog = catalog
        self.engine = engine
        self.table = table
        self.poke = poke  # the scheduler looks again now
        self.clock = clock
        self.targets = targets  # ELBv2's target groups; None: loadBalancers are refused
        self.registries = registries  # Cloud Map; None: serviceRegistries are refused

    def _registries(self, items: list[dict[str, Any]] | None,
                    td: dict[str, Any]) -> list[rules.RegistryBinding]:
        bindings = rules.registry_bindings(items, td)
        if bindings and self.registries is None:
            raise InvalidParameterException(
                "The 'serviceRegistries' parameter is not supported by this fargo server.")
        if bindings and self.registries:
            self.registries.check(bindings)
        return bindings

    def _bindings(self, items: list[dict[str, Any]] | None, td: dict[str, Any],
                  network: NetworkConf) -> list[rules.LoadBalancerBinding]:
        bindings = rules.load_balancer_bindings(items, td)
        if bindings and self.targets is None:
            raise InvalidParameterException(
                "The 'loadBalancers' parameter is not supported by this fargo server.")
        if bindings and self.targets:
            subnets = self.engine.placement.subnets
            self.targets.check(bindings, {subnets[s].vpc_id for s in network.subnets
                                          if s in subnets})
        return bindings

    def using(self, target_group_arn: str) -> str | None:
        """The ARN of a live service whose tasks go into the target group (for ELBv2's
        ResourceInUse), or None."""
        for svc in self.table.live():
            if any(b.target_group_arn == target_group_arn for b in svc.load_balancers):
                return svc.arn
        return None

    # ---- lookups
    def _cluster(self, ref: str | None, region: str) -> dict[str, Any]:
        return self.catalog.cluster(ref, region)

    def get(self, cluster: dict[str, Any], ref: str) -> Service:
        """The service `ref` (a name or ARN) of the cluster, or ServiceNotFoundException."""
        name = rules.service_name_in(ref, cluster["clusterName"])
        svc = self.table.get(cluster["clusterName"], name) if name else None
        if svc is None:
            raise ServiceNotFoundException("Service not found.")
        return svc

    # ---- CreateService
    def create(self, p: dict[str, Any], region: str) -> Service:
        rules.check_params(p, create=True)
        cluster = self._cluster(p.get("cluster"), region)
        name = rules.check_service_name(p.get("serviceName"))
        fingerprint = json.dumps({k: v for k, v in p.items() if k != "clientToken"},
                                 sort_keys=True, default=str)
        existing = self.table.get(cluster["clusterName"], name)
        if existing is not None and existing.status != rules.INACTIVE:
            if p.get("clientToken") and existing.client_token == p["clientToken"] and \
                    existing.fingerprint == fingerprint:
                return existing
            raise InvalidParameterException("Creation of service was not idempotent.")
        if not p.get("taskDefinition"):
            raise InvalidParameterException("A task definition must be specified for a "
                                            "service of the ECS deployment controller.")
        if "desiredCount" not in p:
            raise InvalidParameterException("desiredCount is required for a REPLICA service.")
        desired = rules.check_desired(p["desiredCount"])
        td = self._taskdef(p["taskDefinition"])
        network = self._network(p.get("networkConfiguration"))
        bindings = self._bindings(p.get("loadBalancers"), td, network)
        registries = self._registries(p.get("serviceRegistries"), td)
        launch, strategy = self._launch(p.get("launchType"), p.get("capacityProviderStrategy"),
                                        cluster)
        tags = list(p.get("tags") or [])
        check_tags(tags)
        now = self.clock()
        given_platform = p.get("platformVersion") or "LATEST"
        dep = self._deployment(td["taskDefinitionArn"], network, launch, strategy, desired, now,
                               given_platform)
        svc = Service(
            arn=arn(region, "service", f"{cluster['clusterName']}/{name}"), name=name,
            cluster_arn=cluster["clusterArn"], region=region, created_at=now,
            task_definition=td["taskDefinitionArn"], network=network, deployments=[dep],
            desired_count=desired, launch_type=launch, strategy=strategy,
            platform_version=given_platform, load_balancers=bindings,
            registries=registries,
            config=rules.deployment_config(p.get("deploymentConfiguration")),
            grace_seconds=rules.check_grace(p.get("healthCheckGracePeriodSeconds")),
            propagate_tags=rules.check_propagate(p.get("propagateTags", "NONE")),
            managed_tags=bool(p.get("enableECSManagedTags")),
            client_token=p.get("clientToken"), fingerprint=fingerprint)
        self.catalog.store.put_tags(svc.arn, tags)  # a re-created service starts afresh
        self.table.put(svc)
        self.poke()
        return svc

    def _taskdef(self, ref: str) -> dict[str, Any]:
        td = self.catalog.taskdef(ref)
        require_fargate(td)
        return td

    def _network(self, given: dict[str, Any] | None) -> NetworkConf:
        conf = rules.network_conf(given)
        placement = self.engine.placement
        raw = {"subnets": conf.subnets, "securityGroups": conf.security_groups}
        placement.groups_of(raw, placement.subnets_of(raw))  # they exist, or AWS's error
        return conf

    def _launch(self, launch_type: str | None, strategy: list[dict[str, Any]] | None,
                cluster: dict[str, Any]) -> tuple[str | None, Strategy]:
        """The service's launch type or capacity provider strategy; neither given: the
        cluster's default strategy if it has one, else launch type FARGATE."""
        if launch_type and strategy:
            raise InvalidParameterException(
                "Specifying both a launch type and capacity provider strategy is not "
                "supported. Remove one and try again.")
        if strategy:
            items = capacity.parse_strategy(strategy)
            capacity.check_associated(items, cluster.get("capacityProviders") or [])
            return None, items
        if launch_type is None:
            default = capacity.strategy_from_wire(cluster.get("defaultCapacityProviderStrategy"))
            if default:
                return None, default
        if (launch_type or "FARGATE") != "FARGATE":
            raise InvalidParameterException(
                f"Launch type {str(launch_type)[:32]} is not supported: fargo runs FARGATE "
                "tasks.")
        return "FARGATE", ()

    def _deployment(self, td_arn: str, network: NetworkConf, launch: str | None,
                    strategy: Strategy, desired: int, now: float, platform: str) -> Deployment:
        dep_id = new_deployment_id()
        return Deployment(id=dep_id, task_definition=td_arn, network=network, created_at=now,
                          updated_at=now, desired_count=desired, launch_type=launch,
                          strategy=strategy,
                          platform_version=rules.deployment_platform(platform,
                                                                     self.engine.isolation),
                          rollout_state_reason=f"ECS deployment {dep_id} in progress.")

    # ---- UpdateService
    def update(self, p: dict[str, Any], region: str) -> Service:
        rules.check_params(p, create=False)
        cluster = self._cluster(p.get("cluster"), region)
        svc = self.get(cluster, p["service"])
        if svc.status != rules.ACTIVE:
            raise ServiceNotActiveException("Service was not ACTIVE.")
        now = self.clock()
        td = self._taskdef(p["taskDefinition"]) if p.get("taskDefinition") else \
            self.catalog.taskdef(svc.task_definition)
        new_td = td["taskDefinitionArn"]
        network = self._network(p["networkConfiguration"]) \
            if p.get("networkConfiguration") else svc.network
        bindings = self._bindings(p["loadBalancers"], td, network) \
            if p.get("loadBalancers") is not None else svc.load_balancers
        if new_td != svc.task_definition and bindings:
            rules.load_balancer_bindings([{"targetGroupArn": b.target_group_arn,
                                           "containerName": b.container_name,
                                           "containerPort": b.container_port}
                                          for b in bindings], td)  # the new revision has them
        launch, strategy = svc.launch_type, svc.strategy
        if p.get("capacityProviderStrategy") is not None:
            launch, strategy = self._launch(None, p["capacityProviderStrategy"], cluster)
        if "desiredCount" in p:
            svc.desired_count = rules.check_desired(p["desiredCount"])
        if p.get("deploymentConfiguration") is not None:
            svc.config = rules.deployment_config(p["deploymentConfiguration"], svc.config)
        if "healthCheckGracePeriodSeconds" in p:
            svc.grace_seconds = rules.check_grace(p["healthCheckGracePeriodSeconds"])
        if p.get("platformVersion") and p["platformVersion"] != svc.platform_version:
            svc.platform_version = p["platformVersion"]
            changed_platform = True
        else:
            changed_platform = False
        if p.get("propagateTags") is not None:
            svc.propagate_tags = rules.check_propagate(p["propagateTags"])
        if p.get("enableECSManagedTags") is not None:
            svc.managed_tags = bool(p["enableECSManagedTags"])
        changed = (new_td != svc.task_definition or network != svc.network
                   or strategy != svc.strategy or launch != svc.launch_type
                   or changed_platform or bindings != svc.load_balancers)
        svc.load_balancers = bindings
        if p.get("serviceRegistries") is not None:
            registries = self._registries(p["serviceRegistries"], td)
            if registries != svc.registries and svc.registered:
                raise InvalidParameterException(
                    "serviceRegistries can change only while the service has no registered "
                    "task: scale it to 0 first.")
            svc.registries = registries
        if changed or p.get("forceNewDeployment"):
            self._settle(svc, now)
            self.deploy(svc, new_td, network, launch, strategy, now)
        svc.primary.desired_count = svc.desired_count
        svc.primary.updated_at = now
        svc.steady = False
        svc.version += 1
        self.table.put(svc)
        self.poke()
        return svc

    def _settle(self, svc: Service, now: float) -> None:
        """A PRIMARY superseded while all its tasks run counts as completed: it is what a
        circuit breaker rolls back to (the scheduler may not yet have said so)."""
        prim = svc.primary
        if prim.rollout_state != "IN_PROGRESS" or len(svc.deployments) != 1:
            return
        running = self.state(svc).per_deployment.get(prim.id)
        if (running.running if running else 0) >= prim.desired_count:
            prim.rollout_state = "COMPLETED"
            prim.rollout_state_reason = f"ECS deployment {prim.id} completed."
            svc.last_good = replace(prim, status="ACTIVE", updated_at=now)

    def deploy(self, svc: Service, td_arn: str, network: NetworkConf, launch: str | None,
               strategy: Strategy, now: float) -> Deployment:
        """A new PRIMARY deployment; the one before becomes ACTIVE and drains."""
        for d in svc.deployments:
            if d.status == "PRIMARY":
                d.status, d.updated_at, d.desired_count = "ACTIVE", now, 0
        dep = self._deployment(td_arn, network, launch, strategy, svc.desired_count, now,
                               svc.platform_version)
        svc.deployments.insert(0, dep)
        svc.task_definition, svc.network = td_arn, network
        svc.launch_type, svc.strategy = launch, strategy
        return dep

    # ---- DeleteService
    def delete(self, cluster_ref: str | None, ref: str, force: bool, region: str) -> Service:
        cluster = self._cluster(cluster_ref, region)
        svc = self.get(cluster, ref)
        if svc.status == rules.INACTIVE:
            raise ServiceNotActiveException("Service was not ACTIVE.")
        if svc.status == rules.ACTIVE:
            if svc.desired_count > 0 and not force:
                raise InvalidParameterException(
                    "The service cannot be stopped while it is scaled above 0.")
            svc.status, svc.desired_count = rules.DRAINING, 0
            for d in svc.deployments:
                d.desired_count = 0
            svc.steady = False
            svc.version += 1
            self.table.put(svc)
            self.poke()
        return svc

    # ---- DescribeServices / ListServices
    def describe(self, cluster_ref: str | None, refs: list[str], include_tags: bool,
                 region: str) -> tuple[list[ServiceState], list[dict[str, str]]]:
        cluster = self._cluster(cluster_ref, region)
        if not refs:
            raise InvalidParameterException("Services cannot be empty.")
        if len(refs) > 10:
            raise InvalidParameterException("At most 10 services can be described at once.")
        found, failures = [], []
        for ref in refs:
            try:
                svc = self.get(cluster, ref)
            except ServiceNotFoundException:
                shown = ref if str(ref).startswith("arn:") else \
                    arn(region, "service", f"{cluster['clusterName']}/{str(ref)[:255]}")
                failures.append({"arn": shown[:1600], "reason": "MISSING"})
                continue
            found.append(self.state(svc, include_tags))
        return found, failures

    def state(self, svc: Service, include_tags: bool = False) -> ServiceState:
        tasks = self.engine.store.group_tasks(svc.cluster_name, svc.group)  # not STOPPED
        total, per = views.counts([views.view(t, self.clock()) for t in tasks])
        tags = self.catalog.store.get_tags(svc.arn) if include_tags else None
        return ServiceState(svc, total, per, tags)

    def list(self, cluster_ref: str | None, launch_type: str | None, region: str,
             scheduling: str | None = None, managed_by: str | None = None) -> list[str]:
        cluster = self._cluster(cluster_ref, region)
        if launch_type not in (None, "FARGATE") or scheduling not in (None, "REPLICA") or \
                managed_by not in (None, "CUSTOMER"):
            return []  # fargo's services are all FARGATE, REPLICA and the user's own
        names = self.table.names(cluster["clusterName"], (rules.ACTIVE, rules.DRAINING))
        return [arn(region, "service", f"{cluster['clusterName']}/{n}") for n in names]

    def active_count(self, cluster_name: str) -> int:
        return self.table.count(cluster_name, rules.ACTIVE)

    def resource(self, ref: str) -> str | None:
        """The ARN of the service `ref` names (for tags), if it exists and is not INACTIVE."""
        tail = ref.split(":", 5)[-1]
        parts = tail.split("/")
        if len(parts) != 3:
            return None
        try:
            cluster = cluster_name_from(parts[1])
        except ApiError:
            return None
        svc = self.table.get(cluster, parts[2])
        return svc.arn if svc and svc.status != rules.INACTIVE else None


def event_id() -> str:
    return str(uuid.uuid4())
