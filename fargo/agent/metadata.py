"""What fargo offers a task, on listening sockets fargo opens *inside the task's own network
namespace*, so whatever connects to them can only be that task:
- 169.254.170.2, the metadata and credentials endpoint: no other task can reach it, and no
  request needs to prove who it comes from;
- the task's VPC endpoint for fargo's API (its VPC's base address + 2, as an AWS interface
  endpoint has an address in the VPC): requests to it are signed like any other, and it
  exists only in task netns, so the host's firewall needs no hole for it;
- the VPC's resolver at that same address, port 53 over UDP and TCP (control/dns.py's names,
  served by api/dns.py).

Inside the namespace both addresses sit on lo, and a DNAT rule of the namespace's own (to a
local address, nothing leaves the namespace) sends their port 80 to the listeners' port, so the
task's own programs stay free to listen on port 80 themselves."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from ..port.errors import InvalidSpec
from . import nftlib
from .netsys import enter_netns, lift, run_in_thread
from .rtnl import LOOPBACK_INDEX, Rtnl

METADATA_IP = "169.254.170.2"
LISTEN_PORT = 51679  # the ECS agent's own port on EC2 hosts; each endpoint on its own address
_TABLE = "ip fargo_metadata"
DNS_PORT = 51653  # the resolver's sockets, behind the resolver address's port 53
_DNS_TABLE = "ip fargo_dns"


def _rules(addresses: list[str]) -> str:
    """The namespace's DNAT, replaced whole (a netns of an older fargo included); the set of
    endpoint addresses keeps what is already in it."""
    return (f"add table {_TABLE}\n"
            f"add set {_TABLE} endpoints {{ type ipv4_addr; }}\n"
            f"add element {_TABLE} endpoints {{ {', '.join(addresses)} }}\n"
            f"add chain {_TABLE} output {{ type nat hook output priority -100; "
            "policy accept; }\n"
            f"flush chain {_TABLE} output\n"
            f"add rule {_TABLE} output ip daddr @endpoints tcp dport 80 dnat to :{LISTEN_PORT}\n")


@dataclass
class Listeners:
    """What an attach opened inside the netns: the metadata endpoint's socket, and the API
    endpoint's when the attach was given its address."""

    metadata: socket.socket
    api: socket.socket | None = None

    def close(self) -> None:
        self.metadata.close()
        if self.api is not None:
            self.api.close()


def endpoint_address(text: str) -> str:
    try:  # it becomes an address on lo and an nft element: nothing else may get there
        return str(ipaddress.IPv4Address(text))
    except ValueError as err:
        raise InvalidSpec(f"not an endpoint address: {err}") from None


def open_listener(netns_path: str) -> socket.socket:
    """Set up the task's side and return a non-blocking listening socket living in its netns.
    Safe to call again (after a restart): the address and rules are replaced, not doubled."""

    def work() -> socket.socket:
        enter_netns(netns_path)  # this throwaway thread now lives in the task's netns
        with Rtnl() as rtnl:
            return listen_inside(rtnl).metadata

    return run_in_thread(work)


def open_api_listener(netns_path: str, address: str) -> socket.socket:
    """The API endpoint's listener for a task whose attach did not open one (a task re-adopted
    after a restart, or attached without the address). Safe to call again."""
    address = endpoint_address(address)

    def work() -> socket.socket:
        enter_netns(netns_path)
        with Rtnl() as rtnl:
            _on_lo(rtnl, address)
        nftlib.run(f"add table {_TABLE}\nadd set {_TABLE} endpoints {{ type ipv4_addr; }}\n"
                   f"add element {_TABLE} endpoints {{ {address} }}\n")
        return _listen(address)

    return run_in_thread(work)


def open_dns_listeners(netns_path: str, address: str,
                       aliases: Sequence[str] = ()) -> tuple[socket.socket, socket.socket]:
    """The VPC resolver's sockets inside the task's netns: UDP and TCP on address:DNS_PORT,
    where a DNAT of the namespace's own sends the address's port 53 (so port 53 stays the
    task's own to listen on). Port 53 of each alias (a pod's cluster DNS address, which is
    on no interface: the pod's packets to it are DNATed here before they could leave) goes
    to the same sockets. Returns (udp, tcp), non-blocking. Safe to call again: the address
    is kept, the rules are replaced."""
    address = endpoint_address(address)
    others = [endpoint_address(a) for a in aliases]

    def work() -> tuple[socket.socket, socket.socket]:
        enter_netns(netns_path)
        with Rtnl() as rtnl:
            _on_lo(rtnl, address)
        nftlib.run(f"add table {_DNS_TABLE}\n"
                   f"add chain {_DNS_TABLE} output {{ type nat hook output priority -100; "
                   "policy accept; }\n"
                   f"flush chain {_DNS_TABLE} output\n"
                   f"add rule {_DNS_TABLE} output ip daddr {address} udp dport 53 "
                   f"dnat to :{DNS_PORT}\n"
                   f"add rule {_DNS_TABLE} output ip daddr {address} tcp dport 53 "
                   f"dnat to :{DNS_PORT}\n"
                   + "".join(f"add rule {_DNS_TABLE} output ip daddr {other} {proto} dport 53 "
                             f"dnat to {address}:{DNS_PORT}\n"
                             for other in others for proto in ("udp", "tcp")))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((address, DNS_PORT))
            udp.setblocking(False)
            udp = lift(udp)
            return udp, _listen(address, DNS_PORT)
        except BaseException:
            udp.close()
            raise

    return run_in_thread(work)


def listen_inside(rtnl: Rtnl, api_address: str = "") -> Listeners:
    """The endpoints' addresses, DNAT and listening sockets, made by a thread that is inside
    the task's netns (rtnl: a netlink socket of that netns). The network's attach calls this
    while it is in there anyway; api_address "" opens the metadata endpoint only."""
    addresses = [METADATA_IP] + ([endpoint_address(api_address)] if api_address else [])
    for address in addresses:
        _on_lo(rtnl, address)
    nftlib.run(_rules(addresses))  # in this thread, so in the task's netns
    made = Listeners(_listen(METADATA_IP))
    try:
        if api_address:
            made.api = _listen(addresses[1])
    except BaseException:
        made.close()
        raise
    return made


def _on_lo(rtnl: Rtnl, address: str) -> None:
    try:
        rtnl.add_address(LOOPBACK_INDEX, address, 32)
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise


def _listen(address: str, port: int = LISTEN_PORT) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return lift(sock)
