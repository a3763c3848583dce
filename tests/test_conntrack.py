"""Forgetting flows in conntrack: what matches goes, whatever else is kept, in a scratch
netns whose entries are made through ctnetlink (and go with it)."""

from __future__ import annotations

import socket
from collections.abc import Callable

from pyroute2 import Conntrack
from pyroute2.conntrack import NFCTAttrTuple

from fargo.agent import conntrack, netsys
from fargo.agent.conntrack import Match

UDP, TCP = socket.IPPROTO_UDP, socket.IPPROTO_TCP


def _add(ct: Conntrack, saddr: str, daddr: str, sport: int, dport: int, proto: int = UDP,
         reply_from: tuple[str, int] | None = None) -> None:
    orig = NFCTAttrTuple(saddr=saddr, daddr=daddr, proto=proto, sport=sport, dport=dport)
    reply = orig.reverse()
    if reply_from is not None:  # as a DNAT'd flow: the reply comes from the backend
        reply = NFCTAttrTuple(saddr=reply_from[0], daddr=saddr, proto=proto,
                              sport=reply_from[1], dport=sport)
    ct.entry("add", timeout=120, tuple_orig=orig, tuple_reply=reply)


def _count(ct: Conntrack, **orig: object) -> int:
    return len(list(ct.dump_entries(tuple_orig=NFCTAttrTuple(**orig))))


def _in_scratch_netns(job: Callable[[Conntrack], None]) -> None:
    """job(ct) on a thread in a netns of its own, which goes (with its entries) after."""
    def run() -> None:
        netsys.new_netns()
        ct = Conntrack()
        try:
            job(ct)
        finally:
            ct.close()
    netsys.run_in_thread(run)


def test_an_address_is_forgotten_on_both_sides_and_nothing_else() -> None:
    def job(ct: Conntrack) -> None:
        for i in range(600):  # more than one batch of deletes
            _add(ct, "10.77.0.5", f"10.77.1.{1 + i % 200}", 20000 + i, 53)
        for i in range(30):
            _add(ct, f"10.77.2.{1 + i}", "10.77.0.5", 40000 + i, 80, TCP)
        _add(ct, "10.77.0.6", "10.77.1.1", 999, 53)  # another task's
        _add(ct, "10.77.0.50", "10.77.0.55", 998, 53)  # an address that only contains .5
        assert conntrack.forget(Match(saddr="10.77.0.5")) == 600
        assert conntrack.forget(Match(daddr="10.77.0.5")) == 30
        assert conntrack.forget(Match(daddr="10.77.0.5")) == 0  # gone already
        assert _count(ct, saddr="10.77.0.5") == 0 and _count(ct, daddr="10.77.0.5") == 0
        assert _count(ct, saddr="10.77.0.6") == 1 and _count(ct, saddr="10.77.0.50") == 1

    _in_scratch_netns(job)


def test_the_reply_tuple_narrows_what_goes() -> None:
    """A service's DNS backend leaving: flows to the VIP's port answered by that backend go;
    those answered by another backend, or to another port, stay."""
    def job(ct: Conntrack) -> None:
        vip = "172.30.0.10"
        for i in range(5):
            _add(ct, "10.78.0.9", vip, 30000 + i, 53, reply_from=("10.78.0.20", 53))
            _add(ct, "10.78.0.9", vip, 31000 + i, 53, reply_from=("10.78.0.21", 53))
        _add(ct, "10.78.0.9", vip, 32000, 5353, reply_from=("10.78.0.20", 5353))
        gone = conntrack.forget(Match(daddr=vip, proto=UDP, dport=53),
                                Match(saddr="10.78.0.20", proto=UDP, sport=53))
        assert gone == 5
        assert _count(ct, daddr=vip) == 6

    _in_scratch_netns(job)
