"""Task networking on one host ("awsvpc" mode): a bridge per subnet, a netns + veth per task.

Layout for a task on subnet bridge ``fgbr1a2b3c4d5e``::

    host netns                               task netns (/var/run/netns/fg-<task_id>)
    fgbr1a2b3c4d5e (gateway 10.89.0.1/20)
      └── fgv<hash> (bridge port) ══ veth ══ eth0 (10.89.0.7/20, default via 10.89.0.1)

The host never forwards or NATs for tasks (ip_forward stays as it is), so the default route in a
task ends at the bridge: tasks reach each other and the host, nothing off the machine.

Every name is derived from (prefix, task_id) or (prefix, key), so after a restart the agent can
find what it created without any saved state, and ``cleanup`` can remove exactly one prefix.

All netlink work runs in a fresh short-lived thread:
- creating a netns means ``unshare(CLONE_NEWNET)``, which switches only the calling thread; a
  throwaway thread keeps the caller (and any thread pool) in the host namespace;
- pyroute2's synchronous ``IPRoute`` drives its own asyncio loop and fails inside a thread that
  already runs one (e.g. an aiohttp handler), so it must not run on the caller's thread.
This is also what makes ``attach`` fast: no ``ip`` processes and no pyroute2 fork helpers.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import ipaddress
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP

from ..model.ipam import Ipam
from .rtnl import Rtnl

NETNS_DIR = "/var/run/netns"
IFNAMSIZ = 15  # usable characters in an interface name
TASK_IF = "eth0"
LOOPBACK_INDEX = 1  # the kernel registers lo first in every netns, always as ifindex 1

_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2

_ID_RE = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,4}$")  # <= 5 chars leaves >= 8 hash chars per name
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


class NetworkError(RuntimeError):
    """A host networking step failed; the message says which one."""


@dataclass
class Attachment:
    task_id: str
    netns: str  # netns name under /var/run/netns
    netns_path: str  # bind-mounted netns file; runc joins it via config.json
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    host_veth: str  # host-side veth name, <= 15 chars
    made_inside: Any = field(default=None, repr=False, compare=False)  # attach's `inside`


# ---------------------------------------------------------------- IPAM (pure, no I/O)


# ---------------------------------------------------------------- naming


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_task_id(task_id: str) -> str:
    if not _ID_RE.match(task_id):
        raise ValueError(f"unsafe task id: {task_id!r}")
    return task_id


def task_mac(task_id: str) -> str:
    """Deterministic locally administered unicast MAC, so a restarted task keeps its MAC."""
    raw = bytearray(bytes.fromhex(_digest("mac:" + task_id)[:12]))
    raw[0] = (raw[0] & 0xFC) | 0x02  # clear multicast bit, set locally-administered bit
    return ":".join(f"{b:02x}" for b in raw)


def _fill(head: str, key: str) -> str:
    """head + hash of key, using every character an interface name allows."""
    return head + _digest(key)[: IFNAMSIZ - len(head)]


_BR_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def ensure_bridge_netfilter() -> None:
    """Security groups between tasks of one subnet need bridged IPv4 to pass nftables, which
    takes br_netfilter: load it if it is a module, and refuse to go on without it."""
    if not os.path.exists(_BR_NF):
        with contextlib.suppress(OSError):
            subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False,
                           timeout=30)
    if not os.path.exists(_BR_NF):
        raise NetworkError("br_netfilter is not available: security groups could not filter "
                           "traffic between tasks of one subnet")


# ---------------------------------------------------------------- low-level helpers


def _run_in_thread(fn: Callable[[], T]) -> T:
    """Run fn on a fresh thread (see module docstring) and hand back its result or error."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="fargo-netlink", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _libc_call(what: str, result: int, *, ok_errnos: tuple[int, ...] = ()) -> int:
    if result == 0:
        return 0
    err = ctypes.get_errno()
    if err in ok_errnos:
        return err
    raise NetworkError(f"{what}: {os.strerror(err)}")


