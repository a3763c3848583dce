"""VPCs, subnets and security groups: records in the store, enforcement through the firewall.

The default VPC and its subnets come from the settings (model/vpc.py) and are not stored; the
VPCs and subnets users make, and every security group (the default VPC's default group too,
since its rules can change), are rows. Every change that matters to packets re-renders the
firewall in full under one lock; a task starting or stopping is a small set update."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ..agent.firewall import Group, Spec
from ..agent.network import ensure_bridge_netfilter
from ..model import secgroups as sgm
from ..model import vpc as vpcm
from ..model.errors import ApiError, InvalidParameterException, ServerException
from ..model.task import task_id_of
from ..model.vpc import Subnet, Vpc

log = logging.getLogger("fargo.network")
_ID = re.compile(r"^(vpc|subnet|sg)-[0-9a-f]{1,17}$")
GROUPS_PER_TASK = 5  # AWS: security groups per network interface


def _known_id(value: Any, kind: str) -> str | None:
    text = str(value)
    return text if _ID.match(text) and text.startswith(kind + "-") else None


def _not_found(code: str, what: str, value: Any) -> ApiError:
    return ApiError(f"The {what} '{str(value)[:100]}' does not exist", code=code)


def _dependency(what: str) -> ApiError:
    return ApiError(f"resource {what} has a dependent object", code="DependencyViolation")


class SubnetView(Mapping[str, Subnet]):
    """Subnet id -> Subnet over the default VPC and the store, for the task engine."""

    def __init__(self, nets: Networks):
        self._nets = nets

    def __getitem__(self, key: str) -> Subnet:
        found = self._nets.subnet(key)
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter([s.id for s in self._nets.all_subnets()])

    def __len__(self) -> int:
        return len(self._nets.all_subnets())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._nets.subnet(key) is not None


class Networks:
    def __init__(self, store: Any, vpc: Vpc, agent: Any):
        self.store = store
        self.vpc = vpc
        self.agent = agent  # HostAgent: .firewall, .network (bridges)
        self.subnets = SubnetView(self)
        self._lock = threading.RLock()
        self._members: dict[str, tuple[str, list[str], str]] = {}  # tid -> ip, groups, veth

    # ---- start: converge the kernel on the store
    def start(self) -> None:
        ensure_bridge_netfilter()
        with self._lock:
            if self.store.get_net("security_groups", self.vpc.default_sg) is None:
                self._put_group(self.vpc.default_sg, "default", "default VPC security group",
                                self.vpc.id, sgm.default_rules(self.vpc.default_sg, True))
            for task in self.store.active_tasks():
                tid = task_id_of(task)
                priv = task["_fargo"]
                subnet = self.subnet(priv["subnet"])
                groups = priv.get("groups") or ([self.default_group(subnet.vpc_id)]
                                                if subnet else [])
                self._members[tid] = (priv["ip"], groups, self.agent.network.veth_name(tid))
            self._apply()

    # ---- lookups
    def all_subnets(self) -> list[Subnet]:
        return list(self.vpc.subnets) + [_subnet(d) for d in self.store.list_net("subnets")]

    def subnet(self, subnet_id: str) -> Subnet | None:
        for s in self.vpc.subnets:
            if s.id == subnet_id:
                return s
        if not _known_id(subnet_id, "subnet"):
            return None
        doc = self.store.get_net("subnets", subnet_id)
        return _subnet(doc) if doc else None

    def _vpc(self, vpc_id: Any) -> dict[str, Any]:
        if vpc_id == self.vpc.id:
            return {"VpcId": self.vpc.id, "CidrBlock": self.vpc.cidr, "IsDefault": True}
        doc = self.store.get_net("vpcs", vpc_id) if _known_id(vpc_id, "vpc") else None
        if doc is None:
            raise _not_found("InvalidVpcID.NotFound", "vpc ID", vpc_id)
        return doc

    def default_group(self, vpc_id: str) -> str:
        return self.vpc.default_sg if vpc_id == self.vpc.id else self._vpc(vpc_id)["DefaultSg"]

    def group(self, group_id: Any) -> dict[str, Any]:
        doc = self.store.get_net("security_groups", group_id) \
            if _known_id(group_id, "sg") else None
        if doc is None:
            raise _not_found("InvalidGroup.NotFound", "security group", group_id)
        return doc

    def group_by_name(self, name: Any, vpc_id: str | None = None) -> dict[str, Any]:
        vpc_id = vpc_id or self.vpc.id
        for doc in self.store.list_net("security_groups", vpc_id):
            if doc["GroupName"] == name:
                return doc
        raise ApiError(f"The security group '{str(name)[:100]}' does not exist in VPC "
                       f"'{vpc_id}'", code="InvalidGroup.NotFound")

    def find_group(self, group_id: Any, name: Any) -> dict[str, Any]:
        if group_id:
            return self.group(group_id)
        if name:
            return self.group_by_name(name)
        raise sgm.missing("GroupId")

    # ---- VPCs
    def vpc_items(self) -> list[dict[str, Any]]:
        return [{"VpcId": self.vpc.id, "CidrBlock": self.vpc.cidr, "IsDefault": True}] + \
            self.store.list_net("vpcs")

    def create_vpc(self, cidr: Any) -> dict[str, Any]:
        if not cidr:
            raise sgm.missing("CidrBlock")
        net = vpcm.block(cidr, "vpc")
        with self._lock:
            vpc_id, sg_id = sgm.new_id("vpc"), sgm.new_id("sg")
            doc = {"VpcId": vpc_id, "CidrBlock": str(net), "IsDefault": False, "DefaultSg": sg_id}
            self.store.put_net("vpcs", vpc_id, vpc_id, doc)
            self._put_group(sg_id, "default", "default VPC security group", vpc_id,
                            sgm.default_rules(sg_id, True))
            self._apply_or_undo(lambda: (self.store.delete_net("vpcs", vpc_id),
                                         self.store.delete_net("security_groups", sg_id)))
        return doc

    def delete_vpc(self, vpc_id: Any) -> None:
        with self._lock:
            doc = self._vpc(vpc_id)
            if doc["IsDefault"]:
                raise ApiError("fargo's default VPC cannot be deleted.",
                               code="OperationNotPermitted")
            groups = self.store.list_net("security_groups", doc["VpcId"])
            if self.store.list_net("subnets", doc["VpcId"]) or len(groups) > 1:
                raise ApiError(f"The vpc '{doc['VpcId']}' has dependencies and cannot be "
                               "deleted.", code="DependencyViolation")
            for g in groups:
                self.store.delete_net("security_groups", g["GroupId"])
            self.store.delete_net("vpcs", doc["VpcId"])
            self._apply()

    # ---- subnets
    def create_subnet(self, vpc_id: Any, cidr: Any, zone: Any) -> Subnet:
        if not vpc_id:
            raise sgm.missing("VpcId")
        if not cidr:
            raise sgm.missing("CidrBlock")
        zones = {s.zone: s.zone_id for s in self.vpc.subnets}
        zone = zone or self.vpc.subnets[0].zone
        if zone not in zones:
            raise sgm.invalid(f"Value ({str(zone)[:60]}) for parameter availabilityZone is "
                              f"invalid. Subnets can currently only be created in the following "
                              f"availability zones: {', '.join(zones)}.")
        with self._lock:
            vpc = self._vpc(vpc_id)
            block = vpcm.subnet_block(cidr, vpc["CidrBlock"], [s.cidr for s in
                                                               self.all_subnets()])
            subnet = Subnet(sgm.new_id("subnet"), vpc["VpcId"], block, zone, zones[zone])
            try:  # its own bridge now: a block the host already routes elsewhere fails here
                self.agent.network.ensure_bridge(subnet.id, subnet.cidr)
            except Exception as err:  # noqa: BLE001 - any refusal of the host is a conflict
                raise ApiError(f"The CIDR '{block}' conflicts with a network of this host: "
                               f"{str(err)[:200]}", code="InvalidSubnet.Conflict") from None
            self.store.put_net("subnets", subnet.id, subnet.vpc_id, _subnet_doc(subnet))
            self._apply_or_undo(lambda: self._drop_subnet(subnet.id))
        return subnet

    def delete_subnet(self, subnet_id: Any) -> None:
        with self._lock:
            subnet = self.subnet(str(subnet_id)) if subnet_id else None
            if subnet is None:
                raise _not_found("InvalidSubnetID.NotFound", "subnet ID", subnet_id)
            if subnet in self.vpc.subnets:
                raise ApiError("fargo's default subnets cannot be deleted.",
                               code="OperationNotPermitted")
            if any(t["_fargo"]["subnet"] == subnet.id for t in self.store.active_tasks()):
                raise ApiError(f"The subnet '{subnet.id}' has dependencies and cannot be "
                               "deleted.", code="DependencyViolation")
            self._drop_subnet(subnet.id)
            self._apply()

    def _drop_subnet(self, subnet_id: str) -> None:
        self.store.delete_net("subnets", subnet_id)
        self.agent.network.remove_bridge(subnet_id)

    # ---- security groups
    def group_items(self) -> list[dict[str, Any]]:
        return self.store.list_net("security_groups")

    def create_group(self, name: Any, description: Any, vpc_id: Any) -> dict[str, Any]:
        name = sgm.check_group_name(name)
        description = sgm.check_text(description, "group description", "GroupDescription")
        with self._lock:
            vpc = self._vpc(vpc_id or self.vpc.id)
            if any(g["GroupName"] == name
                   for g in self.store.list_net("security_groups", vpc["VpcId"])):
                raise ApiError(f"The security group '{name}' already exists for VPC "
                               f"'{vpc['VpcId']}'", code="InvalidGroup.Duplicate")
            gid = sgm.new_id("sg")
            doc = self._put_group(gid, name, description, vpc["VpcId"],
                                  sgm.default_rules(gid, False))
            self._apply_or_undo(lambda: self.store.delete_net("security_groups", gid))
        return doc

    def delete_group(self, group_id: Any, name: Any) -> str:
        with self._lock:
            doc = self.find_group(group_id, name)
            gid = doc["GroupId"]
            if doc["GroupName"] == "default":
                raise ApiError(f'the specified group: "{gid}" name: "default" cannot be deleted '
                               "by a user", code="CannotDelete")
            if gid in self._groups_in_use():
                raise _dependency(gid)
            for other in self.store.list_net("security_groups"):
                if other["GroupId"] != gid and any(r.get("group") == gid
                                                   for r in other["rules"]):
                    raise _dependency(gid)
            self.store.delete_net("security_groups", gid)
            self._apply_or_undo(lambda: self.store.put_net("security_groups", gid,
                                                           doc["VpcId"], doc))
        return gid

    def change_rules(self, group_id: Any, name: Any, perms: list[dict[str, Any]], *,
                     egress: bool, add: bool) -> tuple[str, list[sgm.Rule]]:
        """Authorize (add) or revoke rules; all or nothing. Returns the rules touched."""
        with self._lock:
            doc = self.find_group(group_id, name)
            vpc_id = doc["VpcId"]

            def resolve(pair: dict[str, Any]) -> str:
                if pair.get("GroupId"):
                    found = self.group(pair["GroupId"])
                else:
                    found = self.group_by_name(pair.get("GroupName"), vpc_id)
                if found["VpcId"] != vpc_id:
                    raise sgm.invalid(f"You have specified two resources that belong to "
                                      f"different networks: {found['GroupId']} and "
                                      f"{doc['GroupId']}.")
                return str(found["GroupId"])

            wanted = sgm.parse_permissions(perms, egress, resolve)
            current = [sgm.Rule.from_doc(r) for r in doc["rules"]]
            rules, touched = (sgm.add_rules if add else sgm.remove_rules)(current, wanted)
            old = dict(doc)
            doc["rules"] = [r.to_doc() for r in rules]
            self.store.put_net("security_groups", doc["GroupId"], vpc_id, doc)
            self._apply_or_undo(lambda: self.store.put_net("security_groups", old["GroupId"],
                                                           vpc_id, old))
        return doc["GroupId"], touched

    def _put_group(self, gid: str, name: str, description: str, vpc_id: str,
                   rules: list[sgm.Rule]) -> dict[str, Any]:
        doc = {"GroupId": gid, "GroupName": name, "Description": description,
               "VpcId": vpc_id, "rules": [r.to_doc() for r in rules]}
        self.store.put_net("security_groups", gid, vpc_id, doc)
        return doc

    def _groups_in_use(self) -> set[str]:
        used: set[str] = set()
        for task in self.store.active_tasks():
            priv = task["_fargo"]
            if priv.get("groups"):
                used.update(priv["groups"])
            else:
                subnet = self.subnet(priv["subnet"])
                if subnet:
                    used.add(self.default_group(subnet.vpc_id))
        return used

    # ---- tasks (RunTask's check, then the engine's start and teardown)
    def task_groups(self, ids: list[Any], subnets: list[Subnet]) -> list[str]:
        vpcs = {s.vpc_id for s in subnets}
        if len(vpcs) > 1:
            raise InvalidParameterException("The subnets must all belong to the same VPC.")
        vpc_id = vpcs.pop()
        if not ids:
            return [self.default_group(vpc_id)]
        if len(ids) > GROUPS_PER_TASK:
            raise InvalidParameterException(
                f"At most {GROUPS_PER_TASK} security groups can be given.")
        out: list[str] = []
        for sg in ids:
            doc = self.store.get_net("security_groups", sg) if _known_id(sg, "sg") else None
            if doc is None or doc["VpcId"] != vpc_id:
                raise InvalidParameterException(
                    f"Error retrieving security group information for [{str(sg)[:64]}]: "
                    f"The security group '{str(sg)[:64]}' does not exist")
            if sg not in out:
                out.append(sg)
        return out

    def task_up(self, tid: str, ip: str, groups: list[str]) -> None:
        """Before the task's interface exists: it is born inside its groups."""
        veth = self.agent.network.veth_name(tid)
        if not groups:  # a record from before security groups: its VPC's default, as AWS
            task = self.store.get_task(tid)
            subnet = self.subnet(task["_fargo"]["subnet"]) if task else None
            groups = [self.default_group(subnet.vpc_id)] if subnet else []
        with self._lock:
            self._members[tid] = (ip, list(groups), veth)
            self.agent.firewall.member(ip, groups, veth, add=True)

    def task_down(self, tid: str) -> None:
        """After the interface is gone, so the address is never unfiltered while it lives."""
        with self._lock:
            entry = self._members.pop(tid, None)
            if entry:
                ip, groups, veth = entry
                live = {g["GroupId"] for g in self.store.list_net("security_groups")}
                self.agent.firewall.member(ip, [g for g in groups if g in live], veth, add=False)

    # ---- the kernel side
    def spec(self) -> Spec:
        subnets = self.all_subnets()
        groups = self.store.list_net("security_groups")
        members: dict[str, set[str]] = {}
        ports = {}
        for ip, gids, veth in self._members.values():
            ports[veth] = ip
            for gid in gids:
                members.setdefault(gid, set()).add(ip)
        return Spec(nets=[s.cidr for s in subnets], gateways=[s.gateway for s in subnets],
                    bridges=[self.agent.network.bridge_name(s.id) for s in subnets],
                    groups=[Group(g["GroupId"], [sgm.Rule.from_doc(r) for r in g["rules"]],
                                  admits_host=g["GroupName"] == "default") for g in groups],
                    members=members, ports=ports)

    def _apply(self) -> None:
        self.agent.firewall.apply(self.spec())

    def _apply_or_undo(self, undo: Any) -> None:
        """The store leads; if the kernel refuses the new state, put the store back."""
        try:
            self._apply()
        except Exception as err:
            log.exception("applying security groups")
            undo()
            try:
                self._apply()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.exception("re-applying the previous security groups")
            raise ServerException(f"could not apply security groups: {err}"[:500]) from None


def _subnet(doc: dict[str, Any]) -> Subnet:
    return Subnet(doc["SubnetId"], doc["VpcId"], doc["CidrBlock"], doc["AvailabilityZone"],
                  doc["AvailabilityZoneId"])


def _subnet_doc(s: Subnet) -> dict[str, Any]:
    return {"SubnetId": s.id, "VpcId": s.vpc_id, "CidrBlock": s.cidr, "AvailabilityZone": s.zone,
            "AvailabilityZoneId": s.zone_id}
