"""Cloud Map's face (`servicediscovery`, AWS JSON 1.1, X-Amz-Target
Route53AutoNaming_v20170314.<Action>): each request, already checked against botocore's
shape, becomes a call to control/cloudmap.py with named arguments; the records it returns are
rendered in the API's member names."""

from __future__ import annotations

import hashlib

from ..control.cloudmap import CloudMap
from ..model.cloudmap import Instance, Namespace, Operation, Service
from ..model.names import ACCOUNT
from .awsjson import Handler, JsonObject

SERVICE = "servicediscovery"
PREFIX = "Route53AutoNaming_v20170314"


def _namespace(ns: Namespace, services: int, region: str, full: bool) -> JsonObject:
    props: JsonObject = {"HttpProperties": {"HttpName": ns.name}}
    if ns.type != "HTTP":
        zone = "Z" + hashlib.sha256(ns.id.encode()).hexdigest()[:20].upper()
        props["DnsProperties"] = {"HostedZoneId": zone, "SOA": {"TTL": ns.soa_ttl}}
    out: JsonObject = {"Id": ns.id, "Arn": ns.arn(region), "ResourceOwner": ACCOUNT,
                       "Name": ns.name, "Type": ns.type, "ServiceCount": services,
                       "Properties": props, "CreateDate": ns.created}
    if ns.description is not None:
        out["Description"] = ns.description
    if full and ns.creator_request_id:
        out["CreatorRequestId"] = ns.creator_request_id
    return out


def _service(svc: Service, instances: int, region: str, full: bool) -> JsonObject:
    out: JsonObject = {"Id": svc.id, "Arn": svc.arn(region), "ResourceOwner": ACCOUNT,
                       "Name": svc.name, "Type": svc.type, "InstanceCount": instances,
                       "CreateDate": svc.created, "CreatedByAccount": ACCOUNT}
    if full:
        out["NamespaceId"] = svc.namespace_id
        if svc.creator_request_id:
            out["CreatorRequestId"] = svc.creator_request_id
    if svc.description is not None:
        out["Description"] = svc.description
    if svc.records:
        out["DnsConfig"] = {"NamespaceId": svc.namespace_id, "RoutingPolicy": svc.routing_policy,
                            "DnsRecords": [{"Type": r.type, "TTL": r.ttl} for r in svc.records]}
    if svc.custom_health:
        out["HealthCheckCustomConfig"] = {"FailureThreshold": 1}
    return out


def _instance(inst: Instance) -> JsonObject:
    out: JsonObject = {"Id": inst.id, "Attributes": inst.attributes,
                       "CreatedByAccount": ACCOUNT}
    if inst.creator_request_id:
        out["CreatorRequestId"] = inst.creator_request_id
    return out


def _operation(op: Operation) -> JsonObject:
    out: JsonObject = {"Id": op.id, "OwnerAccount": ACCOUNT, "Type": op.type,
                       "Status": op.status, "CreateDate": op.created, "UpdateDate": op.updated,
                       "Targets": op.targets}
    if op.error_code:
        out["ErrorCode"], out["ErrorMessage"] = op.error_code, op.error_message or ""
    return out


def _paged(out: JsonObject, token: str | None) -> JsonObject:
    if token is not None:
        out["NextToken"] = token
    return out


def _soa(p: JsonObject, key: str = "Properties") -> int | None:
    props = p.get(key)
    return props["DnsProperties"]["SOA"]["TTL"] if props else None


