"""What one prefix has made on the host, found by its names alone, and its removal."""

from __future__ import annotations

import logging
import os

from pyroute2 import IPRoute

from . import holder
from .netnames import NETNS_DIR, Names
from .netsys import delete_link, link_kind, remove_netns, run_in_thread, with_ipr

log = logging.getLogger(__name__)


def netns_names(names: Names) -> list[str]:
    """The prefix's netns pins: the tasks' in the holder, the load balancers' (and older
    servers' tasks') under /var/run/netns."""
    try:
        found = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        found = []
    return sorted(n for n in {*found, *holder.names()} if names.netns_re.match(n))


def _owned_links(ipr: IPRoute, names: Names) -> tuple[list[str], list[str]]:
    veths: list[str] = []
    bridges: list[str] = []
    for msg in ipr.get_links():
        name = msg.get_attr("IFLA_IFNAME")
        kind = link_kind(msg)
        if kind == "veth" and names.veth_re.match(name):
            veths.append(name)
        elif kind == "bridge" and names.bridge_re.match(name):
            bridges.append(name)
    return veths, bridges


def owned(names: Names) -> dict[str, list[str]]:
    """What exists for this prefix right now (tests and `fargo server --purge` report it)."""
    veths, bridges = run_in_thread(lambda: with_ipr(lambda ipr: _owned_links(ipr, names)))
    return {"veths": veths, "bridges": bridges, "netns": netns_names(names)}


def cleanup(names: Names) -> None:
    """Remove every veth, netns and bridge carrying this prefix."""

    def work(ipr: IPRoute) -> None:
        veths, bridges = _owned_links(ipr, names)
        for name in veths + bridges:  # ports first, then the bridges they sat on
            delete_link(ipr, name)
        for name in netns_names(names):
            remove_netns(os.path.join(NETNS_DIR, name))
            holder.unpin(name)

    run_in_thread(lambda: with_ipr(work))
    for gone in holder.sweep():
        log.warning("unmounted task filesystems left of %s, a state dir that is gone", gone)
    holder.drop_if_empty()  # when no server of the host pins anything in it any more
