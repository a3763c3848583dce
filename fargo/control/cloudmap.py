"""Cloud Map service discovery: the `servicediscovery` API's use cases (api/servicediscovery.py
parses and renders), a typed registration API for ECS services' `serviceRegistries`, and a
record source of the VPC resolver (control/dns.py): private DNS namespaces are zones of their
VPC's resolver only.

Every change is written to the store and then applied at once; its operation goes SUBMITTED
-> SUCCESS within the call, so GetOperation finds it done. What the resolver reads is an
in-memory index rebuilt after each change, so no query touches the store."""

from __future__ import annotations

import base64
import binascii
import random
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..model import cloudmap as cm
from ..model.cloudmap import (
    CloudMapError,
    Instance,
    Namespace,
    Operation,
    Service,
    invalid,
)
from ..model.dns import Record, View, Zone
from ..store.cloudmap import CloudMapTables
from ..store.sqlite import Store

T = TypeVar("T")
KEEP_OPERATIONS = 2000
DEFAULT_PAGE = 100
_ALNUM = string.ascii_lowercase + string.digits


def _rid(prefix: str, n: int = 16) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(n))


def not_found(kind: str, ref: str) -> CloudMapError:
    code = {"namespace": "NamespaceNotFound", "service": "ServiceNotFound",
            "instance": "InstanceNotFound", "operation": "OperationNotFound"}[kind]
    return CloudMapError(f"No {kind} found with ID {ref[:255]!r}.", code)


@dataclass(frozen=True)
class Discovered:
    namespace: Namespace
    service: Service
    instance: Instance
    health: str


@dataclass(frozen=True)
class Registry:
    """What ECS needs to know of a service it registers tasks in."""

    service_id: str
    record_types: frozenset[str]
    custom_health: bool

    @property
    def needs_port(self) -> bool:
        return "SRV" in self.record_types


@dataclass
class _Index:
    """The DNS view of Cloud Map: zones by VPC, and what each name holds."""

    zones: list[tuple[str, Zone]] = field(default_factory=list)
    services: dict[str, list[tuple[str, Namespace, Service, list[Instance]]]] = \
        field(default_factory=dict)
    hosts: dict[str, list[tuple[str, Namespace, Service, Instance]]] = field(default_factory=dict)


