"""VPCs, subnets and security groups: records in the store, enforcement through the host's
network (port/protocols.py's Network).

The default VPC and its subnets come from the settings (model/vpc.py) and are not stored; the
VPCs and subnets users make, and every security group (the default VPC's default group too,
since its rules can change), are rows. Every change that matters to packets re-renders the
firewall in full under one lock; a task starting or stopping is a small set update."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..model import secgroups as sgm
from ..model import vpc as vpcm
from ..model.errors import ApiError, InvalidParameterException, ServerException
from ..model.secgroups import SecurityGroup
from ..model.vpc import Subnet, Vpc, VpcRecord
from ..port.firewall import FirewallSpec, GroupRules
from ..port.protocols import Network

log = logging.getLogger("fargo.network")
_ID = re.compile(r"^(vpc|subnet|sg)-[0-9a-f]{1,17}$")
GROUPS_PER_TASK = 5  # AWS: security groups per network interface


def new_id(kind: str) -> str:
    """An EC2-style id: vpc-, subnet-, sg- or sgr- and 17 hex digits."""
    return f"{kind}-{uuid.uuid4().hex[:17]}"


@dataclass(frozen=True)
class TaskNet:
    """What the network needs to know of an active task (the task engine gives these)."""

    tid: str
    ip: str
    subnet_id: str
    groups: tuple[str, ...] = ()  # empty: a record from before security groups


class NetStore(Protocol):
    """The store's rows for vpcs, subnets and security_groups."""

    def get_net(self, table: str, obj_id: str) -> dict[str, Any] | None: ...

    def put_net(self, table: str, obj_id: str, vpc: str, doc: dict[str, Any]) -> None: ...

    def list_net(self, table: str, vpc: str | None = None) -> list[dict[str, Any]]: ...

    def delete_net(self, table: str, obj_id: str) -> None: ...


def _known_id(value: object, kind: str) -> str | None:
    text = str(value)
    return text if _ID.match(text) and text.startswith(kind + "-") else None


