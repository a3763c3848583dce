"""The SSM Parameter Store face: each request, already checked against botocore's ssm shape
by awsjson.dispatch_json, becomes a call to control/ssm.py with named arguments; what it
returns is rendered in the API's own member names."""

from __future__ import annotations

from ..control.ssm import Described, Found, Ssm
from .awsjson import Handler, JsonObject

SERVICE = "ssm"
PREFIX = "AmazonSSM"


def _parameter(f: Found) -> JsonObject:
    v = f.version
    out: JsonObject = {"Name": v.name, "Type": v.type, "Value": f.value, "Version": v.version,
                       "LastModifiedDate": v.modified, "ARN": v.arn, "DataType": v.data_type}
    if f.selector is not None:
        out["Selector"] = f.selector
    return out


def _metadata(d: Described) -> JsonObject:
    v = d.version
    out: JsonObject = {"Name": v.name, "ARN": v.arn, "Type": v.type,
                       "LastModifiedDate": v.modified, "Description": v.description,
                       "Version": v.version, "Tier": v.tier, "Policies": [],
                       "DataType": v.data_type}
    if v.key_id is not None:
        out["KeyId"] = v.key_id
    return out


def _paged(out: JsonObject, token: str | None) -> JsonObject:
    if token is not None:
        out["NextToken"] = token
    return out


def handlers(ssm: Ssm) -> dict[str, Handler]:
    """Action name -> handler(params, region), as awsjson.dispatch_json calls them."""

    def put_parameter(p: JsonObject, region: str) -> JsonObject:
        v = ssm.put_parameter(p["Name"], region, value=p["Value"], type=p.get("Type"),
                              overwrite=bool(p.get("Overwrite")),
                              description=p.get("Description"), tier=p.get("Tier"),
                              key_id=p.get("KeyId"), allowed_pattern=p.get("AllowedPattern"),
                              policies=p.get("Policies"), data_type=p.get("DataType"),
                              tags=p.get("Tags"))
        return {"Version": v.version, "Tier": v.tier}

    def get_parameter(p: JsonObject, region: str) -> JsonObject:
        found = ssm.get_parameter(p["Name"], region, decrypt=bool(p.get("WithDecryption")))
        return {"Parameter": _parameter(found)}

    def get_parameters(p: JsonObject, region: str) -> JsonObject:
        found, missing = ssm.get_parameters(p["Names"], region,
                                            decrypt=bool(p.get("WithDecryption")))
        return {"Parameters": [_parameter(f) for f in found], "InvalidParameters": missing}

    def get_parameters_by_path(p: JsonObject, region: str) -> JsonObject:
        found, token = ssm.get_parameters_by_path(
            p["Path"], region, recursive=bool(p.get("Recursive")),
            filters=p.get("ParameterFilters"), decrypt=bool(p.get("WithDecryption")),
            max_results=p.get("MaxResults"), token=p.get("NextToken"))
        return _paged({"Parameters": [_parameter(f) for f in found]}, token)

    def describe_parameters(p: JsonObject, region: str) -> JsonObject:
        found, token = ssm.describe_parameters(
            region, filters=p.get("Filters"), parameter_filters=p.get("ParameterFilters"),
            max_results=p.get("MaxResults"), token=p.get("NextToken"),
            shared=bool(p.get("Shared")))
        return _paged({"Parameters": [_metadata(d) for d in found]}, token)

    def delete_parameter(p: JsonObject, region: str) -> JsonObject:
        ssm.delete_parameter(p["Name"], region)
        return {}

    def delete_parameters(p: JsonObject, region: str) -> JsonObject:
        deleted, missing = ssm.delete_parameters(p["Names"], region)
        return {"DeletedParameters": deleted, "InvalidParameters": missing}

    def list_tags_for_resource(p: JsonObject, region: str) -> JsonObject:
        return {"TagList": ssm.list_tags(p["ResourceType"], p["ResourceId"], region)}

    return {"PutParameter": put_parameter, "GetParameter": get_parameter,
            "GetParameters": get_parameters, "GetParametersByPath": get_parameters_by_path,
            "DescribeParameters": describe_parameters, "DeleteParameter": delete_parameter,
            "DeleteParameters": delete_parameters,
            "ListTagsForResource": list_tags_for_resource}
