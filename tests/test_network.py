"""Host networking: real bridge, netns and veths under a prefix unique to this run.

Traffic goes only to namespaces these tests create (a random 10.213.X.0/24 on our own bridge).
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from fargo.agent import holder
from fargo.agent.bridges import bridge_netfilter
from fargo.agent.netnames import NETNS_DIR, address_mac, hashed_mac
from fargo.agent.network import Attachment, HostNetwork
from fargo.agent.rtnl import Rtnl
from fargo.model.ipam import Ipam
from fargo.port.errors import InvalidSpec, NetworkError
from tests.holderpaths import in_host_table, netns_exec, pinned_names

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns/veth/bridge")

PING = ["ping"] if shutil.which("ping") else ["busybox", "ping"]


def _free_cidr() -> str:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for _ in range(50):
        third = random.randint(1, 254)
        if f"10.213.{third}." not in used:
            return f"10.213.{third}.0/24"
    raise RuntimeError("no free 10.213.X.0/24 for the test")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=20)


def _in_ns(att: Attachment, *argv: str) -> subprocess.CompletedProcess[str]:
    return _run(*netns_exec(att.netns), *argv)


def _ping(ip: str, att: Attachment | None = None) -> bool:
    argv = [*PING, "-c1", "-W1", ip]
    return (_in_ns(att, *argv) if att else _run(*argv)).returncode == 0


def _leftovers(prefix: str) -> list[str]:
    links = _run("ip", "-o", "link").stdout.splitlines()
    found = [line for line in links if line.split(":")[1].strip().startswith(prefix)]
    found += [n for n in pinned_names() if n.startswith(prefix + "-")]
    return found


@pytest.fixture(scope="module")
def prefix() -> str:
    return "t" + secrets.token_hex(2)


@pytest.fixture(scope="module")
def net(prefix: str) -> Iterator[HostNetwork]:
    hn = HostNetwork(prefix)
    try:
        yield hn
    finally:
        hn.cleanup()
        assert _leftovers(prefix) == []
        assert hn.owned() == {"veths": [], "bridges": [], "netns": []}


@pytest.fixture(scope="module")
def cidr() -> str:
    return _free_cidr()


@pytest.fixture(scope="module")
def pair(net: HostNetwork, cidr: str) -> tuple[Attachment, Attachment]:
    times: list[float] = []
    atts: list[Attachment] = []
    for _ in range(2):
        ip = Ipam.pick(cidr, {a.ip for a in atts})
        assert ip is not None
        start = time.perf_counter()
        atts.append(net.attach(uuid.uuid4().hex, "subnet-a", cidr, ip))
        times.append((time.perf_counter() - start) * 1000)
    print(f"\nattach times: {', '.join(f'{t:.1f} ms' for t in times)}")
    return atts[0], atts[1]


# ------------------------------------------------------------------ IPAM (pure)


def test_ipam_hosts_skip_reserved() -> None:
    hosts = list(Ipam.hosts("10.0.0.0/28"))
    assert hosts[0] == "10.0.0.4" and hosts[-1] == "10.0.0.14"
    assert len(hosts) == 16 - 5
    assert Ipam.gateway("10.89.0.0/20") == "10.89.0.1"
    assert next(Ipam.hosts("10.89.0.0/20")) == "10.89.0.4"
    assert list(Ipam.hosts("10.89.0.0/20"))[-1] == "10.89.15.254"


def test_ipam_pick_lowest_free_then_none() -> None:
    cidr = "10.0.0.0/28"
    assert Ipam.pick(cidr, set()) == "10.0.0.4"
    assert Ipam.pick(cidr, {"10.0.0.4", "10.0.0.6"}) == "10.0.0.5"
    used: set[str] = set()
    while (ip := Ipam.pick(cidr, used)) is not None:
        assert ip not in {"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.15"}
        used.add(ip)
    assert len(used) == 11


def test_ipam_usable_and_validation() -> None:
    for ip in ("10.0.0.0", "10.0.0.1", "10.0.0.3", "10.0.0.15", "10.0.1.4", "junk"):
        assert not Ipam.usable("10.0.0.0/28", ip)
    assert Ipam.usable("10.0.0.0/28", "10.0.0.4")
    for bad in ("10.0.0.0/29", "10.0.0.1/24", "fd00::/64", "nonsense"):
        with pytest.raises(ValueError):
            Ipam.network(bad)


def test_names_are_safe_and_derivable() -> None:
    hn = HostNetwork("fg")
    tid = uuid.uuid4().hex
    assert hn.netns_name(tid) == f"fg-{tid}"
    assert hn.veth_name(tid) == HostNetwork("fg").veth_name(tid)
    assert len(hn.veth_name(tid)) <= 15 and len(hn.bridge_name("subnet-0abc")) <= 15
    assert len(HostNetwork("abcde").veth_name(tid)) == 15
    for mac in (hashed_mac(tid), address_mac("10.1.2.3")):  # local, unicast
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) and int(mac[:2], 16) & 3 == 2
    assert hashed_mac(tid) == hashed_mac(tid) != hashed_mac(tid + "x")
    # An address keeps its MAC whoever holds it: no neighbour's cache goes stale.
    assert address_mac("10.1.2.3") == "0a:58:0a:01:02:03" != address_mac("10.1.2.4")
    for bad in ("../etc", "a b", "x;rm", "", "a" * 65):
        with pytest.raises(InvalidSpec):
            hn.netns_name(bad)
    for bad_prefix in ("", "toolong", "Fg", "f-g"):
        with pytest.raises(InvalidSpec):
            HostNetwork(bad_prefix)


# ------------------------------------------------------------------ real networking


def test_ensure_bridge_idempotent(net: HostNetwork, cidr: str) -> None:
    name = net.ensure_bridge("subnet-a", cidr)
    assert net.ensure_bridge("subnet-a", cidr) == name
    assert len(name) <= 15 and name.startswith(net.prefix + "br")
    addrs = _run("ip", "-4", "-o", "addr", "show", "dev", name).stdout
    gateway = f"{Ipam.gateway(cidr)}/24"
    assert addrs.count(" inet ") == 1 and gateway in addrs
    assert "UP" in _run("ip", "-br", "link", "show", name).stdout
    assert _run("cat", f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6").stdout.strip() == "1"


def test_overlapping_subnet_refused(net: HostNetwork, cidr: str) -> None:
    net.ensure_bridge("subnet-a", cidr)
    with pytest.raises(NetworkError, match="overlaps"):
        net.ensure_bridge("subnet-other", cidr)
    assert net.bridge_name("subnet-other") not in _run("ip", "-o", "link").stdout


def test_host_reaches_tasks(pair: tuple[Attachment, Attachment]) -> None:
    a, b = pair
    assert _ping(a.ip) and _ping(b.ip)


def test_task_reaches_task_and_gateway(pair: tuple[Attachment, Attachment]) -> None:
    a, b = pair
    assert _ping(b.ip, a) and _ping(a.ip, b)
    assert _ping(a.gateway, b)


def test_tcp_from_host_to_task(pair: tuple[Attachment, Attachment]) -> None:
    a, _ = pair
    port = random.randint(20000, 40000)
    server = (
        "import socket;s=socket.socket();"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('0.0.0.0',{port}));s.listen();print('ready',flush=True);"
        "c,_=s.accept();c.sendall(b'hello from task');c.close()"
    )
    proc = subprocess.Popen(
        [*netns_exec(a.netns), sys.executable, "-c", server],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with socket.create_connection((a.ip, port), timeout=3) as conn:
            assert conn.recv(100) == b"hello from task"
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()


def test_task_interface_matches_attachment(pair: tuple[Attachment, Attachment]) -> None:
    a, _ = pair
    assert f"link/ether {a.mac} " in _in_ns(a, "ip", "-o", "link", "show", "eth0").stdout
    assert a.mac == address_mac(a.ip)
    assert f"inet {a.ip}/{a.prefixlen}" in _in_ns(a, "ip", "-4", "addr", "show", "eth0").stdout
    assert f"default via {a.gateway} dev eth0" in _in_ns(a, "ip", "route").stdout
    assert "UP" in _in_ns(a, "ip", "-br", "link", "show", "lo").stdout
    assert "inet6" not in _in_ns(a, "ip", "addr", "show", "eth0").stdout
    # Neither end ever made an IPv6 address: eth0 was born with IPv6 off (its netns's
    # default), the host end (a bridge port) makes none of its own.
    assert _in_ns(a, "sysctl", "-n", "net.ipv6.conf.eth0.disable_ipv6").stdout.strip() == "1"
    assert "inet6" not in _run("ip", "addr", "show", "dev", a.host_veth).stdout
    assert "addrgenmode none" in _run("ip", "-d", "link", "show", "dev", a.host_veth).stdout
    # Pinned in the holder, reached by path, and not a mount of the host's own table.
    assert a.netns in holder.names() and holder.pinned(a.netns_path)
    assert os.stat(a.netns_path).st_ino == os.stat(holder.path(a.netns)).st_ino
    assert not in_host_table(a.netns) and not os.path.exists(f"{NETNS_DIR}/{a.netns}")


def test_attached(net: HostNetwork, pair: tuple[Attachment, Attachment]) -> None:
    a, _ = pair
    assert net.attached(a.task_id)
    assert not net.attached(uuid.uuid4().hex)


def test_bridge_netfilter_does_not_block(pair: tuple[Attachment, Attachment]) -> None:
    a, b = pair
    state = bridge_netfilter()
    path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    if os.path.exists(path):
        with open(path) as fh:
            assert state["iptables"] == fh.read().strip()
        print(f"\nbr_netfilter loaded: {state}")
    else:
        assert state["iptables"] is None
    # Bridged (task to task) and local (host to task) paths both pass with the host's setting.
    assert _ping(b.ip, a) and _ping(a.ip)


def test_attach_twice_replaces(net: HostNetwork, cidr: str) -> None:
    tid = uuid.uuid4().hex
    base = cidr.rsplit(".", 1)[0]
    first = net.attach(tid, "subnet-a", cidr, base + ".200")
    second = net.attach(tid, "subnet-a", cidr, base + ".201")
    assert second.netns == first.netns and second.host_veth == first.host_veth
    assert _ping(second.ip) and not _ping(first.ip)
    assert pinned_names().count(second.netns) == 1
    assert _run("ip", "-o", "link").stdout.count(second.host_veth) == 1
    net.detach(tid)


def test_an_address_given_again_is_reached_at_once(net: HostNetwork, cidr: str,
                                                    pair: tuple[Attachment, Attachment]) -> None:
    """No gratuitous ARP is sent: a neighbour that cached the address's MAC from its last
    holder reaches the next holder at once, because the MAC is the address's."""
    a, _ = pair
    ip = cidr.rsplit(".", 1)[0] + ".230"
    first = net.attach(uuid.uuid4().hex, "subnet-a", cidr, ip)
    try:
        assert _ping(ip, a)
        cached = _in_ns(a, "ip", "neigh", "show", ip).stdout
        assert first.mac in cached, cached
    finally:
        net.detach(first.task_id)
    second = net.attach(uuid.uuid4().hex, "subnet-a", cidr, ip)
    try:
        assert second.mac == first.mac
        assert second.mac in _in_ns(a, "ip", "neigh", "show", ip).stdout  # still cached
        assert _ping(ip, a)  # one try, one second: a stale MAC would drop it
        sysctl = _in_ns(second, "sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore",
                        "net.ipv4.conf.eth0.arp_notify", "net.ipv4.ip_unprivileged_port_start",
                        "net.ipv4.ping_group_range", "net.ipv6.conf.eth0.disable_ipv6")
        assert sysctl.stdout.split() == ["1", "0", "0", "0", "2147483647", "1"], sysctl
    finally:
        net.detach(second.task_id)