class CloudMap:
    def __init__(self, store: Store, region: str, vpcs: Callable[[], Iterable[str]],
                 rng: random.Random | None = None):
        self.tables = CloudMapTables(store)
        self.region = region
        self.vpcs = vpcs  # the VPC ids a private namespace may name
        self.rng = rng or random.Random()
        self._lock = threading.RLock()
        self._index = _Index()
        self._reindex()

    # ---- loading
    def _namespace(self, ref: str) -> Namespace:
        ns_id = cm.id_from(ref, "namespace")
        doc = self.tables.namespace(ns_id) if ns_id else None
        if doc is None:
            raise not_found("namespace", ref)
        return Namespace.from_doc(doc)

    def _service(self, ref: str) -> Service:
        sid = cm.id_from(ref, "service")
        doc = self.tables.service(sid) if sid else None
        if doc is None:
            raise not_found("service", ref)
        return Service.from_doc(doc)

    def _instance(self, service: Service, instance_id: str) -> Instance:
        doc = self.tables.instance(service.id, instance_id)
        if doc is None:
            raise not_found("instance", instance_id)
        return Instance.from_doc(doc)

    def _instances(self, service_id: str) -> list[Instance]:
        return [Instance.from_doc(d) for d in self.tables.instances(service_id)]

    def _operation(self, op_type: str, targets: dict[str, str], request_id: str | None = None,
                   request: str = "") -> Operation:
        """A finished operation, written as it went: SUBMITTED, then SUCCESS."""
        now = time.time()
        op = Operation(f"{_rid('', 32)}-{_rid('', 8)}", op_type, now, targets, "SUBMITTED",
                       now, request_id=request_id, request=request)
        self.tables.put_operation(op.to_doc(), KEEP_OPERATIONS)
        op.status, op.updated = "SUCCESS", time.time()
        self.tables.put_operation(op.to_doc(), KEEP_OPERATIONS)
        return op

    def _retry_of(self, request_id: str | None, op_type: str, request: str) -> str | None:
        """The operation an earlier call with this request id made (a retry: the same
        answer), or DuplicateRequest when that call asked for something else."""
        if not request_id:
            return None
        for doc in self.tables.operations_for(request_id):
            op = Operation.from_doc(doc)
            if op.type != op_type:
                continue
            if op.request == request:
                return op.id
            raise CloudMapError(f"The request id {request_id[:64]!r} was used for another "
                                "request.", "DuplicateRequest", DuplicateOperationId=op.id)
        return None

    # ---- namespaces
    def create_private_dns_namespace(self, name: str, vpc: str, *, request_id: str | None,
                                     description: str | None = None,
                                     tags: Sequence[Mapping[str, str]] = (),
                                     soa_ttl: int | None = None) -> str:
        name = cm.check_private_name(name)
        if vpc not in set(self.vpcs()):
            raise invalid(f"Vpc {vpc[:64]!r} does not exist.")
        return self._create_namespace(name, cm.PRIVATE, vpc, request_id, description, tags,
                                      cm.DEFAULT_SOA_TTL if soa_ttl is None else soa_ttl)

    def create_http_namespace(self, name: str, *, request_id: str | None,
                              description: str | None = None,
                              tags: Sequence[Mapping[str, str]] = ()) -> str:
        if name.startswith("arn:"):
            raise invalid("Name may not be an ARN.")
        return self._create_namespace(name, cm.HTTP_NS, None, request_id, description, tags,
                                      None)

    def _create_namespace(self, name: str, ns_type: str, vpc: str | None,
                          request_id: str | None, description: str | None,
                          tags: Sequence[Mapping[str, str]], soa_ttl: int | None) -> str:
        with self._lock:
            request = f"{ns_type}:{cm.namespace_key(name)}:{vpc}"
            if (done := self._retry_of(request_id, "CREATE_NAMESPACE", request)) is not None:
                return done
            existing = self._namespaces()
            for ns in existing:
                if ns.key == cm.namespace_key(name):
                    raise CloudMapError(f"Namespace {name!r} already exists.",
                                        "NamespaceAlreadyExists", NamespaceId=ns.id,
                                        CreatorRequestId=ns.creator_request_id or "")
            if len(existing) >= cm.MAX_NAMESPACES:
                raise CloudMapError(f"An account may have {cm.MAX_NAMESPACES} namespaces.",
                                    "ResourceLimitExceeded")
            ns = Namespace(_rid("ns-"), name, ns_type, time.time(), vpc, description,
                           request_id, soa_ttl)
            ns.tags = cm.check_tags(tags, [], ns.arn(self.region))
            self.tables.put_namespace(ns.to_doc())
            op = self._operation("CREATE_NAMESPACE", {"NAMESPACE": ns.id}, request_id, request)
            self._reindex()
            return op.id

    def _namespaces(self) -> list[Namespace]:
        return [Namespace.from_doc(d) for d in self.tables.namespaces()]

    def get_namespace(self, ref: str) -> tuple[Namespace, int]:
        """The namespace and how many services it has."""
        ns = self._namespace(ref)
        return ns, len(self.tables.services(ns.id))

    def list_namespaces(self, raw_filters: Sequence[Mapping[str, Any]] | None,
                        max_results: int | None, token: str | None
                        ) -> tuple[list[tuple[Namespace, int]], str | None]:
        fs = cm.filters(raw_filters, "namespace")
        values = {"TYPE": lambda n: n.type, "NAME": lambda n: n.name,
                  "HTTP_NAME": lambda n: n.name, "RESOURCE_OWNER": lambda n: "SELF"}
        found = [n for n in self._namespaces()
                 if all(cm.matches(f, values[f.name](n)) for f in fs)]
        page, nxt = _page(found, max_results, token)
        return [(n, len(self.tables.services(n.id))) for n in page], nxt

    def delete_namespace(self, ref: str) -> str:
        with self._lock:
            ns = self._namespace(ref)
            if self.tables.services(ns.id):
                raise CloudMapError(f"Namespace {ns.id} has services: delete them first.",
                                    "ResourceInUse")
            self.tables.delete_namespace(ns.id)
            op = self._operation("DELETE_NAMESPACE", {"NAMESPACE": ns.id})
            self._reindex()
            return op.id

    def update_namespace(self, ref: str, *, request_id: str | None, description: str | None,
                         soa_ttl: int | None, ns_type: str) -> str:
        with self._lock:
            ns = self._namespace(ref)
            if ns.type != ns_type:
                raise invalid(f"Namespace {ns.id} is of type {ns.type}, not {ns_type}.")
            request = f"{ns.id}:{description}:{soa_ttl}"
            if (done := self._retry_of(request_id, "UPDATE_NAMESPACE", request)) is not None:
                return done
            if description is not None:
                ns.description = description
            if soa_ttl is not None:
                ns.soa_ttl = soa_ttl
            self.tables.put_namespace(ns.to_doc())
            op = self._operation("UPDATE_NAMESPACE", {"NAMESPACE": ns.id}, request_id, request)
            self._reindex()
            return op.id

    # ---- services
    def create_service(self, name: str, namespace_ref: str | None, *, request_id: str | None,
                       description: str | None = None,
                       dns_config: Mapping[str, Any] | None = None,
                       health_check: Mapping[str, Any] | None = None,
                       custom_health: Mapping[str, Any] | None = None,
                       tags: Sequence[Mapping[str, str]] = (),
                       service_type: str | None = None) -> Service:
        ref = namespace_ref or (dns_config or {}).get("NamespaceId")
        if not ref:
            raise invalid("NamespaceId is required.")
        if namespace_ref and dns_config and dns_config.get("NamespaceId") and \
                cm.id_from(namespace_ref, "namespace") != dns_config["NamespaceId"]:
            raise invalid("NamespaceId and DnsConfig.NamespaceId name different namespaces.")
        if health_check is not None:
            raise invalid("HealthCheckConfig is for public DNS namespaces only (Route 53 "
                          "health checks); use HealthCheckCustomConfig.")
        with self._lock:
            ns = self._namespace(ref)
            if service_type is not None and dns_config is not None:
                raise invalid("A service of Type HTTP takes no DnsConfig.")
            policy, records = cm.dns_config(dns_config, ns) if dns_config else (None, [])
            cm.check_service_fqdn(name, ns)
            for other in (Service.from_doc(d) for d in self.tables.services(ns.id)):
                if other.key == name.lower():
                    if request_id and other.creator_request_id == request_id:
                        return other  # a retry of the call that made it
                    raise CloudMapError(f"Service {name!r} already exists in {ns.id}.",
                                        "ServiceAlreadyExists", ServiceId=other.id,
                                        ServiceArn=other.arn(self.region),
                                        CreatorRequestId=other.creator_request_id or "")
            svc = Service(_rid("srv-"), name, ns.id, time.time(),
                          "DNS_HTTP" if records else "HTTP", description, policy, records,
                          custom_health is not None, request_id)
            svc.tags = cm.check_tags(tags, [], svc.arn(self.region))
            self.tables.put_service(svc.to_doc())
            self._reindex()
            return svc

    def get_service(self, ref: str) -> tuple[Service, int]:
        svc = self._service(ref)
        return svc, self.tables.count_instances(svc.id)

    def list_services(self, raw_filters: Sequence[Mapping[str, Any]] | None,
                      max_results: int | None, token: str | None
                      ) -> tuple[list[tuple[Service, int]], str | None]:
        fs = cm.filters(raw_filters, "service")
        found = [s for s in (Service.from_doc(d) for d in self.tables.services())
                 if all(cm.matches(f, s.namespace_id if f.name == "NAMESPACE_ID" else None)
                        for f in fs)]
        page, nxt = _page(found, max_results, token)
        return [(s, self.tables.count_instances(s.id)) for s in page], nxt

    def delete_service(self, ref: str) -> None:
        with self._lock:
            svc = self._service(ref)
            if self.tables.count_instances(svc.id):
                raise CloudMapError(f"Service {svc.id} has registered instances: deregister "
                                    "them first.", "ResourceInUse")
            self.tables.delete_service(svc.id)
            self._reindex()

    def update_service(self, ref: str, *, description: str | None,
                       dns_records: Sequence[Mapping[str, Any]] | None,
                       health_check: Mapping[str, Any] | None) -> str:
        if health_check is not None:
            raise invalid("Service.HealthCheckConfig is for public DNS namespaces only.")
        with self._lock:
            svc = self._service(ref)
            if dns_records is not None:
                if not svc.records:
                    raise invalid(f"Service {svc.id} has no DnsConfig to change.")
                svc.records = cm.changed_records(svc, dns_records)
            if description is not None:
                svc.description = description
            self.tables.put_service(svc.to_doc())
            op = self._operation("UPDATE_SERVICE", {"SERVICE": svc.id})
            self._reindex()
            return op.id

    def service_attributes(self, ref: str) -> Service:
        return self._service(ref)

    def update_service_attributes(self, ref: str, attributes: Mapping[str, str]) -> None:
        with self._lock:
            svc = self._service(ref)
            merged = {**svc.attributes, **attributes}
            if len(merged) > cm.MAX_SERVICE_ATTRIBUTES:
                raise CloudMapError(f"A service may have {cm.MAX_SERVICE_ATTRIBUTES} "
                                    "attributes.", "ServiceAttributesLimitExceededException")
            svc.attributes = merged
            self.tables.put_service(svc.to_doc())

    def delete_service_attributes(self, ref: str, keys: Sequence[str]) -> None:
        with self._lock:
            svc = self._service(ref)
            for key in keys:
                svc.attributes.pop(key, None)
            self.tables.put_service(svc.to_doc())

    # ---- instances
    def register_instance(self, service_ref: str, instance_id: str,
                          attributes: Mapping[str, str], *, request_id: str | None) -> str:
        with self._lock:
            svc = self._service(service_ref)
            ns = self._namespace(svc.namespace_id)
            request = f"{svc.id}:{instance_id}"
            if (done := self._retry_of(request_id, "REGISTER_INSTANCE", request)) is not None:
                return done
            attrs, health = cm.instance_attributes(svc, ns, instance_id, attributes)
            old = self.tables.instance(svc.id, instance_id)
            if old is None and self.tables.count_instances(svc.id) >= cm.MAX_INSTANCES:
                raise CloudMapError(f"A service may have {cm.MAX_INSTANCES} instances.",
                                    "ResourceLimitExceeded")
            if old is not None and health is not None and "AWS_INIT_HEALTH_STATUS" not in \
                    attributes:
                health = Instance.from_doc(old).health  # re-registering keeps its status
            inst = Instance(svc.id, instance_id, attrs, time.time(), request_id, health)
            self.tables.put_instance(inst.to_doc())
            self._bump(svc)
            op = self._operation("REGISTER_INSTANCE", {"NAMESPACE": ns.id, "SERVICE": svc.id,
                                                       "INSTANCE": instance_id},
                                 request_id, request)
            self._reindex()
            return op.id

    def deregister_instance(self, service_ref: str, instance_id: str) -> str:
        with self._lock:
            svc = self._service(service_ref)
            self._instance(svc, instance_id)
            self.tables.delete_instance(svc.id, instance_id)
            self._bump(svc)
            op = self._operation("DEREGISTER_INSTANCE", {"NAMESPACE": svc.namespace_id,
                                                         "SERVICE": svc.id,
                                                         "INSTANCE": instance_id})
            self._reindex()
            return op.id

    def _bump(self, svc: Service) -> None:
        svc.revision += 1
        self.tables.put_service(svc.to_doc())

    def get_instance(self, service_ref: str, instance_id: str) -> Instance:
        return self._instance(self._service(service_ref), instance_id)

    def list_instances(self, service_ref: str, max_results: int | None, token: str | None
                       ) -> tuple[list[Instance], str | None]:
        return _page(self._instances(self._service(service_ref).id), max_results, token)

    def instances_health(self, service_ref: str, ids: Sequence[str] | None,
                         max_results: int | None, token: str | None
                         ) -> tuple[dict[str, str], str | None]:
        svc = self._service(service_ref)
        instances = {i.id: i for i in self._instances(svc.id)}
        if ids is not None:
            missing = [i for i in ids if i not in instances]
            if missing:
                raise not_found("instance", missing[0])
            chosen = [instances[i] for i in dict.fromkeys(ids)]
        else:
            chosen = list(instances.values())
        page, nxt = _page(chosen, max_results, token)
        return {i.id: cm.health_of(svc, i) for i in page}, nxt

    def update_custom_health(self, service_ref: str, instance_id: str, status: str) -> None:
        with self._lock:
            svc = self._service(service_ref)
            inst = self._instance(svc, instance_id)
            if not svc.custom_health:
                raise CloudMapError(f"Service {svc.id} has no HealthCheckCustomConfig.",
                                    "CustomHealthNotFound")
            if inst.health != status:
                inst.health = status
                self.tables.put_instance(inst.to_doc())
                self._bump(svc)
                self._reindex()

    def discover(self, namespace_name: str, service_name: str, *,
                 query: Mapping[str, str], optional: Mapping[str, str], health: str,
                 max_results: int | None) -> tuple[list[Discovered], int]:
        ns = next((n for n in self._namespaces()
                   if n.key == cm.namespace_key(namespace_name)), None)
        if ns is None:
            raise not_found("namespace", namespace_name)
        svc = next((s for s in (Service.from_doc(d) for d in self.tables.services(ns.id))
                    if s.key == service_name.lower()), None)
        if svc is None:
            raise not_found("service", service_name)
        found = cm.discover(svc, self._instances(svc.id), query, optional, health,
                            _size(max_results, 1000))
        return [Discovered(ns, svc, i, cm.health_of(svc, i)) for i in found], svc.revision

    def discover_revision(self, namespace_name: str, service_name: str) -> int:
        return self.discover(namespace_name, service_name, query={}, optional={},
                             health="ALL", max_results=1)[1]

    # ---- operations
    def get_operation(self, op_id: str) -> Operation:
        doc = self.tables.operation(op_id)
        if doc is None:
            raise not_found("operation", op_id)
        return Operation.from_doc(doc)

    def list_operations(self, raw_filters: Sequence[Mapping[str, Any]] | None,
                        max_results: int | None, token: str | None
                        ) -> tuple[list[Operation], str | None]:
        fs = cm.filters(raw_filters, "operation")
        values: dict[str, Callable[[Operation], str | float | None]] = {
            "NAMESPACE_ID": lambda o: o.targets.get("NAMESPACE"),
            "SERVICE_ID": lambda o: o.targets.get("SERVICE"), "STATUS": lambda o: o.status,
            "TYPE": lambda o: o.type, "UPDATE_DATE": lambda o: o.updated}
        found = [o for o in (Operation.from_doc(d) for d in self.tables.operations())
                 if all(cm.matches(f, values[f.name](o)) for f in fs)]
        return _page(found, max_results, token)

    # ---- tags
    def _tagged(self, arn: str) -> Namespace | Service:
        kind = "namespace" if ":namespace/" in arn else "service" if ":service/" in arn else ""
        prefix = f"arn:aws:servicediscovery:{self.region}:"
        try:
            if kind and arn.startswith(prefix):
                return self._namespace(arn) if kind == "namespace" else self._service(arn)
        except CloudMapError:
            pass
        raise CloudMapError(f"Resource {arn[:1011]!r} not found.", "ResourceNotFoundException")

    def list_tags(self, arn: str) -> list[dict[str, str]]:
        return self._tagged(arn).tags

    def tag_resource(self, arn: str, tags: Sequence[Mapping[str, str]]) -> None:
        with self._lock:
            res = self._tagged(arn)
            res.tags = cm.check_tags(tags, res.tags, arn)
            self._put(res)

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        with self._lock:
            res = self._tagged(arn)
            res.tags = [t for t in res.tags if t["Key"] not in set(keys)]
            self._put(res)

    def _put(self, res: Namespace | Service) -> None:
        if isinstance(res, Namespace):
            self.tables.put_namespace(res.to_doc())
        else:
            self.tables.put_service(res.to_doc())

    # ---- for ECS services (serviceRegistries)
    def registry(self, service_arn: str) -> Registry:
        """The Cloud Map service an ECS service would register its tasks in (ServiceNotFound
        when there is none)."""
        svc = self._service(service_arn)
        return Registry(svc.id, frozenset(r.type for r in svc.records), svc.custom_health)

    def register(self, service_arn: str, instance_id: str, ip: str, port: int | None = None,
                 attributes: Mapping[str, str] | None = None) -> str:
        """A task as an instance: AWS_INSTANCE_IPV4 its address, AWS_INSTANCE_PORT the port
        (for SRV records), plus attributes (ECS adds AVAILABILITY_ZONE, ECS_CLUSTER_NAME, …).
        Returns the operation id; ApiError when the service is gone or refuses it."""
        attrs = dict(attributes or {})
        attrs["AWS_INSTANCE_IPV4"] = ip
        if port is not None:
            attrs["AWS_INSTANCE_PORT"] = str(port)
        return self.register_instance(service_arn, instance_id, attrs, request_id=None)

    def deregister(self, service_arn: str, instance_id: str) -> bool:
        """The task's instance goes; False when it (or its service) was already gone."""
        try:
            self.deregister_instance(service_arn, instance_id)
        except CloudMapError as err:
            if err.code in ("InstanceNotFound", "ServiceNotFound"):
                return False
            raise
        return True

    def set_health(self, service_arn: str, instance_id: str, healthy: bool) -> None:
        """A task's health as the instance's custom health status (services with
        HealthCheckCustomConfig; others: nothing to record)."""
        svc = self._service(service_arn)
        if svc.custom_health:
            self.update_custom_health(svc.id, instance_id,
                                      cm.HEALTHY if healthy else cm.UNHEALTHY)

    # ---- the resolver's record source (control/dns.py)
    def _reindex(self) -> None:
        index = _Index()
        services = [Service.from_doc(d) for d in self.tables.services()]
        by_service: dict[str, list[Instance]] = {}
        for doc in self.tables.instances():
            inst = Instance.from_doc(doc)
            by_service.setdefault(inst.service_id, []).append(inst)
        namespaces = {n.id: n for n in self._namespaces() if n.type == cm.PRIVATE and n.vpc}
        for ns in namespaces.values():
            ttl = cm.DEFAULT_SOA_TTL if ns.soa_ttl is None else ns.soa_ttl
            index.zones.append((ns.vpc or "", Zone(ns.key, ttl)))
        for svc in services:
            owner = namespaces.get(svc.namespace_id)
            if owner is None or not svc.records or owner.vpc is None:
                continue
            ns, vpc = owner, owner.vpc
            insts = by_service.get(svc.id, [])
            index.services.setdefault(cm.fqdn(svc, ns), []).append((vpc, ns, svc, insts))
            if svc.has("SRV"):
                for inst in insts:
                    host = f"{inst.id.lower()}.{cm.fqdn(svc, ns)}"
                    index.hosts.setdefault(host, []).append((vpc, ns, svc, inst))
        self._index = index

    def zones(self, view: View) -> Sequence[Zone]:
        return [zone for vpc, zone in self._index.zones if view.sees(vpc)]

    def records_at(self, view: View, name: str) -> Sequence[Record] | None:
        index = self._index
        found: list[Record] | None = None
        for vpc, ns, svc, insts in index.services.get(name, []):
            if view.sees(vpc) and insts:
                chosen = cm.answered(svc, insts, self.rng.sample)
                found = (found or []) + cm.service_records(svc, ns, chosen)
        for vpc, ns, svc, inst in index.hosts.get(name, []):
            if view.sees(vpc):
                found = (found or []) + cm.instance_records(svc, ns, inst)
        return found


def _page(items: Sequence[T], max_results: int | None, token: str | None
          ) -> tuple[list[T], str | None]:
    start = 0
    if token is not None:
        try:
            text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
            if not text.startswith("cm:") or not text[3:].isdigit():
                raise ValueError
            start = int(text[3:])
        except (ValueError, UnicodeError, binascii.Error):
            raise invalid("NextToken is not a token this list gave.") from None
    size = _size(max_results, DEFAULT_PAGE)
    end = start + size
    nxt = base64.urlsafe_b64encode(f"cm:{end}".encode()).decode() if end < len(items) else None
    return list(items[start:end]), nxt


def _size(max_results: int | None, most: int) -> int:
    if max_results is None:
        return DEFAULT_PAGE
    if not 1 <= max_results <= most:
        raise invalid(f"MaxResults {max_results} is out of range: 1 to {most}.")
    return max_results
