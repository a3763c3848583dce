"""Cloud Map (AWS's `servicediscovery` API): namespaces, services, instances and operations as
records, and the rules of the API and of the DNS records it makes. Pure: ids, clocks and the
random choice of a routing policy are passed in.

A private DNS namespace is a zone of its VPC's resolver; a service with a DnsConfig gets
records named `service.namespace` for its instances (A, AAAA, CNAME; SRV `1 1 PORT
instance.service.namespace`, whose target name also gets the instance's A/AAAA), drawn per
query by its routing policy: MULTIVALUE up to eight healthy instances, WEIGHTED one; when none
is healthy, as if all were (failing open, as Route 53 does)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import dns
from .dns import AAAA, A, Cname, Record, Srv
from .errors import ApiError
from .names import ACCOUNT

T = TypeVar("T")
Sample = Callable[[Sequence[T], int], list[T]]  # random.sample's shape

PRIVATE, HTTP_NS = "DNS_PRIVATE", "HTTP"
RECORD_TYPES = ("A", "AAAA", "CNAME", "SRV")
MULTIVALUE, WEIGHTED = "MULTIVALUE", "WEIGHTED"
MULTIVALUE_MAX = 8
DEFAULT_SOA_TTL = 15
MAX_TAGS = 50
MAX_CUSTOM_ATTRIBUTES = 30
MAX_ATTRIBUTE_CHARS = 5000
MAX_INSTANCES = 1000  # per service
MAX_NAMESPACES = 50
MAX_SERVICE_ATTRIBUTES = 30
HEALTHY, UNHEALTHY, UNKNOWN = "HEALTHY", "UNHEALTHY", "UNKNOWN"
RESERVED = ("AWS_ALIAS_DNS_NAME", "AWS_EC2_INSTANCE_ID", "AWS_INIT_HEALTH_STATUS",
            "AWS_INSTANCE_CNAME", "AWS_INSTANCE_IPV4", "AWS_INSTANCE_IPV6", "AWS_INSTANCE_PORT")


class CloudMapError(ApiError):
    """An error of the API's model, with the extra members its shape carries (the id of the
    resource that already exists, of the operation a request id was used for)."""

    def __init__(self, message: str, code: str, **fields: str):
        super().__init__(message, code=code)
        self.fields = {k: v for k, v in fields.items() if v}


def invalid(message: str) -> CloudMapError:
    return CloudMapError(message, "InvalidInput")


# ---- records


@dataclass
class Namespace:
    id: str
    name: str
    type: str  # DNS_PRIVATE | HTTP
    created: float
    vpc: str | None = None
    description: str | None = None
    creator_request_id: str | None = None
    soa_ttl: int | None = None  # DNS namespaces: the negative-caching TTL of its zone
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return namespace_key(self.name)

    def arn(self, region: str) -> str:
        return f"arn:aws:servicediscovery:{region}:{ACCOUNT}:namespace/{self.id}"

    def to_doc(self) -> dict[str, Any]:
        return {"Id": self.id, "Name": self.name, "Type": self.type, "Created": self.created,
                "Vpc": self.vpc, "Description": self.description,
                "CreatorRequestId": self.creator_request_id, "SoaTtl": self.soa_ttl,
                "Tags": self.tags}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Namespace:
        return cls(d["Id"], d["Name"], d["Type"], d["Created"], d.get("Vpc"),
                   d.get("Description"), d.get("CreatorRequestId"), d.get("SoaTtl"),
                   list(d.get("Tags") or []))


@dataclass(frozen=True)
class DnsRecordConf:
    type: str
    ttl: int


@dataclass
class Service:
    id: str
    name: str
    namespace_id: str
    created: float
    type: str  # HTTP | DNS_HTTP
    description: str | None = None
    routing_policy: str | None = None
    records: list[DnsRecordConf] = field(default_factory=list)
    custom_health: bool = False
    creator_request_id: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    revision: int = 1  # DiscoverInstances' InstancesRevision: grows with each change
    attributes: dict[str, str] = field(default_factory=dict)  # ServiceAttributes

    @property
    def key(self) -> str:
        return self.name.lower()

    def arn(self, region: str) -> str:
        return f"arn:aws:servicediscovery:{region}:{ACCOUNT}:service/{self.id}"

    def has(self, rtype: str) -> bool:
        return any(r.type == rtype for r in self.records)

    def to_doc(self) -> dict[str, Any]:
        return {"Id": self.id, "Name": self.name, "NamespaceId": self.namespace_id,
                "Created": self.created, "Type": self.type, "Description": self.description,
                "RoutingPolicy": self.routing_policy,
                "Records": [{"Type": r.type, "TTL": r.ttl} for r in self.records],
                "CustomHealth": self.custom_health, "CreatorRequestId": self.creator_request_id,
                "Tags": self.tags, "Revision": self.revision, "Attributes": self.attributes}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Service:
        return cls(d["Id"], d["Name"], d["NamespaceId"], d["Created"], d["Type"],
                   d.get("Description"), d.get("RoutingPolicy"),
                   [DnsRecordConf(r["Type"], r["TTL"]) for r in d.get("Records") or []],
                   bool(d.get("CustomHealth")), d.get("CreatorRequestId"),
                   list(d.get("Tags") or []), int(d.get("Revision", 1)),
                   dict(d.get("Attributes") or {}))


@dataclass
class Instance:
    service_id: str
    id: str
    attributes: dict[str, str]
    created: float
    creator_request_id: str | None = None
    health: str | None = None  # HEALTHY | UNHEALTHY with a custom health check, else None

    @property
    def ipv4(self) -> str | None:
        return self.attributes.get("AWS_INSTANCE_IPV4")

    def to_doc(self) -> dict[str, Any]:
        return {"ServiceId": self.service_id, "Id": self.id, "Attributes": self.attributes,
                "Created": self.created, "CreatorRequestId": self.creator_request_id,
                "Health": self.health}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Instance:
        return cls(d["ServiceId"], d["Id"], dict(d["Attributes"]), d["Created"],
                   d.get("CreatorRequestId"), d.get("Health"))


OPERATION_TYPES = ("CREATE_NAMESPACE", "DELETE_NAMESPACE", "UPDATE_NAMESPACE", "UPDATE_SERVICE",
                   "REGISTER_INSTANCE", "DEREGISTER_INSTANCE")
OPERATION_STATUSES = ("SUBMITTED", "PENDING", "SUCCESS", "FAIL")


@dataclass
class Operation:
    """An asynchronous change as the API reports it: fargo applies it at once, so it goes
    from SUBMITTED to SUCCESS (or FAIL) within the call that made it."""

    id: str
    type: str
    created: float
    targets: dict[str, str]  # NAMESPACE | SERVICE | INSTANCE -> id
    status: str = "SUBMITTED"
    updated: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None  # the CreatorRequestId / UpdaterRequestId it was made with
    request: str = ""  # what that request asked, to tell a retry from a reuse of its id

    def to_doc(self) -> dict[str, Any]:
        return {"Id": self.id, "Type": self.type, "Created": self.created,
                "Targets": self.targets, "Status": self.status, "Updated": self.updated,
                "ErrorCode": self.error_code, "ErrorMessage": self.error_message,
                "RequestId": self.request_id, "Request": self.request}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Operation:
        return cls(d["Id"], d["Type"], d["Created"], dict(d["Targets"]), d["Status"],
                   d.get("Updated", d["Created"]), d.get("ErrorCode"), d.get("ErrorMessage"),
                   d.get("RequestId"), d.get("Request", ""))


# ---- names and ids


def namespace_key(name: str) -> str:
    return name.removesuffix(".").lower()


def check_private_name(name: str) -> str:
    """A private DNS namespace's name: a DNS name Route 53 could make a zone of."""
    if name.startswith("arn:") or not dns.is_hostname(name):
        raise invalid(f"Namespace name {name[:300]!r} is not a valid DNS domain name: labels "
                      "of letters, digits, hyphens and underscores, 1-63 characters each, "
                      "253 in all.")
    return name.removesuffix(".")