def test_attach_replaces_a_stray_veth(net: HostNetwork, cidr: str) -> None:
    """A veth of the task's name without its netns pin (someone ran `ip netns del`): the
    attach does not look for leftovers then, so it must cope when the name is taken."""
    tid = uuid.uuid4().hex
    stray = net.veth_name(tid)
    _run("ip", "link", "add", stray, "type", "veth", "peer", "name", stray[:-2] + "zz")
    try:
        att = net.attach(tid, "subnet-a", cidr, cidr.rsplit(".", 1)[0] + ".205")
        assert _ping(att.ip)
        assert _run("ip", "-o", "link").stdout.count(stray[:-2] + "zz") == 0  # its peer went
    finally:
        net.detach(tid)
        subprocess.run(["ip", "link", "del", stray], capture_output=True)


def test_rtnl_reports_refusals() -> None:
    """The attach's plain netlink socket raises the kernel's errno, as pyroute2 does."""
    with Rtnl() as rtnl:
        with pytest.raises(NetlinkError) as missing:
            rtnl.link_up(name="fgnosuchlink0")
        assert missing.value.code == errno.ENODEV
        with pytest.raises(NetlinkError) as exists:
            rtnl.add_address(1, "127.0.0.1", 8)  # lo has it already
        assert exists.value.code == errno.EEXIST
        rtnl.link_up(index=1)  # and an accepted request returns quietly


