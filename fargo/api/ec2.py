"""EC2's network calls: VPCs, subnets, zones and security groups (records in control/network).

Each handler takes the request's parameters as ec2query parsed them against the operation's
shape, calls one control method with named arguments, and renders its records."""

from __future__ import annotations

from typing import Any

from ..control.interfaces import TaskInterfaces
from ..control.network import Networks
from ..model.errors import ApiError
from ..model.ipam import Ipam
from ..model.names import ACCOUNT
from ..model.secgroups import SecurityGroup, missing, to_permissions, to_rule_shape
from ..model.vpc import Subnet, Vpc, VpcRecord
from . import ec2_interfaces
from .ec2forms import permissions
from .ec2query import Handler

Params = dict[str, Any]
Answer = dict[str, Any]


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) else None


def _texts(params: Params, name: str) -> list[str]:
    return [v for v in params.get(name) or [] if isinstance(v, str)]


def _required(params: Params, name: str) -> str:
    value = _text(params, name)
    if not value:
        raise missing(name)
    return value


def _filters(params: Params) -> dict[str, list[str]]:
    """Filters by name; two filters of one name pool their values."""
    out: dict[str, list[str]] = {}
    for flt in params.get("Filters") or []:
        name = flt.get("Name")
        if name is not None:
            out.setdefault(name, []).extend(flt.get("Values") or [])
    return out


def _match(item: Answer, flt: dict[str, list[str]], keys: dict[str, str]) -> bool:
    for name, wanted in flt.items():
        key = keys.get(name)
        if key is None:
            raise ApiError(f"The filter '{name[:100]}' is invalid", code="InvalidParameterValue")
        if str(item.get(key)).lower() not in [w.lower() for w in wanted]:
            return False
    return True


def _select(items: list[Answer], ids: list[str], id_key: str, missing_code: str,
            what: str) -> list[Answer]:
    if not ids:
        return items
    known = {i[id_key] for i in items}
    for wanted in ids:
        if wanted not in known:
            raise ApiError(f"The {what} '{wanted[:100]}' does not exist", code=missing_code)
    return [i for i in items if i[id_key] in ids]


