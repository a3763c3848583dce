"""The few rtnetlink requests a task's network attach makes, on a plain netlink socket.

pyroute2 encodes every message; this module only sends it and reads the acknowledgement.
Its IPRoute costs ~0.3 ms of Python per request on top (request filters, a turn of its event
loop, a full decode of every reply), and an attach makes eight of them while holding the GIL
that the rest of the server is waiting for. The other network code (bridges, detach, clean-up)
is not on the start path and keeps using IPRoute; only detach, on the stop path, uses this too.

Like any socket, an Rtnl talks to the netns it was opened in, wherever the thread goes later.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_ERROR
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTM_DELLINK,
    RTM_DELNEIGH,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import IFF_UP, ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

REPLY_TIMEOUT_S = 10.0
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
_CHANGE = NLM_F_REQUEST | NLM_F_ACK
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST = 254, 4, 1
LOOPBACK_INDEX = 1  # the kernel registers lo first in every netns, always as ifindex 1
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_NLA = struct.Struct("=HH")  # nlattr: length, type
IFLA_AF_SPEC, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 26, 8, 1


def _nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


class Rtnl:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
            # The kernel acks at once; a reply that never comes must not hang a start.
            self.sock.settimeout(REPLY_TIMEOUT_S)
        except BaseException:
            self.sock.close()
            raise
        self._seq = itertools.count(1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg: Any, kind: int, flags: int) -> None:
        """Send msg and wait for its acknowledgement; a refusal raises NetlinkError."""
        seq = next(self._seq)
        msg["header"]["type"] = kind
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = seq
        msg.encode()
        self._send(msg.data, seq)

    def _send(self, message: bytes, seq: int) -> None:
        self.sock.send(message)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, mtype, _, mseq, _ = _HEADER.unpack_from(data, offset)
                if (mtype == NLMSG_ERROR and mseq == seq
                        and length >= _HEADER.size + 4 <= len(data) - offset):
                    (code,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                    if code:
                        raise NetlinkError(-code)
                    return
                # Anything else is not ours: skip it (messages are 4-byte aligned).
                offset += (max(length, _HEADER.size) + 3) & ~3

    # links

    def add_veth(self, name: str, master: int, peer: str, peer_mac: str, peer_netns_fd: int,
                 ) -> None:
        """A veth pair: name here, enslaved to master; peer born in the other netns."""
        msg = ifinfmsg()
        msg["attrs"] = [
            ("IFLA_IFNAME", name), ("IFLA_MASTER", master),
            ("IFLA_LINKINFO", {"attrs": [
                ("IFLA_INFO_KIND", "veth"),
                ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": [
                    ("IFLA_IFNAME", peer), ("IFLA_ADDRESS", peer_mac),
                    ("IFLA_NET_NS_FD", peer_netns_fd)]})]}),
            ]}),
        ]
        self.request(msg, RTM_NEWLINK, _CREATE)

    def delete_link(self, name: str) -> None:
        msg = ifinfmsg()
        msg["attrs"] = [("IFLA_IFNAME", name)]
        self.request(msg, RTM_DELLINK, _CHANGE)

    def link_up(self, *, index: int = 0, name: str | None = None) -> None:
        msg = ifinfmsg()
        msg["index"] = index
        msg["flags"] = msg["change"] = IFF_UP
        if name is not None:
            msg["attrs"] = [("IFLA_IFNAME", name)]
        self.request(msg, RTM_NEWLINK, _CHANGE)

    def no_ipv6_addresses(self, index: int) -> None:
        """A link (still down) that will never make an IPv6 address of its own: no
        link-local one, so no DAD, router solicitation or MLD report from it. For a bridge
        port, whose frames go to the bridge and never to its own IPv6 stack. By netlink: the
        disable_ipv6 sysctl spins restarting its write while another holds the rtnl lock.
        pyroute2 does not encode this part of a link message (AF_SPEC), so it is built here.
        A kernel without IPv6 refuses AF_INET6 (EAFNOSUPPORT): nothing to quiet there."""
        mode = _nla(IFLA_INET6_ADDR_GEN_MODE, struct.pack("=B", IN6_ADDR_GEN_MODE_NONE))
        spec = _nla(IFLA_AF_SPEC, _nla(socket.AF_INET6, mode))
        seq = next(self._seq)
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + spec
        try:
            self._send(_HEADER.pack(_HEADER.size + len(body), RTM_NEWLINK, _CHANGE, seq, 0)
                       + body, seq)
        except NetlinkError as err:
            if err.code != errno.EAFNOSUPPORT:
                raise

    # addresses, routes, neighbours (IPv4)

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        msg = ifaddrmsg()
        msg["family"] = socket.AF_INET
        msg["prefixlen"] = prefixlen
        msg["index"] = index
        msg["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        self.request(msg, RTM_NEWADDR, _CREATE)

    def add_default_route(self, gateway: str, oif: int) -> None:
        msg = rtmsg()
        msg["family"] = socket.AF_INET
        msg["table"] = RT_TABLE_MAIN
        msg["proto"] = RTPROT_STATIC
        msg["type"] = RTN_UNICAST
        msg["attrs"] = [("RTA_TABLE", RT_TABLE_MAIN), ("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
        self.request(msg, RTM_NEWROUTE, _CREATE)

    def delete_neighbour(self, address: str, index: int) -> None:
        msg = ndmsg()
        msg["family"] = socket.AF_INET
        msg["ifindex"] = index
        msg["attrs"] = [("NDA_DST", address)]
        self.request(msg, RTM_DELNEIGH, _CHANGE)
