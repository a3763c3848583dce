"""EC2's network calls: VPCs, subnets, zones and security groups (records in control/network)."""

from __future__ import annotations

from typing import Any

from ..control.network import Networks
from ..model.errors import ApiError
from ..model.ipam import Ipam
from ..model.names import ACCOUNT
from ..model.secgroups import Rule, missing, to_permissions, to_rule_shape
from ..model.vpc import Subnet, Vpc
from .ec2forms import permissions
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
    def __init__(self, vpc: Vpc, networks: Networks):
        self.vpc = vpc
        self.nets = networks

    def handlers(self) -> dict[str, Any]:
        return {"DescribeVpcs": self.describe_vpcs, "DescribeSubnets": self.describe_subnets,
                "DescribeSecurityGroups": self.describe_security_groups,
                "DescribeAvailabilityZones": self.describe_zones,
                "CreateVpc": self.create_vpc, "DeleteVpc": self.delete_vpc,
                "CreateSubnet": self.create_subnet, "DeleteSubnet": self.delete_subnet,
                "CreateSecurityGroup": self.create_security_group,
                "DeleteSecurityGroup": self.delete_security_group,
                "AuthorizeSecurityGroupIngress": self._rules(egress=False, add=True),
                "AuthorizeSecurityGroupEgress": self._rules(egress=True, add=True),
                "RevokeSecurityGroupIngress": self._rules(egress=False, add=False),
                "RevokeSecurityGroupEgress": self._rules(egress=True, add=False)}

    # ---- VPCs and subnets
    def _vpc_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        return {"VpcId": doc["VpcId"], "CidrBlock": doc["CidrBlock"], "State": "available",
                "IsDefault": doc["IsDefault"], "OwnerId": ACCOUNT, "InstanceTenancy": "default",
                "DhcpOptionsId": "dopt-00000000",
                "CidrBlockAssociationSet": [{
                    "AssociationId": "vpc-cidr-assoc-" + doc["VpcId"][4:],
                    "CidrBlock": doc["CidrBlock"], "CidrBlockState": {"State": "associated"}}]}

    def describe_vpcs(self, form: dict[str, str]) -> dict[str, Any]:
        items = [self._vpc_item(d) for d in self.nets.vpc_items()]
        items = _select(items, numbered(form, "VpcId"), "VpcId", "InvalidVpcID.NotFound",
                        "vpc ID")
        keys = {"vpc-id": "VpcId", "cidr": "CidrBlock", "state": "State",
                "is-default": "IsDefault", "cidr-block-association.cidr-block": "CidrBlock"}
        return {"Vpcs": [i for i in items if _match(i, filters(form), keys)]}

    def create_vpc(self, form: dict[str, str]) -> dict[str, Any]:
        return {"Vpc": self._vpc_item(self.nets.create_vpc(form.get("CidrBlock")))}

    def delete_vpc(self, form: dict[str, str]) -> dict[str, Any]:
        self.nets.delete_vpc(_required(form, "VpcId"))
        return {}

    def _subnet_item(self, s: Subnet) -> dict[str, Any]:
        return {"SubnetId": s.id, "VpcId": s.vpc_id, "CidrBlock": s.cidr,
                "AvailabilityZone": s.zone, "AvailabilityZoneId": s.zone_id,
                "State": "available",
                "AvailableIpAddressCount": Ipam.count(s.cidr),
                "DefaultForAz": False, "MapPublicIpOnLaunch": False, "OwnerId": ACCOUNT,
                "SubnetArn": f"arn:aws:ec2:{self.vpc.region}:{ACCOUNT}:subnet/{s.id}"}

    def describe_subnets(self, form: dict[str, str]) -> dict[str, Any]:
        items = [self._subnet_item(s) for s in self.nets.all_subnets()]
        items = _select(items, numbered(form, "SubnetId"), "SubnetId",
                        "InvalidSubnetID.NotFound", "subnet ID")
        keys = {"vpc-id": "VpcId", "subnet-id": "SubnetId", "availability-zone": "AvailabilityZone",
                "cidr-block": "CidrBlock", "state": "State", "default-for-az": "DefaultForAz"}
        return {"Subnets": [i for i in items if _match(i, filters(form), keys)]}

    def create_subnet(self, form: dict[str, str]) -> dict[str, Any]:
        subnet = self.nets.create_subnet(form.get("VpcId"), form.get("CidrBlock"),
                                         form.get("AvailabilityZone"))
        return {"Subnet": self._subnet_item(subnet)}

    def delete_subnet(self, form: dict[str, str]) -> dict[str, Any]:
        self.nets.delete_subnet(_required(form, "SubnetId"))
        return {}

    # ---- security groups
    def _group_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        rules = [Rule.from_doc(r) for r in doc["rules"]]
        return {"GroupId": doc["GroupId"], "GroupName": doc["GroupName"],
                "Description": doc["Description"], "VpcId": doc["VpcId"], "OwnerId": ACCOUNT,
                "SecurityGroupArn": self._group_arn(doc["GroupId"]),
                "IpPermissions": to_permissions([r for r in rules if not r.egress]),
                "IpPermissionsEgress": to_permissions([r for r in rules if r.egress])}

    def _group_arn(self, gid: str) -> str:
        return f"arn:aws:ec2:{self.vpc.region}:{ACCOUNT}:security-group/{gid}"

    def describe_security_groups(self, form: dict[str, str]) -> dict[str, Any]:
        items = [self._group_item(d) for d in self.nets.group_items()]
        items = _select(items, numbered(form, "GroupId"), "GroupId", "InvalidGroup.NotFound",
                        "security group")
        names = numbered(form, "GroupName")
        for name in names:  # names are looked up in the default VPC, as EC2 does
            self.nets.group_by_name(name)
        if names:
            items = [i for i in items if i["GroupName"] in names and i["VpcId"] == self.vpc.id]
        keys = {"vpc-id": "VpcId", "group-id": "GroupId", "group-name": "GroupName",
                "description": "Description"}
        return {"SecurityGroups": [i for i in items if _match(i, filters(form), keys)]}

    def create_security_group(self, form: dict[str, str]) -> dict[str, Any]:
        doc = self.nets.create_group(form.get("GroupName"), form.get("GroupDescription"),
                                     form.get("VpcId"))
        return {"GroupId": doc["GroupId"], "SecurityGroupArn": self._group_arn(doc["GroupId"])}

    def delete_security_group(self, form: dict[str, str]) -> dict[str, Any]:
        gid = self.nets.delete_group(form.get("GroupId"), form.get("GroupName"))
        return {"Return": True, "GroupId": gid}

    def _rules(self, *, egress: bool, add: bool) -> Any:
        def handler(form: dict[str, str]) -> dict[str, Any]:
            gid, touched = self.nets.change_rules(
                form.get("GroupId"), None if egress else form.get("GroupName"),
                permissions(form), egress=egress, add=add)
            shapes = [to_rule_shape(r, gid) for r in touched]
            if add:
                return {"Return": True, "SecurityGroupRules": shapes}
            for shape in shapes:  # the revoked shape names a peer group by id only
                if "ReferencedGroupInfo" in shape:
                    shape["ReferencedGroupId"] = shape.pop("ReferencedGroupInfo")["GroupId"]
            return {"Return": True, "RevokedSecurityGroupRules": shapes}
        return handler

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


def _required(form: dict[str, str], name: str) -> str:
    if not form.get(name):
        raise missing(name)
    return form[name]