def test_detach_removes_everything(net: HostNetwork, cidr: str) -> None:
    tid = uuid.uuid4().hex
    att = net.attach(tid, "subnet-a", cidr, cidr.rsplit(".", 1)[0] + ".210")
    start = time.perf_counter()
    net.detach(tid)
    print(f"\ndetach time: {(time.perf_counter() - start) * 1000:.1f} ms")
    assert att.netns not in pinned_names()
    assert att.host_veth not in _run("ip", "-o", "link").stdout
    assert not os.path.exists(att.netns_path)
    assert not net.attached(tid)
    net.detach(tid)  # idempotent


def test_attach_from_inside_event_loop(net: HostNetwork, cidr: str) -> None:
    """aiohttp handlers may call in directly; pyroute2's sync API must not see their loop."""
    tid = uuid.uuid4().hex

    async def go() -> Attachment:
        return net.attach(tid, "subnet-a", cidr, cidr.rsplit(".", 1)[0] + ".220")

    att = asyncio.run(go())
    assert _ping(att.ip)
    net.detach(tid)


def test_attach_rejects_bad_input(net: HostNetwork, cidr: str) -> None:
    base = cidr.rsplit(".", 1)[0]
    with pytest.raises(InvalidSpec):
        net.attach("bad/id", "subnet-a", cidr, base + ".50")
    with pytest.raises(InvalidSpec):
        net.attach(uuid.uuid4().hex, "subnet-a", cidr, base + ".1")  # the gateway
    with pytest.raises(InvalidSpec):
        net.attach(uuid.uuid4().hex, "subnet-a", cidr, base + ".51", mac="01:00:5e:00:00:01")