def handlers(cloudmap: CloudMap) -> dict[str, Handler]:
    """Action name -> handler(params, region), as awsjson.dispatch_json calls them."""
    cm = cloudmap

    def create_private_dns_namespace(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.create_private_dns_namespace(
            p["Name"], p["Vpc"], request_id=p.get("CreatorRequestId"),
            description=p.get("Description"), tags=p.get("Tags") or [], soa_ttl=_soa(p))}

    def create_http_namespace(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.create_http_namespace(
            p["Name"], request_id=p.get("CreatorRequestId"), description=p.get("Description"),
            tags=p.get("Tags") or [])}

    def get_namespace(p: JsonObject, region: str) -> JsonObject:
        ns, services = cm.get_namespace(p["Id"])
        return {"Namespace": _namespace(ns, services, cm.region, True)}

    def list_namespaces(p: JsonObject, region: str) -> JsonObject:
        found, token = cm.list_namespaces(p.get("Filters"), p.get("MaxResults"),
                                          p.get("NextToken"))
        return _paged({"Namespaces": [_namespace(n, c, cm.region, False) for n, c in found]},
                      token)

    def delete_namespace(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.delete_namespace(p["Id"])}

    def update_private_dns_namespace(p: JsonObject, region: str) -> JsonObject:
        change = p["Namespace"]
        return {"OperationId": cm.update_namespace(
            p["Id"], request_id=p.get("UpdaterRequestId"), description=change.get("Description"),
            soa_ttl=_soa(change), ns_type="DNS_PRIVATE")}

    def update_http_namespace(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.update_namespace(
            p["Id"], request_id=p.get("UpdaterRequestId"),
            description=p["Namespace"]["Description"], soa_ttl=None, ns_type="HTTP")}

    def create_service(p: JsonObject, region: str) -> JsonObject:
        svc = cm.create_service(
            p["Name"], p.get("NamespaceId"), request_id=p.get("CreatorRequestId"),
            description=p.get("Description"), dns_config=p.get("DnsConfig"),
            health_check=p.get("HealthCheckConfig"),
            custom_health=p.get("HealthCheckCustomConfig"), tags=p.get("Tags") or [],
            service_type=p.get("Type"))
        return {"Service": _service(svc, cm.get_service(svc.id)[1], cm.region, True)}

    def get_service(p: JsonObject, region: str) -> JsonObject:
        svc, count = cm.get_service(p["Id"])
        return {"Service": _service(svc, count, cm.region, True)}

    def list_services(p: JsonObject, region: str) -> JsonObject:
        found, token = cm.list_services(p.get("Filters"), p.get("MaxResults"),
                                        p.get("NextToken"))
        return _paged({"Services": [_service(s, c, cm.region, False) for s, c in found]}, token)

    def delete_service(p: JsonObject, region: str) -> JsonObject:
        cm.delete_service(p["Id"])
        return {}

    def update_service(p: JsonObject, region: str) -> JsonObject:
        change = p["Service"]
        dns_config = change.get("DnsConfig")
        return {"OperationId": cm.update_service(
            p["Id"], description=change.get("Description"),
            dns_records=dns_config["DnsRecords"] if dns_config else None,
            health_check=change.get("HealthCheckConfig"))}

    def get_service_attributes(p: JsonObject, region: str) -> JsonObject:
        svc = cm.service_attributes(p["ServiceId"])
        return {"ServiceAttributes": {"ServiceArn": svc.arn(cm.region),
                                      "Attributes": svc.attributes}}

    def update_service_attributes(p: JsonObject, region: str) -> JsonObject:
        cm.update_service_attributes(p["ServiceId"], p["Attributes"])
        return {}

    def delete_service_attributes(p: JsonObject, region: str) -> JsonObject:
        cm.delete_service_attributes(p["ServiceId"], p["Attributes"])
        return {}

    def register_instance(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.register_instance(
            p["ServiceId"], p["InstanceId"], p["Attributes"],
            request_id=p.get("CreatorRequestId"))}

    def deregister_instance(p: JsonObject, region: str) -> JsonObject:
        return {"OperationId": cm.deregister_instance(p["ServiceId"], p["InstanceId"])}

    def get_instance(p: JsonObject, region: str) -> JsonObject:
        inst = cm.get_instance(p["ServiceId"], p["InstanceId"])
        return {"ResourceOwner": ACCOUNT, "Instance": _instance(inst)}

    def list_instances(p: JsonObject, region: str) -> JsonObject:
        found, token = cm.list_instances(p["ServiceId"], p.get("MaxResults"),
                                         p.get("NextToken"))
        return _paged({"ResourceOwner": ACCOUNT, "Instances": [
            {"Id": i.id, "Attributes": i.attributes, "CreatedByAccount": ACCOUNT}
            for i in found]}, token)

    def get_instances_health_status(p: JsonObject, region: str) -> JsonObject:
        status, token = cm.instances_health(p["ServiceId"], p.get("Instances"),
                                            p.get("MaxResults"), p.get("NextToken"))
        return _paged({"Status": status}, token)

    def update_instance_custom_health_status(p: JsonObject, region: str) -> JsonObject:
        cm.update_custom_health(p["ServiceId"], p["InstanceId"], p["Status"])
        return {}

    def discover_instances(p: JsonObject, region: str) -> JsonObject:
        found, revision = cm.discover(
            p["NamespaceName"], p["ServiceName"], query=p.get("QueryParameters") or {},
            optional=p.get("OptionalParameters") or {},
            health=p.get("HealthStatus") or "ALL", max_results=p.get("MaxResults"))
        return {"Instances": [
            {"InstanceId": d.instance.id, "NamespaceName": d.namespace.name,
             "ServiceName": d.service.name, "HealthStatus": d.health,
             "Attributes": d.instance.attributes} for d in found],
            "InstancesRevision": revision}

    def discover_instances_revision(p: JsonObject, region: str) -> JsonObject:
        return {"InstancesRevision": cm.discover_revision(p["NamespaceName"],
                                                          p["ServiceName"])}

    def get_operation(p: JsonObject, region: str) -> JsonObject:
        return {"Operation": _operation(cm.get_operation(p["OperationId"]))}

    def list_operations(p: JsonObject, region: str) -> JsonObject:
        found, token = cm.list_operations(p.get("Filters"), p.get("MaxResults"),
                                          p.get("NextToken"))
        return _paged({"Operations": [{"Id": o.id, "Status": o.status} for o in found]}, token)

    def list_tags_for_resource(p: JsonObject, region: str) -> JsonObject:
        return {"Tags": cm.list_tags(p["ResourceARN"])}

    def tag_resource(p: JsonObject, region: str) -> JsonObject:
        cm.tag_resource(p["ResourceARN"], p["Tags"])
        return {}

    def untag_resource(p: JsonObject, region: str) -> JsonObject:
        cm.untag_resource(p["ResourceARN"], p["TagKeys"])
        return {}

    return {
        "CreatePrivateDnsNamespace": create_private_dns_namespace,
        "CreateHttpNamespace": create_http_namespace,
        "GetNamespace": get_namespace, "ListNamespaces": list_namespaces,
        "DeleteNamespace": delete_namespace,
        "UpdatePrivateDnsNamespace": update_private_dns_namespace,
        "UpdateHttpNamespace": update_http_namespace,
        "CreateService": create_service, "GetService": get_service,
        "ListServices": list_services, "DeleteService": delete_service,
        "UpdateService": update_service,
        "GetServiceAttributes": get_service_attributes,
        "UpdateServiceAttributes": update_service_attributes,
        "DeleteServiceAttributes": delete_service_attributes,
        "RegisterInstance": register_instance, "DeregisterInstance": deregister_instance,
        "GetInstance": get_instance, "ListInstances": list_instances,
        "GetInstancesHealthStatus": get_instances_health_status,
        "UpdateInstanceCustomHealthStatus": update_instance_custom_health_status,
        "DiscoverInstances": discover_instances,
        "DiscoverInstancesRevision": discover_instances_revision,
        "GetOperation": get_operation, "ListOperations": list_operations,
        "ListTagsForResource": list_tags_for_resource, "TagResource": tag_resource,
        "UntagResource": untag_resource,
    }
