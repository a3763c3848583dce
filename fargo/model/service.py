"""The ECS service record and the rules of CreateService / UpdateService's arguments (no I/O:
ids and the clock are passed in). The rolling update itself is model/rollout.py."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .capacity import Strategy
from .errors import ApiError, InvalidParameterException
from .isolation import platform_of, tier_of_platform
from .names import check_name
from .task import check_platform_version
from .taskdef import present, unknown_given

MAX_EVENTS = 100  # what DescribeServices keeps, newest first
ACTIVE, DRAINING, INACTIVE = "ACTIVE", "DRAINING", "INACTIVE"


@dataclass
class NetworkConf:
    subnets: list[str]
    security_groups: list[str] = field(default_factory=list)
    assign_public_ip: str = "DISABLED"


@dataclass
class DeploymentConfig:
    maximum_percent: int = 200
    minimum_healthy_percent: int = 100
    breaker: bool = False
    rollback: bool = False


@dataclass
class Deployment:
    """One configuration of the service's tasks; its tasks carry its id as startedBy."""

    id: str  # ecs-svc/<19 digits>
    task_definition: str  # the ARN
    network: NetworkConf
    created_at: float
    updated_at: float
    status: str = "PRIMARY"  # PRIMARY | ACTIVE (INACTIVE ones are dropped from the record)
    desired_count: int = 0
    launch_type: str | None = "FARGATE"
    strategy: Strategy = ()
    # Resolved (deployment_platform): 1.4.0 or 1.4.0-gvisor; its tasks' tier.
    platform_version: str = "1.4.0"
    rollout_state: str = "IN_PROGRESS"  # IN_PROGRESS | COMPLETED | FAILED
    rollout_state_reason: str = "ECS deployment ecs-svc/0 in progress."
    failed_tasks: int = 0  # consecutive: reset, and no longer counted, once a task runs
    proven: bool = False  # one of its tasks has run healthily: the breaker is done with it


@dataclass
class LoadBalancerBinding:
    """A service's `loadBalancers` item: its tasks' containerPort registered in the group."""

    target_group_arn: str
    container_name: str
    container_port: int


@dataclass
class RegistryBinding:
    """A service's `serviceRegistries` item: its tasks as instances of a Cloud Map service."""

    registry_arn: str
    port: int | None = None  # for SRV records: this port, or the container's
    container_name: str | None = None
    container_port: int | None = None


@dataclass
class Event:
    id: str
    created_at: float
    message: str


@dataclass
class Service:
    arn: str
    name: str
    cluster_arn: str
    region: str
    created_at: float
    task_definition: str  # the PRIMARY deployment's
    network: NetworkConf
    deployments: list[Deployment]
    desired_count: int = 0
    status: str = ACTIVE
    launch_type: str | None = "FARGATE"
    strategy: Strategy = ()
    platform_version: str = "LATEST"  # as given; each deployment resolves it
    config: DeploymentConfig = field(default_factory=DeploymentConfig)
    grace_seconds: int | None = None  # healthCheckGracePeriodSeconds
    propagate_tags: str = "NONE"
    managed_tags: bool = False
    events: list[Event] = field(default_factory=list)
    steady: bool = False  # the last state event said so: said again only after a change
    client_token: str | None = None
    fingerprint: str = ""
    load_balancers: list[LoadBalancerBinding] = field(default_factory=list)
    registries: list[RegistryBinding] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # task ids now Cloud Map instances
    # The last deployment that COMPLETED, kept to roll back to.
    last_good: Deployment | None = None
    version: int = 1

    @property
    def cluster_name(self) -> str:
        return self.cluster_arn.rsplit("/", 1)[-1]

    @property
    def group(self) -> str:
        return f"service:{self.name}"

    @property
    def primary(self) -> Deployment:
        return next(d for d in self.deployments if d.status == "PRIMARY")

    def add_event(self, event_id: str, now: float, message: str) -> None:
        """Newest first, bounded; a message repeated within a minute is not said twice."""
        text = message if message.startswith("(service ") else \
            f"(service {self.name}) {message}"
        if self.events and self.events[0].message == text and \
                now - self.events[0].created_at < 60:
            return
        self.events.insert(0, Event(event_id, now, text))
        del self.events[MAX_EVENTS:]


def deployment_id(digits: int) -> str:
    return f"ecs-svc/{digits:019d}"


def breaker_threshold(desired: int) -> int:
    """Failed tasks that trip the circuit breaker: half the desired count, 3 to 200."""
    return max(3, min(200, math.ceil(desired / 2)))


def bounds(desired: int, config: DeploymentConfig) -> tuple[int, int]:
    """(at least this many healthy, at most this many in all) while deploying: minimum
    healthy rounds up, maximum rounds down, as ECS does."""
    low = math.ceil(desired * config.minimum_healthy_percent / 100)
    high = math.floor(desired * config.maximum_percent / 100)
    return low, max(high, 1 if desired else 0)


