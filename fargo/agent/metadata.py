"""Where a task finds 169.254.170.2: a listening socket that fargo opens *inside the task's own
network namespace*, so whatever connects to it can only be that task. No other task can reach
it, and no request needs to prove who it comes from.

Inside the namespace 169.254.170.2 sits on lo, and a DNAT rule of the namespace's own (to a
local address, nothing leaves the namespace) sends port 80 to the listener's port, so the
task's own programs stay free to listen on port 80 themselves."""

from __future__ import annotations

import errno
import socket

from pyroute2.netlink.exceptions import NetlinkError

from . import nftlib
from .netsys import enter_netns, run_in_thread
from .rtnl import LOOPBACK_INDEX, Rtnl

METADATA_IP = "169.254.170.2"
LISTEN_PORT = 51679  # the ECS agent's own port on EC2 hosts
_RULES = f"""
add table ip fargo_metadata
flush table ip fargo_metadata
table ip fargo_metadata {{
    chain output {{
        type nat hook output priority -100; policy accept;
        ip daddr {METADATA_IP} tcp dport 80 dnat to {METADATA_IP}:{LISTEN_PORT}
    }}
}}
"""


def open_listener(netns_path: str) -> socket.socket:
    """Set up the task's side and return a non-blocking listening socket living in its netns.
    Safe to call again (after a restart): the address and rules are replaced, not doubled."""

    def work() -> socket.socket:
        enter_netns(netns_path)  # this throwaway thread now lives in the task's netns
        with Rtnl() as rtnl:
            return listen_inside(rtnl)

    return run_in_thread(work)


def listen_inside(rtnl: Rtnl) -> socket.socket:
    """The endpoint's address, DNAT and listening socket, made by a thread that is inside
    the task's netns (rtnl: a netlink socket of that netns). The network's attach calls this
    while it is in there anyway."""
    try:
        rtnl.add_address(LOOPBACK_INDEX, METADATA_IP, 32)
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            raise
    nftlib.run(_RULES)  # in this thread, so in the task's netns
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((METADATA_IP, LISTEN_PORT))
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
