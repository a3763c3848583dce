"""Services' ClusterIPs in the kernel (kube-proxy's job): one nftables table per fargo prefix,
``table ip fargo_<prefix>_svc``, re-rendered whole and applied in one transaction.

Where the DNAT happens: in the HOST netns, on the nat hooks of prerouting (packets a task sends
to a VIP arrive on its bridge, addressed to the gateway's MAC since the VIP is off-link) and
output (the host's own connections). The translated packet then takes the forward path, where
the security groups (agent/firewall.py, table inet fargo_<prefix>) judge it as task-to-task
traffic, by the real addresses. Replies need no rule: a reply between two ports of one bridge
is bridged, but fargo's bridges call the IP hooks (br_netfilter, agent/bridges.py), so
conntrack sees it and undoes the DNAT. Routing a task's packet at all takes forwarding on the
bridge it came in on (``net.ipv4.conf.<bridge>.forwarding``; never the global ip_forward, nor
any other interface): set here for this prefix's bridges only, and the table guards it too.

Layout:
- ``vips``: every ClusterIP; a packet still addressed to one after the nat hooks found no
  ready endpoint (or no such port) and is refused, as kube-proxy refuses it;
- ``svcs``: VIP . protocol . port -> the port's chain ``s_<h>``, which picks an endpoint
  chain ``e_<h>_<k>`` at random (numgen), or the one a client's ClientIP affinity set
  ``a_<h>_<k>`` remembers (a timed set refreshed on each connection);
- ``hairpin``: endpoint . endpoint pairs: a task reaching itself through its VIP is
  masqueraded to its gateway, or its reply would stay inside its own netns, un-NATed;
- the host's own connections are masqueraded too, so a task sees them from the gateway, as
  it sees the host's direct connections.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import socket
import threading

from pyroute2.netlink.exceptions import NetlinkError

from ..port.errors import InvalidSpec
from ..port.services import Backend, ServicesSpec, VirtualPort
from . import conntrack, nftlib
from .netnames import Names
from .netsys import read_sysctl, write_sysctl

PROTOCOLS = ("tcp", "udp", "sctp")
MAX_AFFINITY = 86400  # the apiserver's bound on sessionAffinityConfig's timeoutSeconds


def _ip(text: str) -> str:
    try:  # nothing but an address reaches nft's parser
        return str(ipaddress.IPv4Address(text))
    except ValueError as err:
        raise InvalidSpec(str(err)) from None


def _port(value: int) -> int:
    if not isinstance(value, int) or not 0 < value < 65536:
        raise InvalidSpec(f"bad port {value!r}")
    return value


def _comment(text: str) -> list[str]:
    """A comment nft takes: printable, no quotes, at most 128 bytes."""
    clean = "".join(c for c in text if c.isprintable() and c not in '"\\')
    return [f'    comment "{clean[:120]}";'] if clean else []


def port_key(vp: VirtualPort) -> str:
    """A stable short name for one VIP.protocol.port (chain names, at most 64 chars)."""
    return hashlib.sha256(f"{vp.vip}/{vp.protocol}/{vp.port}".encode()).hexdigest()[:12]


def _elements(items: list[str]) -> str:
    return f" elements = {{ {', '.join(items)} }}" if items else ""


def render(table: str, spec: ServicesSpec, bridges: str) -> str:
    """The whole table as one transaction, or only its removal when the spec is empty.
    bridges: an nft ifname pattern matching this prefix's bridges (e.g. "fgbr*")."""
    out = [f"table ip {table} {{}}", f"delete table ip {table}"]
    if not spec.ports:
        return "\n".join(out) + "\n"
    seen: set[tuple[str, str, int]] = set()
    vips: set[str] = set()
    entries: list[str] = []
    pairs: set[str] = set()
    chains: list[str] = []
    sets: list[str] = []
    for vp in sorted(spec.ports, key=lambda p: (p.vip, p.protocol, p.port)):
        vip, proto, port = _ip(vp.vip), vp.protocol, _port(vp.port)
        if proto not in PROTOCOLS:
            raise InvalidSpec(f"bad protocol {proto!r}")
        if (vip, proto, port) in seen:
            raise InvalidSpec(f"{vip} {proto} {port} appears twice")
        seen.add((vip, proto, port))
        vips.add(vip)
        if not 0 <= vp.affinity <= MAX_AFFINITY:
            raise InvalidSpec(f"bad affinity timeout {vp.affinity!r}")
        backends = sorted({(_ip(b.ip), _port(b.port)) for b in vp.backends})
        if not backends:
            continue  # stays in vips only: refused in the filter chains
        key = port_key(vp)
        entries.append(f"{vip} . {proto} . {port} : goto s_{key}")
        body: list[str] = []
        for k, (ip, bport) in enumerate(backends):
            pairs.add(f"{ip} . {ip}")
            ep = [f"  chain e_{key}_{k} {{"]
            if vp.affinity:
                sets.append(f"  set a_{key}_{k} {{ type ipv4_addr; flags dynamic,timeout; "
                            f"timeout {vp.affinity}s; }}")
                body.append(f"    ip saddr @a_{key}_{k} goto e_{key}_{k}")
                ep.append(f"    update @a_{key}_{k} {{ ip saddr }}")
            ep += [f"    meta l4proto {proto} dnat to {ip}:{bport}", "  }"]
            chains += ep
        if len(backends) == 1:
            body.append(f"    goto e_{key}_0")
        else:
            picks = ", ".join(f"{k} : goto e_{key}_{k}" for k in range(len(backends)))
            body.append(f"    numgen random mod {len(backends)} vmap {{ {picks} }}")
        chains += [f"  chain s_{key} {{", *_comment(vp.name), *body, "  }"]
    own = f'"{bridges}"'
    out += [f"table ip {table} {{",
            f"  set vips {{ type ipv4_addr;{_elements(sorted(vips))} }}",
            f"  map svcs {{ type ipv4_addr . inet_proto . inet_service : verdict;"
            f"{_elements(entries)} }}",
            f"  set hairpin {{ type ipv4_addr . ipv4_addr;{_elements(sorted(pairs))} }}",
            *sets, *chains,
            "  chain prerouting {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            f"    iifname {own} ip daddr . meta l4proto . th dport vmap @svcs",
            "  }",
            "  chain output {",  # (nft spells dstnat out in output: -100)
            "    type nat hook output priority -100; policy accept;",
            "    ip daddr . meta l4proto . th dport vmap @svcs",
            "  }",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            # A task reaching itself through a VIP: seen from its gateway, so its reply comes
            # back through the host and is un-NATed.
            f"    oifname {own} ct status dnat ct original ip daddr @vips "
            "ip saddr . ip daddr @hairpin masquerade",
            # The host's own connections: the task sees them from its gateway.
            f"    oifname {own} ct status dnat ct original ip daddr @vips "
            "fib saddr type local masquerade",
            "  }",
            # Before the security groups' table (priority filter): what is still addressed to
            # a VIP found no endpoint; refused so clients fail fast, and never routed away.
            "  chain forward {",
            "    type filter hook forward priority -1; policy accept;",
            "    ip daddr @vips reject",
            f"    iifname {own} oifname != {own} drop",
            "  }",
            "  chain output_filter {",
            "    type filter hook output priority -1; policy accept;",
            "    ip daddr @vips reject",
            "  }",
            "}"]
    return "\n".join(out) + "\n"