def _not_found(code: str, what: str, value: object) -> ApiError:
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
    """active_tasks: the tasks not yet stopped (also those still provisioning), which
    keep their subnets and groups from being deleted."""

    def __init__(self, store: NetStore, vpc: Vpc, network: Network,
                 active_tasks: Callable[[], Iterable[TaskNet]]):
        self.store = store
        self.vpc = vpc
        self.network = network
        self.active_tasks = active_tasks
        self.subnets = SubnetView(self)
        self._lock = threading.RLock()
        self._members: dict[str, tuple[str, list[str]]] = {}  # tid -> its ip, its groups

    # ---- start: converge the kernel on the store
    def start(self, tasks: Iterable[TaskNet]) -> None:
        self.network.start()
        with self._lock:
            if self.store.get_net("security_groups", self.vpc.default_sg) is None:
                self._put_group(SecurityGroup(
                    self.vpc.default_sg, "default", "default VPC security group", self.vpc.id,
                    tuple(sgm.default_rules(self.vpc.default_sg, True, new_id))))
            for t in tasks:
                self._members[t.tid] = (t.ip, self._groups_of(t))
            self._apply()

    def _groups_of(self, t: TaskNet) -> list[str]:
        """Its groups; a record from before security groups has its VPC's default, as AWS."""
        if t.groups:
            return list(t.groups)
        subnet = self.subnet(t.subnet_id)
        return [self.default_group(subnet.vpc_id)] if subnet else []

    # ---- lookups
    def all_subnets(self) -> list[Subnet]:
        return list(self.vpc.subnets) + [vpcm.subnet_from_doc(d)
                                         for d in self.store.list_net("subnets")]

    def subnet(self, subnet_id: str) -> Subnet | None:
        for s in self.vpc.subnets:
            if s.id == subnet_id:
                return s
        if not _known_id(subnet_id, "subnet"):
            return None
        doc = self.store.get_net("subnets", subnet_id)
        return vpcm.subnet_from_doc(doc) if doc else None

    def _vpc(self, vpc_id: str) -> VpcRecord:
        if vpc_id == self.vpc.id:
            return self.vpc.record()
        doc = self.store.get_net("vpcs", vpc_id) if _known_id(vpc_id, "vpc") else None
        if doc is None:
            raise _not_found("InvalidVpcID.NotFound", "vpc ID", vpc_id)
        return VpcRecord.from_doc(doc)

    def default_group(self, vpc_id: str) -> str:
        return self.vpc.default_sg if vpc_id == self.vpc.id else self._vpc(vpc_id).default_sg

    def group(self, group_id: str) -> SecurityGroup:
        doc = self.store.get_net("security_groups", group_id) \
            if _known_id(group_id, "sg") else None
        if doc is None:
            raise _not_found("InvalidGroup.NotFound", "security group", group_id)
        return SecurityGroup.from_doc(doc)

    def group_by_name(self, name: str | None, vpc_id: str | None = None) -> SecurityGroup:
        vpc_id = vpc_id or self.vpc.id
        for g in self._groups(vpc_id):
            if g.name == name:
                return g
        raise ApiError(f"The security group '{str(name)[:100]}' does not exist in VPC "
                       f"'{vpc_id}'", code="InvalidGroup.NotFound")

    def find_group(self, group_id: str | None, name: str | None) -> SecurityGroup:
        if group_id:
            return self.group(group_id)
        if name:
            return self.group_by_name(name)
        raise sgm.missing("GroupId")

    def _groups(self, vpc_id: str | None = None) -> list[SecurityGroup]:
        return [SecurityGroup.from_doc(d) for d in self.store.list_net("security_groups", vpc_id)]

    # ---- VPCs
    def vpc_items(self) -> list[VpcRecord]:
        return [self.vpc.record()] + [VpcRecord.from_doc(d) for d in self.store.list_net("vpcs")]

    def create_vpc(self, cidr: str | None) -> VpcRecord:
        if not cidr:
            raise sgm.missing("CidrBlock")
        net = vpcm.block(cidr, "vpc")
        with self._lock:
            vpc = VpcRecord(new_id("vpc"), str(net), False, new_id("sg"))
            self.store.put_net("vpcs", vpc.id, vpc.id, vpc.to_doc())
            self._put_group(SecurityGroup(vpc.default_sg, "default", "default VPC security group",
                                          vpc.id, tuple(sgm.default_rules(vpc.default_sg, True,
                                                                          new_id))))

            def undo() -> None:
                self.store.delete_net("vpcs", vpc.id)
                self.store.delete_net("security_groups", vpc.default_sg)

            self._apply_or_undo(undo)
        return vpc

    def delete_vpc(self, vpc_id: str) -> None:
        with self._lock:
            vpc = self._vpc(vpc_id)
            if vpc.is_default:
                raise ApiError("fargo's default VPC cannot be deleted.",
                               code="OperationNotPermitted")
            groups = self._groups(vpc.id)
            if self.store.list_net("subnets", vpc.id) or len(groups) > 1:
                raise ApiError(f"The vpc '{vpc.id}' has dependencies and cannot be "
                               "deleted.", code="DependencyViolation")
            for g in groups:
                self.store.delete_net("security_groups", g.id)
            self.store.delete_net("vpcs", vpc.id)
            self._apply()

    # ---- subnets
    def create_subnet(self, vpc_id: str | None, cidr: str | None, zone: str | None) -> Subnet:
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
            block = vpcm.subnet_block(cidr, vpc.cidr, [s.cidr for s in self.all_subnets()])
            subnet = Subnet(new_id("subnet"), vpc.id, block, zone, zones[zone])
            try:  # its own bridge now: a block the host already routes elsewhere fails here
                self.network.ensure_bridge(subnet)
            except Exception as err:  # noqa: BLE001 - any refusal of the host is a conflict
                raise ApiError(f"The CIDR '{block}' conflicts with a network of this host: "
                               f"{str(err)[:200]}", code="InvalidSubnet.Conflict") from None
            self.store.put_net("subnets", subnet.id, subnet.vpc_id, vpcm.subnet_to_doc(subnet))
            self._apply_or_undo(lambda: self._drop_subnet(subnet.id))
        return subnet

    def delete_subnet(self, subnet_id: str) -> None:
        with self._lock:
            subnet = self.subnet(subnet_id) if subnet_id else None
            if subnet is None:
                raise _not_found("InvalidSubnetID.NotFound", "subnet ID", subnet_id)
            if subnet in self.vpc.subnets:
                raise ApiError("fargo's default subnets cannot be deleted.",
                               code="OperationNotPermitted")
            if any(t.subnet_id == subnet.id for t in self.active_tasks()):
                raise ApiError(f"The subnet '{subnet.id}' has dependencies and cannot be "
                               "deleted.", code="DependencyViolation")
            self._drop_subnet(subnet.id)
            self._apply()

    def _drop_subnet(self, subnet_id: str) -> None:
        self.store.delete_net("subnets", subnet_id)
        self.network.remove_bridge(subnet_id)

    # ---- security groups
    def group_items(self) -> list[SecurityGroup]:
        return self._groups()

    def create_group(self, name: str | None, description: str | None,
                     vpc_id: str | None) -> SecurityGroup:
        name = sgm.check_group_name(name)
        description = sgm.check_text(description, "group description", "GroupDescription")
        with self._lock:
            vpc = self._vpc(vpc_id or self.vpc.id)
            if any(g.name == name for g in self._groups(vpc.id)):
                raise ApiError(f"The security group '{name}' already exists for VPC "
                               f"'{vpc.id}'", code="InvalidGroup.Duplicate")
            gid = new_id("sg")
            group = SecurityGroup(gid, name, description, vpc.id,
                                  tuple(sgm.default_rules(gid, False, new_id)))
            self._put_group(group)
            self._apply_or_undo(lambda: self.store.delete_net("security_groups", gid))
        return group

    def delete_group(self, group_id: str | None, name: str | None) -> str:
        with self._lock:
            group = self.find_group(group_id, name)
            gid = group.id
            if group.name == "default":
                raise ApiError(f'the specified group: "{gid}" name: "default" cannot be deleted '
                               "by a user", code="CannotDelete")
            if gid in self._groups_in_use():
                raise _dependency(gid)
            for other in self._groups():
                if other.id != gid and any(r.group == gid for r in other.rules):
                    raise _dependency(gid)
            self.store.delete_net("security_groups", gid)
            self._apply_or_undo(lambda: self._put_group(group))
        return gid

    def change_rules(self, group_id: str | None, name: str | None,
                     perms: list[dict[str, Any]], *, egress: bool, add: bool
                     ) -> tuple[str, list[sgm.Rule]]:
        """Authorize (add) or revoke rules; all or nothing. Returns the rules touched.
        perms: IpPermission objects as the request gave them."""
        with self._lock:
            group = self.find_group(group_id, name)

            def resolve(pair: dict[str, Any]) -> str:
                if pair.get("GroupId"):
                    found = self.group(pair["GroupId"])
                else:
                    found = self.group_by_name(pair.get("GroupName"), group.vpc_id)
                if found.vpc_id != group.vpc_id:
                    raise sgm.invalid(f"You have specified two resources that belong to "
                                      f"different networks: {found.id} and {group.id}.")
                return found.id

            wanted = sgm.parse_permissions(perms, egress, resolve)
            current = list(group.rules)
            if add:
                rules, touched = sgm.add_rules(current, wanted, new_id)
            else:
                rules, touched = sgm.remove_rules(current, wanted)
            self._put_group(replace(group, rules=tuple(rules)))
            self._apply_or_undo(lambda: self._put_group(group))
        return group.id, touched

    def _put_group(self, group: SecurityGroup) -> None:
        self.store.put_net("security_groups", group.id, group.vpc_id, group.to_doc())

    def _groups_in_use(self) -> set[str]:
        used: set[str] = set()
        for t in self.active_tasks():
            used.update(self._groups_of(t))
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

    def task_up(self, tid: str, ip: str, groups: list[str], subnet_id: str) -> None:
        """Before the task's interface exists: it is born inside its groups."""
        groups = self._groups_of(TaskNet(tid, ip, subnet_id, tuple(groups)))
        with self._lock:
            self._members[tid] = (ip, groups)
            self.network.join_groups(tid, ip, groups)

    def task_down(self, tid: str) -> None:
        """After the interface is gone, so the address is never unfiltered while it lives."""
        with self._lock:
            entry = self._members.pop(tid, None)
            if entry:
                ip, groups = entry
                live = {g.id for g in self._groups()}
                self.network.leave_groups(tid, ip, [g for g in groups if g in live])

    # ---- the kernel side
    def spec(self) -> FirewallSpec:
        subnets = self.all_subnets()
        members: dict[str, set[str]] = {}
        tasks: dict[str, str] = {}
        for tid, (ip, gids) in self._members.items():
            tasks[tid] = ip
            for gid in gids:
                members.setdefault(gid, set()).add(ip)
        return FirewallSpec(
            nets=[s.cidr for s in subnets], gateways=[s.gateway for s in subnets],
            subnets=[s.id for s in subnets],
            groups=[GroupRules(g.id, list(g.rules), admits_host=g.admits_host)
                    for g in self._groups()],
            members=members, tasks=tasks)

    def _apply(self) -> None:
        self.network.apply_firewall(self.spec())

    def _apply_or_undo(self, undo: Callable[[], object]) -> None:
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
