"""EC2's IpPermission lists from a request's parameters: the IpPermissions form or the older
top-level one, as the control methods take them."""

from __future__ import annotations

from typing import Any

from ..model.secgroups import invalid

MAX_ENTRIES = 100  # more list entries than any real request holds


def _entries(params: dict[str, Any], name: str, wire: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = params.get(name) or []
    if len(found) > MAX_ENTRIES:
        raise invalid(f"Too many {wire} entries: at most {MAX_ENTRIES}.")
    return found


_LEGACY = ("IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName")


def permissions(params: dict[str, Any]) -> list[dict[str, Any]]:
    """IpPermission dicts from either the IpPermissions form or the older top-level one
    (IpProtocol, FromPort, ToPort, CidrIp, SourceSecurityGroupName); params as
    ec2query.parse_params gives them."""
    perms: list[dict[str, Any]] = []
    for sub in _entries(params, "IpPermissions", "IpPermissions"):
        perms.append({"IpProtocol": sub.get("IpProtocol"), "FromPort": sub.get("FromPort"),
                      "ToPort": sub.get("ToPort"),
                      "IpRanges": _entries(sub, "IpRanges", "IpRanges"),
                      "UserIdGroupPairs": _entries(sub, "UserIdGroupPairs", "Groups"),
                      "Ipv6Ranges": _entries(sub, "Ipv6Ranges", "Ipv6Ranges"),
                      "PrefixListIds": _entries(sub, "PrefixListIds", "PrefixListIds")})
    if not any(params.get(k) for k in _LEGACY):
        return perms
    if perms:
        raise invalid("Give either IpPermissions or IpProtocol/FromPort/ToPort/CidrIp/"
                      "SourceSecurityGroupName, not both.")
    pairs = [{"GroupName": params["SourceSecurityGroupName"]}] \
        if params.get("SourceSecurityGroupName") else []
    ranges = [{"CidrIp": params["CidrIp"]}] if params.get("CidrIp") else []
    # A bare source group stands for every protocol, as EC2 reads the old form.
    proto = params.get("IpProtocol") or ("-1" if pairs and not ranges else None)
    return [{"IpProtocol": proto, "FromPort": params.get("FromPort"),
             "ToPort": params.get("ToPort"), "IpRanges": ranges, "UserIdGroupPairs": pairs}]
