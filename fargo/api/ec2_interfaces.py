"""EC2 DescribeNetworkInterfaces over the tasks' interfaces (control/interfaces.py): ids,
EC2's filters for them (values may hold * and ? wildcards, matched case-sensitively), pages,
DryRun; an unknown filter is refused as EC2 refuses it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..control.interfaces import TaskInterface, TaskInterfaces
from ..model.errors import ApiError
from ..model.names import ACCOUNT
from .errors import HttpError

Params = dict[str, Any]
_ENI = re.compile(r"^eni-[0-9a-f]{8,17}$")
_NONE: Callable[[TaskInterface], list[str]] = lambda i: []  # noqa: E731 - nothing to match


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# Filter name -> the values an interface has for it. What task interfaces never have
# (public addresses, IPv6, tags, an instance) matches nothing, as on EC2.
FILTERS: dict[str, Callable[[TaskInterface], list[str]]] = {
    "network-interface-id": lambda i: [i.eni_id],
    "attachment.attachment-id": lambda i: [i.attachment_id],
    "attachment.attach-time": lambda i: [_stamp(i.attach_time)],
    "attachment.delete-on-termination": lambda i: ["false"],
    "attachment.device-index": lambda i: ["1"],
    "attachment.instance-id": _NONE,
    "attachment.instance-owner-id": lambda i: ["amazon-aws"],
    "attachment.status": lambda i: [i.attachment_status],
    "availability-zone": lambda i: [i.zone],
    "availability-zone-id": lambda i: [i.zone_id],
    "description": lambda i: [i.description],
    "group-id": lambda i: [g for g, _ in i.groups],
    "group-name": lambda i: [n for _, n in i.groups if n],
    "addresses.private-ip-address": lambda i: [i.ip],
    "addresses.primary": lambda i: ["true"],
    "addresses.association.owner-id": _NONE,
    "addresses.association.public-ip": _NONE,
    "association.allocation-id": _NONE,
    "association.association-id": _NONE,
    "association.ip-owner-id": _NONE,
    "association.public-ip": _NONE,
    "association.public-dns-name": _NONE,
    "interface-type": lambda i: ["interface"],
    "ipv6-addresses.ipv6-address": _NONE,
    "mac-address": lambda i: [i.mac] if i.mac else [],
    "operator.managed": lambda i: ["false"],
    "operator.principal": _NONE,
    "owner-id": lambda i: [ACCOUNT],
    "private-dns-name": lambda i: [i.private_dns],
    "private-ip-address": lambda i: [i.ip],
    "requester-id": _NONE,
    "requester-managed": lambda i: ["true"],
    "source-dest-check": lambda i: ["true"],
    "status": lambda i: ["in-use"],
    "subnet-id": lambda i: [i.subnet_id],
    "tag-key": _NONE,
    "vpc-id": lambda i: [i.vpc_id],
}


def _pattern(value: str) -> re.Pattern[str]:
    """EC2's filter value: * any run of characters, ? one; everything else as it is."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in value), re.DOTALL)


def _filters(params: Params) -> list[tuple[Callable[[TaskInterface], list[str]],
                                           list[re.Pattern[str]]]]:
    out = []
    for flt in params.get("Filters") or []:
        name = flt.get("Name")
        if not isinstance(name, str):
            raise ApiError("A filter needs a Name.", code="InvalidParameterValue")
        values = [v for v in flt.get("Values") or [] if isinstance(v, str)]
        if name.startswith("tag:"):
            out.append((_NONE, [_pattern(v) for v in values]))
            continue
        attr = FILTERS.get(name)
        if attr is None:
            raise ApiError(f"The filter '{name[:100]}' is invalid",
                           code="InvalidParameterValue")
        out.append((attr, [_pattern(v) for v in values]))
    return out


def _matches(eni: TaskInterface, filters: list[tuple[Callable[[TaskInterface], list[str]],
                                                       list[re.Pattern[str]]]]) -> bool:
    # Filters all hold; within one, any value matching any of the interface's values will do.
    return all(any(p.fullmatch(have) for have in attr(eni) for p in pats)
               for attr, pats in filters)


def _item(eni: TaskInterface) -> dict[str, Any]:
    item: dict[str, Any] = {
        "Attachment": {"AttachTime": _stamp(eni.attach_time), "AttachmentId": eni.attachment_id,
                       "DeleteOnTermination": False, "DeviceIndex": 1, "NetworkCardIndex": 0,
                       "InstanceOwnerId": "amazon-aws", "Status": eni.attachment_status},
        "AvailabilityZone": eni.zone, "AvailabilityZoneId": eni.zone_id,
        "Description": eni.description,
        "Groups": [{"GroupId": g, **({"GroupName": n} if n else {})} for g, n in eni.groups],
        "InterfaceType": "interface", "Ipv6Addresses": [],
        "NetworkInterfaceId": eni.eni_id, "OwnerId": ACCOUNT,
        "PrivateDnsName": eni.private_dns, "PrivateIpAddress": eni.ip,
        "PrivateIpAddresses": [{"Primary": True, "PrivateDnsName": eni.private_dns,
                                "PrivateIpAddress": eni.ip}],
        "RequesterManaged": True, "SourceDestCheck": True, "Status": "in-use",
        "SubnetId": eni.subnet_id, "TagSet": [], "VpcId": eni.vpc_id,
    }
    if eni.mac:
        item["MacAddress"] = eni.mac
    return item


def _int(params: Params, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,10}", str(value)):
        raise ApiError(f"Invalid value '{str(value)[:40]}' for {name}: a number is expected.",
                       code="InvalidParameterValue")
    return int(value)


def describe(interfaces: TaskInterfaces, params: Params) -> dict[str, Any]:
    if str(params.get("DryRun", "")).lower() == "true":
        raise HttpError("Request would have succeeded, but DryRun flag is set.",
                        "DryRunOperation", 412)
    ids = [v for v in params.get("NetworkInterfaceIds") or [] if isinstance(v, str)]
    size = _int(params, "MaxResults")
    if size is not None and ids:
        raise ApiError("The parameter NetworkInterfaceIds cannot be used with the parameter "
                       "MaxResults", code="InvalidParameterCombination")
    if size is not None and not 5 <= size <= 1000:
        raise ApiError(f"Value ( {size} ) for parameter maxResults is invalid. Expecting a "
                       "value between 5 and 1000.", code="InvalidParameterValue")
    for eni_id in ids:
        if not _ENI.match(eni_id):
            raise ApiError(f'Invalid id: "{eni_id[:100]}" (expecting "eni-...")',
                           code="InvalidNetworkInterfaceID.Malformed")
    filters = _filters(params)
    found = interfaces.list()
    known = {e.eni_id for e in found}
    missing = [i for i in ids if i not in known]
    if missing:
        raise ApiError(f"The networkInterface ID '{missing[0]}' does not exist",
                       code="InvalidNetworkInterfaceID.NotFound")
    picked = [e for e in found if (not ids or e.eni_id in ids) and _matches(e, filters)]
    picked.sort(key=lambda e: e.eni_id)  # a stable order, so that pages do not shift
    start = 0
    token = params.get("NextToken")
    if token:
        # The token names the last interface of the page before: pages hold across changes.
        if not isinstance(token, str) or not _ENI.match(token):
            raise ApiError("The pagination token is invalid.", code="InvalidPaginationToken")
        start = sum(1 for e in picked if e.eni_id <= token)
    page = picked[start:start + size] if size else picked[start:]
    out: dict[str, Any] = {"NetworkInterfaces": [_item(e) for e in page]}
    if size and start + size < len(picked):
        out["NextToken"] = page[-1].eni_id
    return out
