"""EC2's describe calls over the host's network: the default VPC, its subnets, zones, groups."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..model.errors import ApiError
from ..model.names import ACCOUNT
from ..model.vpc import Vpc
from .ec2query import filters, numbered


def _match(item: dict[str, Any], flt: dict[str, list[str]], keys: dict[str, str]) -> bool:
    for name, wanted in flt.items():
        key = keys.get(name)
        if key is None:
            raise ApiError(f"The filter '{name[:100]}' is invalid", code="InvalidParameterValue")
        if str(item.get(key)).lower() not in [w.lower() for w in wanted]:
            return False
    return True


def _select(items: list[dict[str, Any]], ids: list[str], id_key: str, missing_code: str,
            what: str) -> list[dict[str, Any]]:
    if not ids:
        return items
    known = {i[id_key] for i in items}
    for wanted in ids:
        if wanted not in known:
            raise ApiError(f"The {what} '{wanted[:100]}' does not exist", code=missing_code)
    return [i for i in items if i[id_key] in ids]


class Ec2Face:
    def __init__(self, vpc: Vpc):
        self.vpc = vpc

    def handlers(self) -> dict[str, Any]:
        return {"DescribeVpcs": self.describe_vpcs, "DescribeSubnets": self.describe_subnets,
                "DescribeSecurityGroups": self.describe_security_groups,
                "DescribeAvailabilityZones": self.describe_zones}

    def describe_vpcs(self, form: dict[str, str]) -> dict[str, Any]:
        v = self.vpc
        items = [{"VpcId": v.id, "CidrBlock": v.cidr, "State": "available", "IsDefault": True,
                  "OwnerId": ACCOUNT, "InstanceTenancy": "default",
                  "DhcpOptionsId": "dopt-00000000"}]
        items = _select(items, numbered(form, "VpcId"), "VpcId", "InvalidVpcID.NotFound",
                        "vpc ID")
        keys = {"vpc-id": "VpcId", "cidr": "CidrBlock", "state": "State",
                "is-default": "IsDefault", "cidr-block-association.cidr-block": "CidrBlock"}
        return {"Vpcs": [i for i in items if _match(i, filters(form), keys)]}

    def describe_subnets(self, form: dict[str, str]) -> dict[str, Any]:
        items = []
        for s in self.vpc.subnets:
            free = ipaddress.ip_network(s.cidr).num_addresses - 5
            items.append({"SubnetId": s.id, "VpcId": s.vpc_id, "CidrBlock": s.cidr,
                          "AvailabilityZone": s.zone, "AvailabilityZoneId": s.zone_id,
                          "State": "available", "AvailableIpAddressCount": free,
                          "DefaultForAz": False, "MapPublicIpOnLaunch": False,
                          "OwnerId": ACCOUNT,
                          "SubnetArn": f"arn:aws:ec2:{self.vpc.region}:{ACCOUNT}:subnet/{s.id}"})
        items = _select(items, numbered(form, "SubnetId"), "SubnetId",
                        "InvalidSubnetID.NotFound", "subnet ID")
        keys = {"vpc-id": "VpcId", "subnet-id": "SubnetId", "availability-zone": "AvailabilityZone",
                "cidr-block": "CidrBlock", "state": "State", "default-for-az": "DefaultForAz"}
        return {"Subnets": [i for i in items if _match(i, filters(form), keys)]}

    def describe_security_groups(self, form: dict[str, str]) -> dict[str, Any]:
        everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        items = [{"GroupId": self.vpc.default_sg, "GroupName": "default", "VpcId": self.vpc.id,
                  "Description": "default VPC security group", "OwnerId": ACCOUNT,
                  "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [
                      {"GroupId": self.vpc.default_sg, "UserId": ACCOUNT}]}],
                  "IpPermissionsEgress": everything}]
        items = _select(items, numbered(form, "GroupId"), "GroupId", "InvalidGroup.NotFound",
                        "security group")
        keys = {"vpc-id": "VpcId", "group-id": "GroupId", "group-name": "GroupName"}
        return {"SecurityGroups": [i for i in items if _match(i, filters(form), keys)]}

    def describe_zones(self, form: dict[str, str]) -> dict[str, Any]:
        items = [{"ZoneName": s.zone, "ZoneId": s.zone_id, "State": "available",
                  "RegionName": self.vpc.region, "ZoneType": "availability-zone",
                  "OptInStatus": "opt-in-not-required", "GroupName": self.vpc.region,
                  "NetworkBorderGroup": self.vpc.region, "Messages": []}
                 for s in self.vpc.subnets]
        names = numbered(form, "ZoneName")
        if names:
            items = [i for i in items if i["ZoneName"] in names]
        keys = {"zone-name": "ZoneName", "zone-id": "ZoneId", "state": "State",
                "region-name": "RegionName"}
        return {"AvailabilityZones": [i for i in items if _match(i, filters(form), keys)]}
