"""Security groups in the kernel: one nftables table per fargo prefix, applied atomically.

Why an ``inet`` table on the forward/input/output hooks, not a ``bridge`` table: with
br_netfilter, IPv4 frames crossing a bridge also pass the IPv4 forward hook, after conntrack has
seen them, so one family covers all three paths by address, with ``ct state`` for return
traffic: task -> task (forward), task -> host (input) and host -> task (output). fargo switches
``nf_call_iptables`` on for its own bridges (agent/bridges.py), so this holds even when the
host's global bridge-nf-call-iptables is 0, and the host's setting is left alone.

Layout of ``table inet fargo_<prefix>``:
- ``nets``: every subnet block; an address in it (other than a gateway) is a task address, and
  traffic to or from one on this prefix's ``bridges`` is filtered, so an address in no group
  gets nothing (fail closed);
- ``g_<group>``: the task addresses carrying each group; a task start or stop is one small
  transaction on these sets, a rule change re-renders the whole table in one transaction;
- ``sg_out``: egress rules (``return`` = allowed, then the ingress check runs), else drop;
- ``sg_in``: ingress rules, else drop.

What a task reaches, as on Fargate: other tasks, as their groups allow (forward), and nothing
else. Nothing is forwarded between these bridges and any other interface, and no new
connection from a bridge is delivered to the host itself (input): not to a gateway address, not
to any other address of the host, whatever listens there. What fargo offers a task (its
metadata and its VPC's API endpoint) is served inside the task's own netns (agent/metadata.py),
so it needs no hole here. Replies to what the host opened still pass (``ct state``).

The host is no member of any group: traffic it starts is subject to the CIDR rules of the
target's groups (its source is the subnet gateway), and a VPC's default group also admits it,
so `curl http://<task ip>:8080/` from the host works for tasks in the default group.

A second, ``bridge`` family table of the same name stops spoofing: IPv4 and ARP from a task's
veth must carry that task's own address, or a task could claim a peer's address and its groups;
any other kind of frame (IPv6, VLAN tags) from a task is dropped.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import threading

from ..model.secgroups import WITH_PORTS, Rule
from ..port.errors import InvalidSpec
from ..port.firewall import FirewallSpec
from . import nftlib
from .netnames import Names

_SAFE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def set_name(group_id: str) -> str:
    if not _SAFE.match(group_id):
        raise InvalidSpec(f"unsafe group id {group_id!r}")
    return "g_" + group_id.replace("-", "_")


def _ip(text: str) -> str:
    try:  # nothing but an address reaches nft's parser
        return str(ipaddress.IPv4Address(text))
    except ValueError as err:
        raise InvalidSpec(str(err)) from None


def _net(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as err:
        raise InvalidSpec(str(err)) from None


def _elements(items: list[str] | set[str]) -> str:
    return f" elements = {{ {', '.join(sorted(items))} }}" if items else ""


def _match(rule: Rule) -> str:
    """The protocol part of a rule as an nft expression ('' = any protocol)."""
    if rule.protocol == "-1":
        return ""
    if rule.protocol in WITH_PORTS:
        lo, hi = rule.from_port, rule.to_port
        if (lo, hi) == (0, 65535):
            return f"meta l4proto {rule.protocol}"
        ports = str(lo) if lo == hi else f"{lo}-{hi}"
        return f"meta l4proto {rule.protocol} th dport {ports}"
    if rule.protocol == "icmp":
        out = "meta l4proto icmp"
        if rule.from_port not in (None, -1):
            out += f" icmp type {int(rule.from_port)}"
        if rule.to_port not in (None, -1):
            out += f" icmp code {int(rule.to_port)}"
        return out
    return f"meta l4proto {int(rule.protocol)}"


def _peer(rule: Rule, side: str) -> str:
    if rule.group:
        return f"ip {side} @{set_name(rule.group)}"
    net = _net(rule.cidr or "0.0.0.0/0")
    return "" if net.prefixlen == 0 else f"ip {side} {net}"


def _line(*parts: str) -> str:
    return "    " + " ".join(p for p in parts if p)


def render(table: str, spec: FirewallSpec, names: Names) -> str:
    """The whole ruleset as one `nft -f` transaction: (re)create both tables from scratch.
    names turns the spec's subnet and task ids into this prefix's bridges and veths."""
    nets = [str(_net(n)) for n in spec.nets]
    gws = [_ip(g) for g in spec.gateways]
    bridges = [_quoted(names.bridge_name(s)) for s in spec.subnets]
    out = [f"table inet {table} {{}}", f"delete table inet {table}",
           f"table bridge {table} {{}}", f"delete table bridge {table}",
           f"table inet {table} {{",
           f"  set nets {{ type ipv4_addr; flags interval;{_elements(nets)} }}",
           f"  set gateways {{ type ipv4_addr;{_elements(gws)} }}",
           f"  set bridges {{ type ifname;{_elements(bridges)} }}",
           # Each bridge with itself: subnets are not routed to each other (nor VPCs).
           f"  set same_bridge {{ type ifname . ifname;"
           f"{_elements([f'{b} . {b}' for b in bridges])} }}"]
    for g in spec.groups:
        ips = [_ip(i) for i in spec.members.get(g.id, set())]
        out.append(f"  set {set_name(g.id)} {{ type ipv4_addr;{_elements(ips)} }}")
    out.append("  chain sg_out {")
    for g in spec.groups:
        for r in (r for r in g.rules if r.egress):
            out.append(_line(f"ip saddr @{set_name(g.id)}", _peer(r, "daddr"), _match(r),
                             "return"))
    out += ["    drop", "  }", "  chain sg_in {"]
    for g in spec.groups:
        for r in (r for r in g.rules if not r.egress):
            out.append(_line(f"ip daddr @{set_name(g.id)}", _peer(r, "saddr"), _match(r),
                             "accept"))
    out += ["    drop", "  }"]
    # Only packets on this prefix's own bridges: another fargo server on the host may use the
    # same addresses on bridges of its own (its subnets are not created until used).
    task_src = "iifname @bridges ip saddr @nets ip saddr != @gateways"
    task_dst = "oifname @bridges ip daddr @nets ip daddr != @gateways"
    out += ["  chain forward {", "    type filter hook forward priority filter; policy accept;",
            # Network safety, whatever the host's ip_forward says: nothing is routed between
            # this server's bridges and any other interface, in either direction.
            "    iifname @bridges oifname != @bridges drop",
            "    oifname @bridges iifname != @bridges drop",
            # Nor between two of them, whatever the host forwards: a task reaches its own
            # subnet only.
            "    iifname @bridges iifname . oifname != @same_bridge drop",
            "    ct state established,related accept",
            f"    {task_src} jump sg_out", f"    {task_dst} jump sg_in",
            # Fail closed: what no group judged (multicast, limited broadcast) is not forwarded.
            "    iifname @bridges drop", "  }",
            "  chain input {", "    type filter hook input priority filter; policy accept;",
            "    ct state established,related accept",
            # The host itself is out of reach: a task opens nothing on any of its addresses.
            "    iifname @bridges drop", "  }",
            "  chain output {", "    type filter hook output priority filter; policy accept;",
            "    ct state established,related accept", '    oifname "lo" accept']
    for g in spec.groups:
        if g.admits_host:
            out.append(f"    {task_dst} ip daddr @{set_name(g.id)} accept")
    out += [f"    {task_dst} jump sg_in", "  }", "}"]
    out += render_ports(table, {names.veth_name(tid): ip for tid, ip in spec.tasks.items()})
    return "\n".join(out) + "\n"


def render_ports(table: str, ports: dict[str, str]) -> list[str]:
    names = {v: f'"{_veth(v)}"' for v in ports}
    pairs = [f"{names[v]} . {_ip(ip)}" for v, ip in ports.items()]
    return [f"table bridge {table} {{",
            f"  set ports {{ type ifname . ipv4_addr;{_elements(pairs)} }}",
            f"  set veths {{ type ifname;{_elements(list(names.values()))} }}",
            "  chain prerouting {",
            "    type filter hook prerouting priority filter; policy accept;",
            "    iifname @veths ether type ip iifname . ip saddr != @ports drop",
            "    iifname @veths ether type arp iifname . arp saddr ip != @ports drop",
            "    iifname @veths ether type != { ip, arp } drop",
            "  }", "}"]


def _quoted(name: str) -> str:
    return f'"{_veth(name)}"'


def _veth(name: str) -> str:
    if not re.match(r"^[a-z0-9]{1,15}$", name):
        raise InvalidSpec(f"unsafe interface name {name!r}")
    return name


def member_update(table: str, ip: str, groups: list[str], veth: str, add: bool) -> str:
    """One transaction putting a task into (or out of) its groups' sets. Removal first adds
    the elements, so it succeeds whether or not they were there (nft 1.0.6 has no destroy)."""
    ip = _ip(ip)
    lines = []
    for gid in groups:
        lines.append(f"add element inet {table} {set_name(gid)} {{ {ip} }}")
        if not add:
            lines.append(f"delete element inet {table} {set_name(gid)} {{ {ip} }}")
    port = f'"{_veth(veth)}"'
    lines.append(f"add element bridge {table} veths {{ {port} }}")
    lines.append(f"add element bridge {table} ports {{ {port} . {ip} }}")
    if not add:
        lines.append(f"delete element bridge {table} ports {{ {port} . {ip} }}")
        lines.append(f"delete element bridge {table} veths {{ {port} }}")
    return "\n".join(lines) + "\n"


class Firewall:
    """Applies rendered rulesets for one prefix; every call is one nft transaction."""

    def __init__(self, prefix: str):
        self.names = Names(prefix)
        self.table = f"fargo_{prefix}"
        self._lock = threading.Lock()  # nft transactions of this process, one at a time

    def apply(self, spec: FirewallSpec) -> None:
        self._nft(render(self.table, spec, self.names))

    def member(self, tid: str, ip: str, groups: list[str], add: bool) -> None:
        """The task into (or out of) its groups; its veth is named after its id."""
        self._nft(member_update(self.table, ip, groups, self.names.veth_name(tid), add))

    def remove(self) -> None:
        """Both tables gone (purge); fine if they never existed."""
        self._nft(f"table inet {self.table} {{}}\ndelete table inet {self.table}\n"
                  f"table bridge {self.table} {{}}\ndelete table bridge {self.table}\n")

    def exists(self) -> bool:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                             check=False).stdout
        return any(line.split()[-1] == self.table for line in out.splitlines() if line.strip())

    def _nft(self, text: str) -> None:
        with self._lock:
            nftlib.run(text)  # NftError is a FirewallError