class Ec2Face:
    def __init__(self, vpc: Vpc, networks: Networks, interfaces: TaskInterfaces | None = None):
        self.vpc = vpc
        self.nets = networks
        self.interfaces = interfaces or TaskInterfaces(lambda: [], networks)

    def handlers(self) -> dict[str, Handler]:
        return {"DescribeVpcs": self.describe_vpcs, "DescribeSubnets": self.describe_subnets,
                "DescribeSecurityGroups": self.describe_security_groups,
                "DescribeAvailabilityZones": self.describe_zones,
                "DescribeNetworkInterfaces": self.describe_network_interfaces,
                "CreateVpc": self.create_vpc, "DeleteVpc": self.delete_vpc,
                "CreateSubnet": self.create_subnet, "DeleteSubnet": self.delete_subnet,
                "CreateSecurityGroup": self.create_security_group,
                "DeleteSecurityGroup": self.delete_security_group,
                "AuthorizeSecurityGroupIngress": self._rules(egress=False, add=True),
                "AuthorizeSecurityGroupEgress": self._rules(egress=True, add=True),
                "RevokeSecurityGroupIngress": self._rules(egress=False, add=False),
                "RevokeSecurityGroupEgress": self._rules(egress=True, add=False)}

    # ---- VPCs and subnets
    def _vpc_item(self, vpc: VpcRecord) -> Answer:
        return {"VpcId": vpc.id, "CidrBlock": vpc.cidr, "State": "available",
                "IsDefault": vpc.is_default, "OwnerId": ACCOUNT, "InstanceTenancy": "default",
                "DhcpOptionsId": "dopt-00000000",
                "CidrBlockAssociationSet": [{
                    "AssociationId": "vpc-cidr-assoc-" + vpc.id[4:],
                    "CidrBlock": vpc.cidr, "CidrBlockState": {"State": "associated"}}]}

    def describe_vpcs(self, params: Params) -> Answer:
        items = [self._vpc_item(v) for v in self.nets.vpc_items()]
        items = _select(items, _texts(params, "VpcIds"), "VpcId", "InvalidVpcID.NotFound",
                        "vpc ID")
        keys = {"vpc-id": "VpcId", "cidr": "CidrBlock", "state": "State",
                "is-default": "IsDefault", "cidr-block-association.cidr-block": "CidrBlock"}
        return {"Vpcs": [i for i in items if _match(i, _filters(params), keys)]}

    def create_vpc(self, params: Params) -> Answer:
        return {"Vpc": self._vpc_item(self.nets.create_vpc(_text(params, "CidrBlock")))}

    def delete_vpc(self, params: Params) -> Answer:
        self.nets.delete_vpc(_required(params, "VpcId"))
        return {}

    def _subnet_item(self, s: Subnet) -> Answer:
        return {"SubnetId": s.id, "VpcId": s.vpc_id, "CidrBlock": s.cidr,
                "AvailabilityZone": s.zone, "AvailabilityZoneId": s.zone_id,
                "State": "available",
                "AvailableIpAddressCount": Ipam.count(s.cidr),
                "DefaultForAz": False, "MapPublicIpOnLaunch": False, "OwnerId": ACCOUNT,
                "SubnetArn": f"arn:aws:ec2:{self.vpc.region}:{ACCOUNT}:subnet/{s.id}"}

    def describe_subnets(self, params: Params) -> Answer:
        items = [self._subnet_item(s) for s in self.nets.all_subnets()]
        items = _select(items, _texts(params, "SubnetIds"), "SubnetId",
                        "InvalidSubnetID.NotFound", "subnet ID")
        keys = {"vpc-id": "VpcId", "subnet-id": "SubnetId", "availability-zone": "AvailabilityZone",
                "cidr-block": "CidrBlock", "state": "State", "default-for-az": "DefaultForAz"}
        return {"Subnets": [i for i in items if _match(i, _filters(params), keys)]}

    def create_subnet(self, params: Params) -> Answer:
        subnet = self.nets.create_subnet(_text(params, "VpcId"), _text(params, "CidrBlock"),
                                         _text(params, "AvailabilityZone"))
        return {"Subnet": self._subnet_item(subnet)}

    def delete_subnet(self, params: Params) -> Answer:
        self.nets.delete_subnet(_required(params, "SubnetId"))
        return {}

    # ---- security groups
    def _group_item(self, g: SecurityGroup) -> Answer:
        return {"GroupId": g.id, "GroupName": g.name, "Description": g.description,
                "VpcId": g.vpc_id, "OwnerId": ACCOUNT, "SecurityGroupArn": self._group_arn(g.id),
                "IpPermissions": to_permissions([r for r in g.rules if not r.egress]),
                "IpPermissionsEgress": to_permissions([r for r in g.rules if r.egress])}

    def _group_arn(self, gid: str) -> str:
        return f"arn:aws:ec2:{self.vpc.region}:{ACCOUNT}:security-group/{gid}"

    def describe_security_groups(self, params: Params) -> Answer:
        items = [self._group_item(g) for g in self.nets.group_items()]
        items = _select(items, _texts(params, "GroupIds"), "GroupId", "InvalidGroup.NotFound",
                        "security group")
        names = _texts(params, "GroupNames")
        for name in names:  # names are looked up in the default VPC, as EC2 does
            self.nets.group_by_name(name)
        if names:
            items = [i for i in items if i["GroupName"] in names and i["VpcId"] == self.vpc.id]
        keys = {"vpc-id": "VpcId", "group-id": "GroupId", "group-name": "GroupName",
                "description": "Description"}
        return {"SecurityGroups": [i for i in items if _match(i, _filters(params), keys)]}

    def create_security_group(self, params: Params) -> Answer:
        # The shape's Description travels as GroupDescription.
        group = self.nets.create_group(_text(params, "GroupName"), _text(params, "Description"),
                                       _text(params, "VpcId"))
        return {"GroupId": group.id, "SecurityGroupArn": self._group_arn(group.id)}

    def delete_security_group(self, params: Params) -> Answer:
        gid = self.nets.delete_group(_text(params, "GroupId"), _text(params, "GroupName"))
        return {"Return": True, "GroupId": gid}

    def _rules(self, *, egress: bool, add: bool) -> Handler:
        def handler(params: Params) -> Answer:
            gid, touched = self.nets.change_rules(
                _text(params, "GroupId"), None if egress else _text(params, "GroupName"),
                permissions(params), egress=egress, add=add)
            shapes = [to_rule_shape(r, gid) for r in touched]
            if add:
                return {"Return": True, "SecurityGroupRules": shapes}
            for shape in shapes:  # the revoked shape names a peer group by id only
                if "ReferencedGroupInfo" in shape:
                    shape["ReferencedGroupId"] = shape.pop("ReferencedGroupInfo")["GroupId"]
            return {"Return": True, "RevokedSecurityGroupRules": shapes}
        return handler

    def describe_network_interfaces(self, params: Params) -> Answer:
        """The tasks' interfaces (api/ec2_interfaces.py has the filters)."""
        return ec2_interfaces.describe(self.interfaces, params)

    def describe_zones(self, params: Params) -> Answer:
        items = [{"ZoneName": s.zone, "ZoneId": s.zone_id, "State": "available",
                  "RegionName": self.vpc.region, "ZoneType": "availability-zone",
                  "OptInStatus": "opt-in-not-required", "GroupName": self.vpc.region,
                  "NetworkBorderGroup": self.vpc.region, "Messages": []}
                 for s in self.vpc.subnets]
        names = _texts(params, "ZoneNames")
        if names:
            items = [i for i in items if i["ZoneName"] in names]
        keys = {"zone-name": "ZoneName", "zone-id": "ZoneId", "state": "State",
                "region-name": "RegionName"}
        return {"AvailabilityZones": [i for i in items if _match(i, _filters(params), keys)]}