def fqdn(service: Service, namespace: Namespace) -> str:
    """The name a service's DNS records have (a service named "." has its namespace's)."""
    return namespace.key if service.name == "." else f"{service.key}.{namespace.key}"


def id_from(ref: str, kind: str) -> str:
    """A namespace's or service's id from its id or ARN (…:namespace/ns-…)."""
    if ref.startswith("arn:"):
        return ref.rsplit(f":{kind}/", 1)[-1] if f":{kind}/" in ref else ""
    return ref


# ---- services


def dns_config(raw: Mapping[str, Any], namespace: Namespace) -> tuple[str, list[DnsRecordConf]]:
    """A DnsConfig's routing policy (MULTIVALUE unless named) and records, by AWS's rules."""
    if namespace.type != PRIVATE:
        raise invalid("DnsConfig can only be specified for a service in a DNS namespace: "
                      f"{namespace.id} is an HTTP namespace.")
    given = raw.get("DnsRecords") or []
    if not given:
        raise invalid("DnsConfig.DnsRecords must hold at least one record.")
    types = [r["Type"] for r in given]
    if len(set(types)) != len(types):
        raise invalid("DnsConfig.DnsRecords may hold each record type once.")
    if sorted(types) not in (["A"], ["AAAA"], ["A", "AAAA"], ["SRV"], ["A", "SRV"],
                             ["AAAA", "SRV"], ["A", "AAAA", "SRV"], ["CNAME"]):
        raise invalid(f"DnsConfig.DnsRecords: {', '.join(types)} is no combination Cloud Map "
                      "makes (A, AAAA, both, SRV with or without them, or CNAME alone).")
    policy = raw.get("RoutingPolicy") or MULTIVALUE
    if "CNAME" in types and policy != WEIGHTED:
        raise invalid("DnsConfig.RoutingPolicy must be WEIGHTED for CNAME records.")
    return policy, [DnsRecordConf(r["Type"], int(r["TTL"])) for r in given]