# ---- argument rules

_CREATE_KNOWN = frozenset({
    "cluster", "serviceName", "taskDefinition", "desiredCount", "clientToken", "launchType",
    "capacityProviderStrategy", "platformVersion", "deploymentConfiguration",
    "networkConfiguration", "healthCheckGracePeriodSeconds", "schedulingStrategy",
    "deploymentController", "tags", "enableECSManagedTags", "propagateTags",
    "enableExecuteCommand", "availabilityZoneRebalancing", "placementConstraints",
    "placementStrategy", "loadBalancers",
    "serviceRegistries",
})
_UPDATE_KNOWN = frozenset({
    "cluster", "service", "desiredCount", "taskDefinition", "capacityProviderStrategy",
    "deploymentConfiguration", "networkConfiguration", "platformVersion",
    "forceNewDeployment", "healthCheckGracePeriodSeconds", "enableECSManagedTags",
    "propagateTags", "enableExecuteCommand", "availabilityZoneRebalancing",
    "deploymentController", "placementConstraints", "placementStrategy", "loadBalancers",
    "serviceRegistries",
})
_CONFIG_KNOWN = frozenset({"deploymentCircuitBreaker", "maximumPercent",
                           "minimumHealthyPercent", "strategy"})
_AWSVPC_KNOWN = frozenset({"subnets", "securityGroups", "assignPublicIp"})


def _refuse(member: str) -> InvalidParameterException:
    return InvalidParameterException(f"The '{member}' parameter is not supported by fargo.")


def check_params(p: dict[str, Any], create: bool) -> None:
    """Refuse, by name, what fargo would otherwise accept and not act on."""
    member = unknown_given(p, _CREATE_KNOWN if create else _UPDATE_KNOWN)
    if member:  # loadBalancers, serviceRegistries, serviceConnectConfiguration, role, ...
        raise _refuse(member)
    for name in ("placementConstraints", "placementStrategy"):
        if present(p.get(name)):
            raise InvalidParameterException(f"The '{name}' parameter is not supported on "
                                            "Fargate.")
    if p.get("schedulingStrategy") not in (None, "REPLICA"):
        raise InvalidParameterException("Fargate services support the REPLICA scheduling "
                                        "strategy only.")
    if (p.get("deploymentController") or {}).get("type") not in (None, "ECS"):
        raise _refuse("deploymentController.type")
    if p.get("enableExecuteCommand"):
        raise _refuse("enableExecuteCommand")
    if p.get("availabilityZoneRebalancing") == "ENABLED":
        raise _refuse("availabilityZoneRebalancing")
    check_platform_version(p.get("platformVersion"))


def deployment_platform(given: str | None, default_tier: str) -> str:
    """The platform version a deployment runs: the service's as given, LATEST (or none)
    resolved to the server's default tier when the deployment is made, so that all its
    tasks run in one tier."""
    return platform_of(tier_of_platform(given, default_tier))


def check_service_name(name: Any) -> str:
    return check_name(name, "service name")


def service_name_in(ref: Any, cluster: str) -> str | None:
    """The name of the service `ref` (a name or an ARN) names in the cluster; None when it
    names none there (a malformed ARN, another cluster's service, an impossible name)."""
    if not isinstance(ref, str) or not ref:
        raise InvalidParameterException("service can not be blank.")
    if ref.startswith("arn:"):
        tail = ref.split(":", 5)[-1]
        if not tail.startswith("service/"):
            raise InvalidParameterException(f"Invalid service ARN: {ref[:200]}")
        parts = tail.split("/")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != cluster):
            return None
        ref = parts[-1]
    try:
        return check_service_name(ref)
    except ApiError:
        return None


