"""NetworkPolicies in the kernel: `table inet fargo_<prefix>_np`, beside the security groups'
table (agent/firewall.py) on the same forward hook, applied as one transaction.

Two base chains on one hook each judge every packet, and a drop in either is final: this
table can only take away what the security groups allow, never add to it. It judges only
forwarded traffic on this prefix's bridges (pod to pod, pod to a load balancer, and back):
what a pod's own netns serves it (metadata, DNS) never leaves the netns, and the host itself
is never a policy's business (upstream: a pod cannot block its node).

Layout:
- ``bridges``: this prefix's bridges;
- ``ingress`` / ``egress``: verdict maps, isolated pod address -> jump to its chain;
- ``in_<n>``: what the pods jumping there may receive (``accept``), else drop; ``out_<n>``:
  what they may send (``return``: then the receiver's ingress is judged), else drop; pods
  with the same allows share a chain;
- ``forward``: replies of admitted flows pass (``ct state``), then the sender's egress chain,
  then the receiver's ingress chain. A pod in neither map is not restricted.
"""

from __future__ import annotations

import ipaddress
import threading

from ..model.netpolicy import Allow
from ..port.errors import InvalidSpec
from ..port.firewall import PolicySpec
from . import nftlib
from .netnames import Names

_PROTOCOLS = ("tcp", "udp", "sctp")


def _ip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as err:
        raise InvalidSpec(str(err)) from None


def _nets(items: tuple[str, ...]) -> str:
    """Addresses and CIDRs as one nft set literal, overlaps merged (nft refuses them)."""
    try:
        nets = [ipaddress.IPv4Network(i, strict=False) for i in items]
    except ValueError as err:
        raise InvalidSpec(str(err)) from None
    return "{ " + ", ".join(str(n) for n in ipaddress.collapse_addresses(nets)) + " }"


def _rule(a: Allow, side: str, verdict: str) -> str:
    parts = []
    if a.peers is not None:
        parts.append(f"ip {side} {_nets(a.peers)}")
    if a.excepts:
        parts.append(f"ip {side} != {_nets(a.excepts)}")
    if a.protocol:
        if a.protocol not in _PROTOCOLS:
            raise InvalidSpec(f"unknown protocol {a.protocol!r}")
        parts.append(f"meta l4proto {a.protocol}")
        if a.lo:
            lo, hi = int(a.lo), int(a.hi or a.lo)
            if not 1 <= lo <= hi <= 65535:
                raise InvalidSpec(f"bad port range {lo}-{hi}")
            parts.append(f"th dport {lo}" if lo == hi else f"th dport {lo}-{hi}")
    return "    " + " ".join([*parts, verdict])


def render(table: str, spec: PolicySpec, names: Names) -> str:
    bridges = sorted(f'"{names.bridge_name(s)}"' for s in spec.subnets)
    out = [f"table inet {table} {{}}", f"delete table inet {table}", f"table inet {table} {{",
           f"  set bridges {{ type ifname;"
           f"{' elements = { ' + ', '.join(bridges) + ' }' if bridges else ''} }}"]
    maps: dict[str, list[str]] = {"ingress": [], "egress": []}
    chains: list[str] = []
    for kind, rules, side, verdict in (("in", spec.ingress, "saddr", "accept"),
                                       ("out", spec.egress, "daddr", "return")):
        key = "ingress" if kind == "in" else "egress"
        # Pods with the same allows (a Deployment's replicas) share one chain: the text, and
        # the time the kernel takes to load it, grow with distinct rule sets, not pods.
        shared: dict[tuple[Allow, ...], str] = {}
        for ip in sorted(rules, key=lambda i: ipaddress.IPv4Address(_ip(i))):
            allows = tuple(rules[ip])
            name = shared.get(allows)
            if name is None:
                name = shared[allows] = f"{kind}_{len(shared)}"
                chains.append(f"  chain {name} {{")
                chains += [_rule(a, side, verdict) for a in allows]
                chains += ["    drop", "  }"]
            maps[key].append(f"{_ip(ip)} : jump {name}")
    for key, elements in maps.items():
        listed = f" elements = {{ {', '.join(elements)} }}" if elements else ""
        out.append(f"  map {key} {{ type ipv4_addr : verdict;{listed} }}")
    out += chains
    out += ["  chain forward {",
            # After the security groups' chain (priority filter): either may drop.
            "    type filter hook forward priority filter + 10; policy accept;",
            "    ct state established,related accept",
            "    iifname @bridges ip saddr vmap @egress",
            "    oifname @bridges ip daddr vmap @ingress",
            "  }", "}"]
    return "\n".join(out) + "\n"


class PolicyTable:
    """Applies rendered policies for one prefix; each call is one nft transaction."""

    def __init__(self, prefix: str):
        self.names = Names(prefix)
        self.table = f"fargo_{prefix}_np"
        self._lock = threading.Lock()

    def apply(self, spec: PolicySpec) -> None:
        text = render(self.table, spec, self.names)
        with self._lock:
            nftlib.run(text)

    def remove(self) -> None:
        with self._lock:
            nftlib.run(f"table inet {self.table} {{}}\ndelete table inet {self.table}\n")