def _prepare_netns_dir() -> None:
    """Make NETNS_DIR a shared mount like `ip netns add` does, so mounts in it propagate."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    d = NETNS_DIR.encode()
    if _libc.mount(b"none", d, None, _MS_SHARED | _MS_REC, None) == 0:
        return
    # EINVAL: not a mount point yet; bind it onto itself, then share it.
    _libc_call("bind netns dir", _libc.mount(d, d, b"none", _MS_BIND | _MS_REC, None))
    _libc_call("share netns dir", _libc.mount(b"none", d, None, _MS_SHARED | _MS_REC, None))


def _enter_new_netns(path: str) -> None:
    """Move the *calling thread* into a new netns and pin it at path (bind mount)."""
    if not os.path.ismount(NETNS_DIR):
        _prepare_netns_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
    os.close(fd)
    try:
        _libc_call("unshare netns", _libc.unshare(_CLONE_NEWNET))
        src = b"/proc/thread-self/ns/net"  # not /proc/self: that is the main thread's
        _libc_call("mount netns", _libc.mount(src, path.encode(), b"none", _MS_BIND, None))
    except BaseException:
        os.unlink(path)
        raise


def _setns(fd: int) -> None:
    _libc_call("setns", _libc.setns(fd, _CLONE_NEWNET))


def _remove_netns(path: str) -> None:
    if not os.path.lexists(path):
        return
    _libc_call("umount netns", _libc.umount2(path.encode(), _MNT_DETACH),
               ok_errnos=(errno.EINVAL, errno.ENOENT))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_sysctl(path: str, value: str) -> None:
    """Best effort: a missing key (e.g. IPv6 disabled in the kernel) is not an error."""
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except FileNotFoundError:
        pass


def _quiet_ipv6(ifname: str) -> None:
    """IPv6 off on a link that is still down: no link-local address, no RS/DAD/MLD chatter.
    Sysctls under /proc/sys/net belong to the netns of the *calling thread*."""
    _write_sysctl(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "1")


def _read_sysctl(path: str) -> str | None:
    """None when it cannot be read (missing, or its device going away: ENODEV)."""
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _link(ipr: IPRoute, name: str) -> Any | None:
    """The link called name (its netlink message), None only when there is no such link.

    (pyroute2's link_lookup answers [] for *any* netlink error: a transient one then looked
    like a missing bridge, and the bridge's own subnet like an overlap.)"""
    for attempt in range(3):
        try:
            return ipr.link("get", ifname=name)[0]
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return None
            if attempt == 2:
                raise NetworkError(f"looking up {name}: {err}") from err
            time.sleep(0.01)
    return None


def _index(ipr: IPRoute, name: str) -> int | None:
    link = _link(ipr, name)
    return None if link is None else int(link["index"])


def _delete_link(ipr: IPRoute, name: str) -> None:
    idx = _index(ipr, name)
    if idx is None:
        return
    try:
        ipr.link("del", index=idx)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def _ignore_exists(fn: Callable[[], object]) -> None:
    try:
        fn()
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise


def _link_kind(link: object) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")  # type: ignore[attr-defined]
    return info.get_attr("IFLA_INFO_KIND") if info else None


def bridge_netfilter() -> dict[str, str | None]:
    """Global br_netfilter switches of the host netns (None: br_netfilter not loaded).

    When bridge-nf-call-iptables is 1, frames between two ports of a bridge also traverse the
    IPv4 forward hooks (iptables FORWARD, nftables ip/inet forward). A per-bridge option can
    only switch this on, not off, and the global switch belongs to the host owner, so fargo
    leaves it alone and switches the option on for its own bridges only (the security groups
    need it); with an accepting forward path (the default) bridged traffic flows. A host
    whose FORWARD policy drops needs an accept rule for the fargo bridges (as Docker adds one).
    """
    base = "/proc/sys/net/bridge/bridge-nf-call-"
    return {name: _read_sysctl(base + name) for name in ("iptables", "ip6tables", "arptables")}


# ---------------------------------------------------------------- host network


class HostNetwork:
    """Bridges, netns and veths of one name prefix on this host."""

    def __init__(self, prefix: str = "fg") -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix must match {_PREFIX_RE.pattern}: {prefix!r}")
        self.prefix = prefix
        self._bridge_lock = threading.Lock()  # one creator per bridge name at a time
        # Bridges this process has converged (name -> ifindex): a task's attach only checks
        # that the bridge is still the same device instead of converging it again.
        self._converged: dict[str, int] = {}
        n = IFNAMSIZ - len(prefix)
        self._veth_re = re.compile(rf"^{prefix}v[0-9a-f]{{{n - 1}}}$")
        self._bridge_re = re.compile(rf"^{prefix}br[0-9a-f]{{{n - 2}}}$")
        self._netns_re = re.compile(rf"^{prefix}-[0-9A-Za-z-]{{1,64}}$")

    # names -------------------------------------------------------------------------------

    def bridge_name(self, key: str) -> str:
        return _fill(self.prefix + "br", "bridge:" + key)

    def veth_name(self, task_id: str) -> str:
        return _fill(self.prefix + "v", "veth:" + check_task_id(task_id))

    def netns_name(self, task_id: str) -> str:
        return f"{self.prefix}-{check_task_id(task_id)}"

    def netns_path(self, task_id: str) -> str:
        return os.path.join(NETNS_DIR, self.netns_name(task_id))

    # bridges -----------------------------------------------------------------------------

    def ensure_bridge(self, key: str, cidr: str) -> str:
        """Create or converge the subnet's bridge: up, holding exactly the gateway address."""
        return _run_in_thread(lambda: self._ensure_bridge_on(key, cidr))

    def _ensure_bridge_on(self, key: str, cidr: str) -> str:
        with IPRoute() as ipr:
            self._ensure_bridge(ipr, key, cidr)
        return self.bridge_name(key)

    def _ensure_bridge(self, ipr: IPRoute, key: str, cidr: str) -> int:
        name = self.bridge_name(key)
        net = Ipam.network(cidr)
        gateway = Ipam.gateway(cidr)
        with self._bridge_lock:
            idx = _index(ipr, name)
            if idx is None:
                self._check_no_overlap(ipr, net)
                idx = self._create_bridge(ipr, name, key)
            current = {
                (a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=idx, family=socket.AF_INET)
            }
            for address, plen in current - {(gateway, net.prefixlen)}:
                ipr.addr("del", index=idx, address=address, prefixlen=plen)
            if (gateway, net.prefixlen) not in current:
                self._check_no_overlap(ipr, net, skip=idx)
                ipr.addr("add", index=idx, address=gateway, prefixlen=net.prefixlen)
            ipr.link("set", index=idx, state="up")
            # Security groups (agent/firewall.py) filter bridged IPv4 in the inet forward hook:
            # force that on for our bridges, whatever the host's global switch says.
            _write_sysctl(f"/sys/class/net/{name}/bridge/nf_call_iptables", "1")
            self._converged[name] = idx
        return idx

    def _create_bridge(self, ipr: IPRoute, name: str, key: str) -> int:
        # A fixed MAC stops the bridge from adopting its lowest port's MAC, which would change
        # the gateway MAC under the tasks' ARP caches whenever a port comes or goes.
        mac = task_mac("bridge:" + key)
        _ignore_exists(lambda: ipr.link(
            "add", ifname=name, kind="bridge", address=mac,
            br_stp_state=0, br_forward_delay=0,
        ))
        _quiet_ipv6(name)
        idx = _index(ipr, name)
        if idx is None:
            raise NetworkError(f"bridge {name} vanished right after creation")
        return idx

    @staticmethod
    def _check_no_overlap(ipr: IPRoute, net: ipaddress.IPv4Network, skip: int = -1) -> None:
        """Refuse a subnet that overlaps one already on another interface (e.g. eth0): its
        connected route would hijack host traffic into our bridge."""
        for addr in ipr.get_addr(family=socket.AF_INET):
            if addr["index"] == skip:
                continue
            other = ipaddress.ip_network(
                f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False)
            if other.overlaps(net) and not other.network_address.is_loopback:
                raise NetworkError(f"subnet {net} overlaps {other} on ifindex {addr['index']}")

    def remove_bridge(self, key: str) -> None:
        name = self.bridge_name(key)
        self._converged.pop(name, None)
        _run_in_thread(lambda: self._with_ipr(lambda ipr: _delete_link(ipr, name)))

    # tasks -------------------------------------------------------------------------------

    def attach(self, task_id: str, key: str, cidr: str, ip: str,
               mac: str | None = None,
               inside: Callable[[Rtnl], object] | None = None) -> Attachment:
        """Give task_id a netns with eth0 = ip on the subnet bridge; replaces any leftover.
        inside, if given, runs in the new netns with a netlink socket of it (its result is
        the attachment's `made_inside`), saving a second trip into the namespace."""
        check_task_id(task_id)
        net = Ipam.network(cidr)
        if not Ipam.usable(cidr, ip):
            raise ValueError(f"{ip} is not a usable task address of {cidr}")
        mac = (mac or task_mac(task_id)).lower()
        if not _MAC_RE.match(mac) or int(mac[:2], 16) & 1:
            raise ValueError(f"not a unicast MAC: {mac}")
        att = Attachment(
            task_id=task_id, netns=self.netns_name(task_id), netns_path=self.netns_path(task_id),
            ip=ip, prefixlen=net.prefixlen, gateway=Ipam.gateway(cidr), mac=mac,
            host_veth=self.veth_name(task_id),
        )
        _run_in_thread(lambda: self._attach(att, key, cidr, inside))
        return att

    def _attach(self, att: Attachment, key: str, cidr: str,
                inside: Callable[[Rtnl], object] | None = None) -> None:
        host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            bridge = self._converged_bridge(key)
            # Leftovers of an earlier run are replaced. No pin, no veth: the pin is made first
            # and removed last (and a stray veth is caught by the EEXIST in _plumb).
            leftover = os.path.lexists(att.netns_path)
            if bridge is None or leftover:
                with IPRoute() as ipr:
                    if leftover:
                        self._detach(ipr, att.task_id)
                    if bridge is None:
                        bridge = self._ensure_bridge(ipr, key, cidr)
            with Rtnl() as host:
                try:
                    self._plumb(host, host_ns, bridge, att, inside)
                except BaseException:
                    _setns(host_ns)
                    if hasattr(att.made_inside, "close"):
                        att.made_inside.close()
                    self._with_ipr(lambda ipr: self._detach(ipr, att.task_id))
                    raise
        finally:
            os.close(host_ns)

    def _converged_bridge(self, key: str) -> int | None:
        """The subnet bridge's ifindex if this process converged it and it is still that
        device, up, and filtering bridged traffic (three small sysfs reads: a netlink
        lookup decodes the whole bridge, ~1 ms of Python); None when it must be converged
        again. (sysfs shows the links of the netns it was mounted in: the host's, where the
        bridges are.)"""
        name = self.bridge_name(key)
        idx = self._converged.get(name)
        if idx is None:
            return None
        base = f"/sys/class/net/{name}"
        if _read_sysctl(f"{base}/ifindex") != str(idx):
            return None  # gone, or made anew (a new device gets a new index)
        if not int(_read_sysctl(f"{base}/flags") or "0", 16) & IFF_UP:
            return None
        if _read_sysctl(f"{base}/bridge/nf_call_iptables") != "1":
            return None
        return idx

    def _plumb(self, host: Rtnl, host_ns: int, bridge: int, att: Attachment,
               inside: Callable[[Rtnl], object] | None = None) -> None:
        # Until _setns the thread lives in the task netns (so /proc/sys/net is the task's);
        # sockets keep the netns they were opened in: `host` talks to the host, `task` to the
        # task, whichever netns the thread is in.
        _enter_new_netns(att.netns_path)
        task_ns = os.open(att.netns_path, os.O_RDONLY)
        try:
            with Rtnl() as task:
                # One message: host side enslaved to the bridge, peer born in the task netns as
                # eth0 with its MAC (no rename, no move). Both stay down until their sysctls
                # are set, so no IPv6 link-local address ever appears.
                def add_veth() -> None:
                    host.add_veth(att.host_veth, bridge, TASK_IF, att.mac, task_ns)

                try:
                    add_veth()
                except NetlinkError as err:
                    if err.code != errno.EEXIST:
                        raise
                    with contextlib.suppress(NetlinkError):  # ENODEV: gone meanwhile
                        host.delete_link(att.host_veth)  # a stray one, left without its pin
                    add_veth()
                try:
                    eth0 = socket.if_nametoindex(TASK_IF)  # asked in the task netns
                except OSError as err:
                    raise NetworkError(f"{TASK_IF} missing in {att.netns}: {err}") from err
                _quiet_ipv6(TASK_IF)  # awsvpc here is IPv4 only; lo keeps ::1
                # Gratuitous ARP on link up refreshes neighbours that cached this IP's old MAC.
                _write_sysctl(f"/proc/sys/net/ipv4/conf/{TASK_IF}/arp_notify", "1")
                # Containers run in user namespaces of their own, so their root holds no
                # capability over this netns (the host's user namespace owns it): let any
                # uid bind ports < 1024 and open ICMP echo sockets (ping), as root could.
                _write_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")
                _write_sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
                if inside is not None:
                    att.made_inside = inside(task)
                _setns(host_ns)
                _quiet_ipv6(att.host_veth)
                # The host end must be up first, or eth0's gratuitous ARP finds no carrier.
                host.link_up(name=att.host_veth)
                try:
                    host.delete_neighbour(att.ip, bridge)  # the IP may have had another MAC
                except NetlinkError:
                    pass
                self._configure_task_side(task, att, eth0)
        finally:
            os.close(task_ns)

    @staticmethod
    def _configure_task_side(task: Rtnl, att: Attachment, idx: int) -> None:
        task.link_up(index=LOOPBACK_INDEX)
        task.add_address(idx, att.ip, att.prefixlen)
        task.link_up(index=idx)
        task.add_default_route(att.gateway, idx)

    def detach(self, task_id: str) -> None:
        check_task_id(task_id)
        _run_in_thread(lambda: self._with_ipr(lambda ipr: self._detach(ipr, task_id)))

    def _detach(self, host: IPRoute, task_id: str) -> None:
        # Deleting the host end destroys the peer too; the netns then only needs unpinning.
        # A process still inside keeps the netns alive, but without an interface.
        _delete_link(host, self.veth_name(task_id))
        _remove_netns(self.netns_path(task_id))

    def attached(self, task_id: str) -> bool:
        """True if the netns is pinned and the host veth is on a bridge (for re-adoption)."""
        path = self.netns_path(task_id)
        if not os.path.ismount(path):
            return False
        veth = self.veth_name(task_id)

        def probe(ipr: IPRoute) -> bool:
            links = ipr.get_links(ifname=veth) if _index(ipr, veth) else []
            return bool(links) and bool(links[0].get_attr("IFLA_MASTER"))

        return _run_in_thread(lambda: self._with_ipr(probe))

    # housekeeping ------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove every veth, netns and bridge carrying this prefix."""
        _run_in_thread(lambda: self._with_ipr(self._cleanup))

    def _cleanup(self, ipr: IPRoute) -> None:
        self._converged.clear()
        veths, bridges = self._owned_links(ipr)
        for name in veths + bridges:  # ports first, then the bridges they sat on
            _delete_link(ipr, name)
        for name in self.netns_names():
            _remove_netns(os.path.join(NETNS_DIR, name))

    def _owned_links(self, ipr: IPRoute) -> tuple[list[str], list[str]]:
        veths: list[str] = []
        bridges: list[str] = []
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            kind = _link_kind(link)
            if kind == "veth" and self._veth_re.match(name):
                veths.append(name)
            elif kind == "bridge" and self._bridge_re.match(name):
                bridges.append(name)
        return veths, bridges

    def owned(self) -> dict[str, list[str]]:
        """What exists for this prefix right now (tests and `fargo server --purge` report it)."""
        veths, bridges = _run_in_thread(lambda: self._with_ipr(self._owned_links))
        return {"veths": veths, "bridges": bridges, "netns": self.netns_names()}

    def netns_names(self) -> list[str]:
        try:
            names = os.listdir(NETNS_DIR)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if self._netns_re.match(n))

    @staticmethod
    def _with_ipr(fn: Callable[[IPRoute], T]) -> T:
        with IPRoute() as ipr:
            return fn(ipr)