def check_desired(count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidParameterException("desiredCount must be a number of 0 or more.")
    if count > 5000:  # ECS's quota of tasks per service
        raise InvalidParameterException("desiredCount can be at most 5000.")
    return count


def check_grace(seconds: Any) -> int | None:
    if seconds is None:
        return None
    if not 0 <= seconds <= 2147483647:
        raise InvalidParameterException("healthCheckGracePeriodSeconds must be between 0 and "
                                        "2147483647.")
    return int(seconds)


def deployment_config(given: dict[str, Any] | None,
                      base: DeploymentConfig | None = None) -> DeploymentConfig:
    """The deploymentConfiguration given, over base (UpdateService changes what it names)."""
    base = base or DeploymentConfig()
    given = given or {}
    member = unknown_given(given, _CONFIG_KNOWN)
    if member:
        raise _refuse(f"deploymentConfiguration.{member}")
    if given.get("strategy") not in (None, "ROLLING"):
        raise _refuse("deploymentConfiguration.strategy")
    breaker = given.get("deploymentCircuitBreaker")
    out = DeploymentConfig(
        maximum_percent=given.get("maximumPercent", base.maximum_percent),
        minimum_healthy_percent=given.get("minimumHealthyPercent",
                                          base.minimum_healthy_percent),
        breaker=bool(breaker["enable"]) if breaker else base.breaker,
        rollback=bool(breaker["rollback"]) if breaker else base.rollback)
    if not 0 <= out.minimum_healthy_percent <= 100:
        raise InvalidParameterException(
            "deploymentConfiguration.minimumHealthyPercent must be between 0 and 100.")
    if not 100 <= out.maximum_percent <= 200:
        raise InvalidParameterException(
            "deploymentConfiguration.maximumPercent must be between 100 and 200.")
    if out.maximum_percent == out.minimum_healthy_percent == 100:
        raise InvalidParameterException(
            "deploymentConfiguration: with minimumHealthyPercent 100, maximumPercent must be "
            "above 100, or no task could ever be replaced.")
    return out


def network_conf(given: dict[str, Any] | None) -> NetworkConf:
    conf = (given or {}).get("awsvpcConfiguration")
    if not conf:
        raise InvalidParameterException(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    member = unknown_given(conf, _AWSVPC_KNOWN)
    if member:
        raise _refuse(f"awsvpcConfiguration.{member}")
    if conf.get("assignPublicIp") == "ENABLED":  # tasks here have private addresses only
        raise _refuse("awsvpcConfiguration.assignPublicIp")
    return NetworkConf(list(conf.get("subnets") or []), list(conf.get("securityGroups") or []))


MAX_TARGET_GROUPS = 5  # ECS's limit of target groups per service


def load_balancer_bindings(items: list[dict[str, Any]] | None,
                           td: dict[str, Any]) -> list[LoadBalancerBinding]:
    """A service's loadBalancers, checked against its task definition (the container and
    its port must exist); the target groups themselves are control's to find."""
    items = items or []
    if len(items) > MAX_TARGET_GROUPS:
        raise InvalidParameterException(
            f"loadBalancers can hold at most {MAX_TARGET_GROUPS} target groups.")
    out: list[LoadBalancerBinding] = []
    for item in items:
        if item.get("loadBalancerName"):
            raise _refuse("loadBalancers.loadBalancerName")  # Classic Load Balancers
        member = unknown_given(item, frozenset({"targetGroupArn", "containerName",
                                                "containerPort", "advancedConfiguration"}))
        if member or present(item.get("advancedConfiguration")):
            raise _refuse(f"loadBalancers.{member or 'advancedConfiguration'}")
        arn, name, port = (item.get("targetGroupArn"), item.get("containerName"),
                           item.get("containerPort"))
        if not arn or not name or port is None:
            raise InvalidParameterException("loadBalancers: targetGroupArn, containerName and "
                                            "containerPort are required.")
        cdef = next((c for c in td["containerDefinitions"] if c["name"] == name), None)
        if cdef is None:
            raise InvalidParameterException(
                f"loadBalancers: the container {str(name)[:255]} does not exist in the task "
                "definition.")
        if port not in [pm.get("containerPort") for pm in cdef.get("portMappings") or []]:
            raise InvalidParameterException(
                f"loadBalancers: the container {str(name)[:255]} did not have a container "
                f"port {port} defined.")
        binding = LoadBalancerBinding(str(arn), str(name), int(port))
        if binding in out:
            raise InvalidParameterException("loadBalancers names the same target group, "
                                            "container and port twice.")
        out.append(binding)
    return out


def registry_bindings(items: list[dict[str, Any]] | None,
                      td: dict[str, Any]) -> list[RegistryBinding]:
    """A service's serviceRegistries (at most one, as ECS allows), checked against its task
    definition; that the Cloud Map service exists is control's to find."""
    items = items or []
    if len(items) > 1:
        raise InvalidParameterException("Only one service registry is allowed per service.")
    out = []
    for item in items:
        member = unknown_given(item, frozenset({"registryArn", "port", "containerName",
                                                "containerPort"}))
        if member:
            raise _refuse(f"serviceRegistries.{member}")
        if not item.get("registryArn"):
            raise InvalidParameterException("serviceRegistries: registryArn is required.")
        name, port = item.get("containerName"), item.get("containerPort")
        if (name is None) != (port is None):
            raise InvalidParameterException("serviceRegistries: give both containerName and "
                                            "containerPort, or neither.")
        if name is not None:
            cdef = next((c for c in td["containerDefinitions"] if c["name"] == name), None)
            if cdef is None or port not in [pm.get("containerPort")
                                            for pm in cdef.get("portMappings") or []]:
                raise InvalidParameterException(
                    f"serviceRegistries: the container {str(name)[:255]} has no container "
                    f"port {port}.")
        out.append(RegistryBinding(str(item["registryArn"]), item.get("port"), name, port))
    return out


def check_propagate(value: Any) -> str:
    if value not in ("TASK_DEFINITION", "SERVICE", "NONE"):
        raise InvalidParameterException("propagateTags must be TASK_DEFINITION, SERVICE or "
                                        "NONE.")
    return str(value)