def _ports_of(bridge: str) -> list[str]:
    try:
        return os.listdir(f"/sys/class/net/{bridge}/brif")
    except OSError:
        return []


def _forget_flows(vip: str, port: int, backend: Backend) -> None:
    conntrack.forget(conntrack.Match(daddr=vip, proto=socket.IPPROTO_UDP, dport=port),
                     conntrack.Match(saddr=backend.ip, proto=socket.IPPROTO_UDP,
                                     sport=backend.port))


def _hairpin(port: str) -> None:
    """A DNAT to an address on the bridge it came from is bridged, not routed (br_netfilter's
    "bridged DNAT"), so a task reaching itself through its VIP needs its frame sent back out
    the port it came in on: hairpin mode on that port (as kubelet's hairpin-veth mode)."""
    path = f"/sys/class/net/{port}/brport/hairpin_mode"
    if read_sysctl(path) == "0":
        write_sysctl(path, "1")


class ServiceProxy:
    """The services' table of one prefix and its bridges' forwarding switch."""

    def __init__(self, prefix: str) -> None:
        self.names = Names(prefix)
        self.table = f"fargo_{prefix}_svc"
        self.bridges = f"{prefix}br*"
        self._lock = threading.Lock()
        self._applied: str | None = None  # the text last applied by this process
        self.active = False  # a table with VIPs is in place: bridges must forward
        self._udp: dict[tuple[str, int], set[Backend]] = {}  # what the table sends UDP to

    def apply(self, spec: ServicesSpec) -> None:
        """The table as spec says; a no-op when this process already applied the same text
        (a re-applied table would forget the ClientIP affinity sets)."""
        text = render(self.table, spec, self.bridges)
        with self._lock:
            if text != self._applied:
                nftlib.run(text)
                self._applied = text
                self._forget_udp(spec)
            self.active = bool(spec.ports)
            if self.active:
                for bridge in self._own_bridges():
                    self._forward(bridge)
                    for port in _ports_of(bridge):
                        _hairpin(port)

    def _forget_udp(self, spec: ServicesSpec) -> None:
        """UDP has no end: a client's flow to a VIP would stay DNATed to an endpoint that has
        left until conntrack times it out (30 s and more), so those flows are forgotten now
        and the next datagram chooses again (as kube-proxy clears them)."""
        now = {(vp.vip, vp.port): set(vp.backends) for vp in spec.ports
               if vp.protocol == "udp"}
        for (vip, port), old in self._udp.items():
            for gone in old - now.get((vip, port), set()):
                with contextlib.suppress(NetlinkError, OSError):  # best effort: it times out
                    _forget_flows(vip, port, gone)
        self._udp = now

    def attached(self, bridge: str, veth: str) -> None:
        """A task's port (and maybe its bridge, just made) while services exist: ready for
        VIPs at once, not at the next apply (two small sysfs reads when already set)."""
        if self.active:
            self._forward(bridge)
            _hairpin(veth)

    def _forward(self, bridge: str) -> None:
        """A task's packets to a VIP must be routed by the host: forwarding on this bridge."""
        path = f"/proc/sys/net/ipv4/conf/{bridge}/forwarding"
        if read_sysctl(path) == "0":
            write_sysctl(path, "1")

    def _own_bridges(self) -> list[str]:
        try:
            found = os.listdir("/sys/class/net")
        except OSError:
            return []
        return sorted(n for n in found if self.names.bridge_re.match(n))

    def remove(self) -> None:
        """The table gone (purge, tests' clean-up); fine if it never existed."""
        with self._lock:
            nftlib.run(f"table ip {self.table} {{}}\ndelete table ip {self.table}\n")
            self._applied = None
            self.active = False
            self._udp = {}
