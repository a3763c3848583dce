"""Nested lists of the EC2 query protocol (IpPermissions.1.IpRanges.2.CidrIp=...) as dicts."""

from __future__ import annotations

from typing import Any

from ..model.secgroups import invalid

MAX_ENTRIES = 100  # more list entries than any real request holds


def entries(form: dict[str, str], prefix: str) -> list[dict[str, str]]:
    """Prefix.N.Rest=value pairs as one dict per N (Rest keeps any deeper levels), in N order."""
    found: dict[int, dict[str, str]] = {}
    for key, value in form.items():
        if not key.startswith(prefix + "."):
            continue
        index, _, rest = key[len(prefix) + 1:].partition(".")
        if not rest or not index.isdigit() or len(index) > 6:
            continue
        found.setdefault(int(index), {})[rest] = value
    if len(found) > MAX_ENTRIES:
        raise invalid(f"Too many {prefix} entries: at most {MAX_ENTRIES}.")
    return [found[n] for n in sorted(found)]


_LEGACY = ("IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName")


def permissions(form: dict[str, str]) -> list[dict[str, Any]]:
    """IpPermission dicts from either the IpPermissions.N form or the older top-level one
    (IpProtocol, FromPort, ToPort, CidrIp, SourceSecurityGroupName)."""
    perms: list[dict[str, Any]] = []
    for sub in entries(form, "IpPermissions"):
        perms.append({"IpProtocol": sub.get("IpProtocol"), "FromPort": sub.get("FromPort"),
                      "ToPort": sub.get("ToPort"), "IpRanges": entries(sub, "IpRanges"),
                      "UserIdGroupPairs": entries(sub, "Groups"),
                      "Ipv6Ranges": entries(sub, "Ipv6Ranges"),
                      "PrefixListIds": entries(sub, "PrefixListIds")})
    if not any(form.get(k) for k in _LEGACY):
        return perms
    if perms:
        raise invalid("Give either IpPermissions or IpProtocol/FromPort/ToPort/CidrIp/"
                      "SourceSecurityGroupName, not both.")
    pairs = [{"GroupName": form["SourceSecurityGroupName"]}] \
        if form.get("SourceSecurityGroupName") else []
    ranges = [{"CidrIp": form["CidrIp"]}] if form.get("CidrIp") else []
    # A bare source group stands for every protocol, as EC2 reads the old form.
    proto = form.get("IpProtocol") or ("-1" if pairs and not ranges else None)
    return [{"IpProtocol": proto, "FromPort": form.get("FromPort"), "ToPort": form.get("ToPort"),
             "IpRanges": ranges, "UserIdGroupPairs": pairs}]