def changed_records(service: Service, given: Sequence[Mapping[str, Any]]) -> list[DnsRecordConf]:
    """UpdateService's DnsRecords: the same types, new TTLs."""
    new = [DnsRecordConf(r["Type"], int(r["TTL"])) for r in given]
    if sorted(r.type for r in new) != sorted(r.type for r in service.records):
        raise invalid("Service.DnsConfig.DnsRecords: record types cannot be changed (they are "
                      f"{', '.join(r.type for r in service.records) or 'none'}); delete and "
                      "re-create the service to change them.")
    return new


def check_service_fqdn(name: str, namespace: Namespace) -> None:
    if namespace.type != PRIVATE:
        return
    full = namespace.key if name == "." else f"{name.lower()}.{namespace.key}"
    if dns.name_key(full) is None:
        raise invalid(f"Service name {name[:300]!r} with namespace {namespace.name!r} is "
                      "longer than a DNS name may be.")


# ---- instances


def instance_attributes(service: Service, namespace: Namespace, instance_id: str,
                        attributes: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """RegisterInstance's attributes checked against the service, and the instance's first
    health status (custom health checks only)."""
    attrs = dict(attributes)
    custom = [k for k in attrs if k not in RESERVED]
    if len(custom) > MAX_CUSTOM_ATTRIBUTES:
        raise invalid(f"Attributes: at most {MAX_CUSTOM_ATTRIBUTES} custom attributes.")
    if sum(len(k) + len(v) for k, v in attrs.items()) > MAX_ATTRIBUTE_CHARS:
        raise invalid(f"Attributes: keys and values may hold {MAX_ATTRIBUTE_CHARS} characters "
                      "in all.")
    for key in attrs:
        if key.startswith("AWS_") and key not in RESERVED:
            raise invalid(f"Attributes: {key[:255]} is not an attribute Cloud Map knows.")
    if "AWS_EC2_INSTANCE_ID" in attrs:
        raise invalid("Attributes: AWS_EC2_INSTANCE_ID names an EC2 instance: fargo has none.")
    if "AWS_ALIAS_DNS_NAME" in attrs:
        raise invalid("Attributes: AWS_ALIAS_DNS_NAME (alias records to a load balancer) is "
                      "not supported by fargo; register the load balancer's addresses as "
                      "AWS_INSTANCE_IPV4 instead.")
    ipv4, ipv6 = attrs.get("AWS_INSTANCE_IPV4"), attrs.get("AWS_INSTANCE_IPV6")
    if ipv4 is not None:
        attrs["AWS_INSTANCE_IPV4"] = _address(ipv4, 4, "AWS_INSTANCE_IPV4")
    if ipv6 is not None:
        attrs["AWS_INSTANCE_IPV6"] = _address(ipv6, 6, "AWS_INSTANCE_IPV6")
    port = attrs.get("AWS_INSTANCE_PORT")
    if port is not None and not (port.isdigit() and str(int(port)) == port
                                 and 1 <= int(port) <= 65535):
        raise invalid(f"Attributes: AWS_INSTANCE_PORT {port[:20]!r} is not a port (1-65535).")
    needs = {"A": "AWS_INSTANCE_IPV4", "AAAA": "AWS_INSTANCE_IPV6", "SRV": "AWS_INSTANCE_PORT",
             "CNAME": "AWS_INSTANCE_CNAME"}
    for conf in service.records:
        if needs[conf.type] not in attrs:
            raise invalid(f"Attributes: {needs[conf.type]} is required: service {service.id} "
                          f"has {conf.type} records.")
    if service.has("SRV"):
        if ipv4 is None and ipv6 is None:
            raise invalid("Attributes: AWS_INSTANCE_IPV4 or AWS_INSTANCE_IPV6 is required for "
                          "a service with SRV records.")
        target = f"{instance_id.lower()}.{fqdn(service, namespace)}"
        if dns.name_key(target) is None:
            raise invalid(f"InstanceId {instance_id[:64]!r}: the SRV record's target "
                          f"{target[:300]!r} would be no valid DNS name.")
    cname = attrs.get("AWS_INSTANCE_CNAME")
    if cname is not None and (not service.has("CNAME") or dns.name_key(cname) is None):
        raise invalid("Attributes: AWS_INSTANCE_CNAME must be a DNS name, for a service with "
                      "CNAME records.")
    health = attrs.pop("AWS_INIT_HEALTH_STATUS", None)
    if health is not None and (not service.custom_health or health not in (HEALTHY, UNHEALTHY)):
        raise invalid("Attributes: AWS_INIT_HEALTH_STATUS is HEALTHY or UNHEALTHY, for a "
                      "service with HealthCheckCustomConfig.")
    return attrs, (health or HEALTHY) if service.custom_health else None


def _address(text: str, version: int, what: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise invalid(f"Attributes: {what} {text[:60]!r} is not an IPv{version} address.")
    return str(ip)


def health_of(service: Service, instance: Instance) -> str:
    """What DiscoverInstances reports: the custom status, UNKNOWN without a health check."""
    return (instance.health or HEALTHY) if service.custom_health else UNKNOWN


def discover(service: Service, instances: Sequence[Instance], query: Mapping[str, str],
             optional: Mapping[str, str], health: str, limit: int) -> list[Instance]:
    """DiscoverInstances: every QueryParameters attribute must match; OptionalParameters
    narrow the result only if some instance matches them all; the HealthStatus filter only
    counts for services with a health check."""
    found = [i for i in instances if all(i.attributes.get(k) == v for k, v in query.items())]
    if optional:
        narrowed = [i for i in found
                    if all(i.attributes.get(k) == v for k, v in optional.items())]
        found = narrowed or found
    if service.custom_health:
        healthy = [i for i in found if health_of(service, i) == HEALTHY]
        if health == HEALTHY:
            found = healthy
        elif health == UNHEALTHY:
            found = [i for i in found if health_of(service, i) == UNHEALTHY]
        elif health == "HEALTHY_OR_ELSE_ALL":
            found = healthy or found
    return found[:limit]


# ---- DNS records


def answered(service: Service, instances: Sequence[Instance], sample: Sample[Instance]
             ) -> list[Instance]:
    """The instances one query is answered with, by the service's routing policy."""
    if not instances:
        return []
    healthy = [i for i in instances if i.health != UNHEALTHY] if service.custom_health \
        else list(instances)
    pool = healthy or list(instances)  # none healthy: as if all were
    count = 1 if service.routing_policy == WEIGHTED else min(MULTIVALUE_MAX, len(pool))
    return sample(pool, count)


def service_records(service: Service, namespace: Namespace, chosen: Sequence[Instance]
                    ) -> list[Record]:
    """The records at service.namespace for the instances a query drew."""
    name = fqdn(service, namespace)
    out: list[Record] = []
    for conf in service.records:
        for inst in chosen:
            a = inst.attributes
            if conf.type == "A" and a.get("AWS_INSTANCE_IPV4"):
                out.append(Record(name, conf.ttl, A(a["AWS_INSTANCE_IPV4"])))
            elif conf.type == "AAAA" and a.get("AWS_INSTANCE_IPV6"):
                out.append(Record(name, conf.ttl, AAAA(a["AWS_INSTANCE_IPV6"])))
            elif conf.type == "CNAME" and a.get("AWS_INSTANCE_CNAME"):
                out.append(Record(name, conf.ttl, Cname(a["AWS_INSTANCE_CNAME"])))
            elif conf.type == "SRV" and a.get("AWS_INSTANCE_PORT"):
                out.append(Record(name, conf.ttl, Srv(1, 1, int(a["AWS_INSTANCE_PORT"]),
                                                      f"{inst.id.lower()}.{name}")))
    return out


def instance_records(service: Service, namespace: Namespace, inst: Instance) -> list[Record]:
    """The A/AAAA records at an SRV record's target (instance.service.namespace)."""
    name = f"{inst.id.lower()}.{fqdn(service, namespace)}"
    ttl = next((r.ttl for r in service.records if r.type == "SRV"), dns.DEFAULT_TTL)
    out: list[Record] = []
    if inst.attributes.get("AWS_INSTANCE_IPV4"):
        out.append(Record(name, ttl, A(inst.attributes["AWS_INSTANCE_IPV4"])))
    if inst.attributes.get("AWS_INSTANCE_IPV6"):
        out.append(Record(name, ttl, AAAA(inst.attributes["AWS_INSTANCE_IPV6"])))
    return out


# ---- lists


@dataclass(frozen=True)
class Filter:
    name: str
    values: tuple[str, ...]
    condition: str


_CONDITIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "namespace": {"TYPE": ("EQ", "IN", "BEGINS_WITH"), "NAME": ("EQ", "BEGINS_WITH"),
                  "HTTP_NAME": ("EQ", "BEGINS_WITH"), "RESOURCE_OWNER": ("EQ",)},
    "service": {"NAMESPACE_ID": ("EQ",), "RESOURCE_OWNER": ("EQ",)},
    "operation": {"NAMESPACE_ID": ("EQ",), "SERVICE_ID": ("EQ",), "STATUS": ("EQ", "IN"),
                  "TYPE": ("EQ", "IN"), "UPDATE_DATE": ("BETWEEN",)},
}


def filters(raw: Sequence[Mapping[str, Any]] | None, kind: str) -> list[Filter]:
    out: list[Filter] = []
    for f in raw or []:
        name, values = f["Name"], tuple(f["Values"])
        condition = f.get("Condition") or ("BETWEEN" if name == "UPDATE_DATE" else "EQ")
        allowed = _CONDITIONS[kind].get(name)
        if allowed is None:
            raise invalid(f"Filters: {name} is not a filter of this list.")
        if condition not in allowed:
            raise invalid(f"Filters: {name} takes the condition {' or '.join(allowed)}, not "
                          f"{condition}.")
        wanted = {"EQ": 1, "BEGINS_WITH": 1, "BETWEEN": 2}.get(condition)
        if (wanted is not None and len(values) != wanted) or not values:
            raise invalid(f"Filters: {name} with {condition} takes "
                          f"{wanted or 'one or more'} value{'s' if wanted != 1 else ''}.")
        if name == "RESOURCE_OWNER" and values[0] not in ("SELF", "OTHER_ACCOUNTS"):
            raise invalid("Filters: RESOURCE_OWNER is SELF or OTHER_ACCOUNTS.")
        if name == "UPDATE_DATE":
            try:
                [float(v) for v in values]
            except ValueError:
                raise invalid("Filters: UPDATE_DATE takes two Unix times.") from None
        out.append(Filter(name, values, condition))
    return out


def matches(f: Filter, value: str | float | None) -> bool:
    if f.name == "RESOURCE_OWNER":
        return f.values[0] == "SELF"  # one account: nothing is shared with it
    if f.condition == "BETWEEN":
        return value is not None and float(f.values[0]) <= float(value) <= float(f.values[1])
    text = "" if value is None else str(value)
    if f.condition == "BEGINS_WITH":
        return text.lower().startswith(f.values[0].lower())
    if f.name in ("NAME", "HTTP_NAME"):
        return text.lower() in {v.lower() for v in f.values}
    return text in f.values


# ---- tags


def check_tags(tags: Sequence[Mapping[str, str]], existing: Sequence[Mapping[str, str]],
               resource: str) -> list[dict[str, str]]:
    """Tags merged onto a resource's (keys replace), by Cloud Map's limits."""
    merged = {t["Key"]: t["Value"] for t in existing}
    for t in tags:
        if t["Key"].lower().startswith("aws:"):
            raise invalid(f"Tag key {t['Key'][:128]!r}: the aws: prefix is reserved.")
        if not re.fullmatch(r"[\w\s.:/=+\-@]*", t["Key"] + t["Value"]):
            raise invalid(f"Tag {t['Key'][:128]!r}: keys and values hold letters, digits, "
                          "spaces and _ . : / = + - @ only.")
        merged[t["Key"]] = t["Value"]
    if len(merged) > MAX_TAGS:
        raise CloudMapError(f"A resource may have at most {MAX_TAGS} tags.",
                            "TooManyTagsException", ResourceName=resource)
    return [{"Key": k, "Value": v} for k, v in merged.items()]
