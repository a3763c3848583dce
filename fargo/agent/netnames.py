"""Names of what the network makes on the host: bridges, veths, netns pins and MACs.

Every name is derived from (prefix, task id) or (prefix, subnet id), so after a restart the
agent finds what it made without any saved state, and clean-up removes exactly one prefix."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re

from ..port.errors import InvalidSpec

NETNS_DIR = "/var/run/netns"
IFNAMSIZ = 15  # usable characters in an interface name

_ID_RE = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,4}$")  # <= 5 chars leaves >= 8 hash chars per name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_task_id(task_id: str) -> str:
    if not _ID_RE.match(task_id):
        raise InvalidSpec(f"unsafe task id: {task_id!r}")
    return task_id


def hashed_mac(key: str) -> str:
    """Deterministic locally administered unicast MAC of a name (a bridge's)."""
    raw = bytearray(bytes.fromhex(_digest("mac:" + key)[:12]))
    raw[0] = (raw[0] & 0xFC) | 0x02  # clear multicast bit, set locally-administered bit
    return ":".join(f"{b:02x}" for b in raw)


def address_mac(ip: str) -> str:
    """The MAC of whatever holds an IPv4 address on a subnet's bridge: 0a:58 and the
    address (locally administered, unicast). An address handed to a new task or load balancer
    keeps its MAC, so neighbours that cached it stay right, and a new interface need not
    announce itself by gratuitous ARP: flooded to every port of the bridge, that cost
    1.5 ms of CPU a start with 500 tasks running."""
    raw = ipaddress.IPv4Address(ip).packed
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *raw))


def _fill(head: str, key: str) -> str:
    """head + hash of key, using every character an interface name allows."""
    return head + _digest(key)[: IFNAMSIZ - len(head)]


class Names:
    """The names of one prefix, and the patterns that recognise them."""

    def __init__(self, prefix: str = "fg") -> None:
        if not _PREFIX_RE.match(prefix):
            raise InvalidSpec(f"prefix must match {_PREFIX_RE.pattern}: {prefix!r}")
        self.prefix = prefix
        n = IFNAMSIZ - len(prefix)
        self.veth_re = re.compile(rf"^{prefix}v[0-9a-f]{{{n - 1}}}$")
        self.bridge_re = re.compile(rf"^{prefix}br[0-9a-f]{{{n - 2}}}$")
        self.netns_re = re.compile(rf"^{prefix}-[0-9A-Za-z-]{{1,64}}$")

    def bridge_name(self, key: str) -> str:
        return _fill(self.prefix + "br", "bridge:" + key)

    def bridge_mac(self, key: str) -> str:
        return hashed_mac("bridge:" + key)

    def veth_name(self, task_id: str) -> str:
        return _fill(self.prefix + "v", "veth:" + check_task_id(task_id))

    def netns_name(self, task_id: str) -> str:
        return f"{self.prefix}-{check_task_id(task_id)}"

    def netns_path(self, task_id: str) -> str:
        return os.path.join(NETNS_DIR, self.netns_name(task_id))