def test_remove_bridge(net: HostNetwork) -> None:
    other = _free_cidr()
    name = net.ensure_bridge("subnet-tmp", other)
    assert name in _run("ip", "-o", "link").stdout
    net.remove_bridge("subnet-tmp")
    net.remove_bridge("subnet-tmp")  # idempotent
    assert name not in _run("ip", "-o", "link").stdout


def test_attach_speed(net: HostNetwork, cidr: str) -> None:
    base = cidr.rsplit(".", 1)[0]
    ids = [uuid.uuid4().hex for _ in range(10)]
    attach_ms, detach_ms = [], []
    for n, tid in enumerate(ids):
        start = time.perf_counter()
        net.attach(tid, "subnet-a", cidr, f"{base}.{100 + n}")
        attach_ms.append((time.perf_counter() - start) * 1000)
    for tid in ids:
        start = time.perf_counter()
        net.detach(tid)
        detach_ms.append((time.perf_counter() - start) * 1000)
    attach_ms.sort()
    detach_ms.sort()
    print(f"\nattach median {attach_ms[5]:.1f} ms max {attach_ms[-1]:.1f} ms; "
          f"detach median {detach_ms[5]:.1f} ms max {detach_ms[-1]:.1f} ms")
    assert attach_ms[5] < 30
