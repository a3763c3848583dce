"""The resolver's rules without a server: names, answers, views (model/dns.py, control/dns.py)
and the wire side's replies to bytes (api/dns.py's respond)."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from fargo.api.dns import respond
from fargo.control.dns import Names
from fargo.model import dns as m
from fargo.model.dns import HOST, A, Answer, Cname, Rcode, Record, View, Zone

pytestmark = pytest.mark.pure


def test_names():
    assert m.name_key("Ip-10-0-0-4.EC2.Internal.") == "ip-10-0-0-4.ec2.internal"
    for bad in ("", ".", "a..b", "a b", "x" * 64 + ".c", "a." * 127 + "b", "\u00e9.x", "a\\b"):
        assert m.name_key(bad) is None, bad
    assert m.is_hostname("my-ns_1.local") and not m.is_hostname("-a.local")
    assert not m.is_hostname("a!.local")
    assert m.internal_domain("us-east-1") == "ec2.internal"
    assert m.internal_domain("eu-west-1") == "eu-west-1.compute.internal"
    assert m.private_name("10.89.0.4", "us-east-1") == "ip-10-89-0-4.ec2.internal"
    assert m.ip_of_private_name("ip-10-89-0-4.ec2.internal", "us-east-1") == "10.89.0.4"
    for bad in ("ip-10-89-0-04.ec2.internal", "ip-10-89-0.ec2.internal", "ip-1-2-3-4.x",
                "x-10-0-0-1.ec2.internal", "ip-10-89-0-4.eu-west-1.compute.internal"):
        assert m.ip_of_private_name(bad, "us-east-1") is None, bad
    assert m.reverse_name("10.89.0.4") == "4.0.89.10.in-addr.arpa"
    assert m.ip_of_reverse("4.0.89.10.in-addr.arpa") == "10.89.0.4"
    assert m.ip_of_reverse("0.89.10.in-addr.arpa") is None
    assert m.ip_of_reverse("04.0.89.10.in-addr.arpa") is None
    assert m.reverse_zone("10.89.0.0/16") == "89.10.in-addr.arpa"
    assert m.reverse_zone("10.89.16.0/20") == "89.10.in-addr.arpa"
    assert m.resolver_address("10.89.0.0/16") == "10.89.0.2"
    assert m.resolv_conf("10.89.0.2", "us-east-1") == \
        "nameserver 10.89.0.2\nsearch ec2.internal\n"
    assert "10.89.0.4 ip-10-89-0-4.ec2.internal ip-10-89-0-4\n" in \
        m.hosts_file("10.89.0.4", "ip-10-89-0-4.ec2.internal")


def _lookup(table: dict[str, list[Record]]):
    return lambda name: table.get(name)


def test_answers():
    zone = Zone("svc.local", 30)
    table = {"web.svc.local": [Record("web.svc.local", 10, A("10.0.0.1"))],
             "alias.svc.local": [Record("alias.svc.local", 10, Cname("web.svc.local"))],
             "loop.svc.local": [Record("loop.svc.local", 10, Cname("loop.svc.local"))],
             "dangling.svc.local": [Record("dangling.svc.local", 10, Cname("no.svc.local"))],
             "empty.svc.local": []}
    look = _lookup(table)
    got = m.answer("WEB.svc.local.", "A", [zone], look)
    assert got.rcode is Rcode.NOERROR and got.authoritative and not got.authority
    assert [r.data for r in got.records] == [A("10.0.0.1")]
    # The name exists without that type: NODATA with the zone's SOA (its negative TTL).
    nodata = m.answer("web.svc.local", "AAAA", [zone], look)
    assert nodata.rcode is Rcode.NOERROR and not nodata.records
    assert nodata.authority[0].type == "SOA" and nodata.authority[0].ttl == 30
    assert m.answer("empty.svc.local", "A", [zone], look).rcode is Rcode.NOERROR
    nx = m.answer("nosuch.svc.local", "A", [zone], look)
    assert nx.rcode is Rcode.NXDOMAIN and nx.authority and nx.authoritative
    # Outside every zone: NXDOMAIN too, without authority.
    out = m.answer("example.com", "A", [zone], look)
    assert out == Answer(Rcode.NXDOMAIN)
    # CNAMEs fargo holds are followed; a loop or a dangling target ends the chase.
    chased = m.answer("alias.svc.local", "A", [zone], look)
    assert [r.type for r in chased.records] == ["CNAME", "A"]
    assert m.answer("alias.svc.local", "CNAME", [zone], look).records[0].type == "CNAME"
    assert len(m.answer("loop.svc.local", "A", [zone], look).records) == 1
    assert m.answer("dangling.svc.local", "A", [zone], look).rcode is Rcode.NXDOMAIN
    # The apex answers its SOA; ANY gives all there is.
    assert m.answer("svc.local", "SOA", [zone], look).records[0].type == "SOA"
    assert [r.type for r in m.answer("web.svc.local", "ANY", [zone], look).records] == ["A"]
    assert m.answer("a" * 300, "A", [zone], look).rcode is Rcode.NXDOMAIN


def test_names_registry_and_views():
    names = Names("us-east-1")
    names.task_up("t1", "vpc-a", "10.89.0.0/16", "10.89.0.4", "ip-10-89-0-4.ec2.internal")
    names.task_up("t2", "vpc-b", "10.90.0.0/16", "10.90.0.4", "ip-10-90-0-4.ec2.internal")
    names.put("lb.us-east-1.elb.amazonaws.com", ["10.89.0.9", "fd00::1"], ttl=30)
    names.put("only-a.internal", ["10.89.0.10"], vpc_id="vpc-a")
    a, b = View("vpc-a"), View("vpc-b")
    assert names.resolve(a, "ip-10-89-0-4.ec2.internal", "A").records[0].data == A("10.89.0.4")
    assert names.resolve(b, "ip-10-89-0-4.ec2.internal", "A").rcode is Rcode.NXDOMAIN
    assert names.resolve(HOST, "ip-10-90-0-4.ec2.internal", "A").records  # the host sees all
    ptr = names.resolve(a, "4.0.89.10.in-addr.arpa", "PTR")
    assert ptr.records[0].data == m.Ptr("ip-10-89-0-4.ec2.internal") and ptr.authoritative
    assert names.resolve(b, "4.0.89.10.in-addr.arpa", "PTR").rcode is Rcode.NXDOMAIN
    lb = names.resolve(b, "LB.us-east-1.elb.amazonaws.com", "AAAA")
    assert [r.data for r in lb.records] == [m.AAAA("fd00::1")] and lb.records[0].ttl == 30
    assert names.resolve(a, "only-a.internal", "A").records
    assert names.resolve(b, "only-a.internal", "A").rcode is Rcode.NXDOMAIN
    assert names.remove("only-a.internal") and not names.remove("only-a.internal")
    names.task_down("t1")
    assert names.resolve(a, "ip-10-89-0-4.ec2.internal", "A").rcode is Rcode.NXDOMAIN
    with pytest.raises(ValueError):
        names.put("bad name", ["10.0.0.1"])
    with pytest.raises(ValueError):
        names.put("ok.name", ["not-an-ip"])


class _Source:
    def zones(self, view):
        return [Zone("x.local")] if view.sees("vpc-a") else []

    def records_at(self, view, name):
        if name == "s.x.local" and view.sees("vpc-a"):
            return [Record(name, 5, A("10.89.1.1"))]
        return None


def test_record_sources():
    names = Names("eu-west-1")
    names.add_source(_Source())
    assert names.resolve(View("vpc-a"), "s.x.local", "A").records[0].ttl == 5
    assert names.resolve(View("vpc-b"), "s.x.local", "A") == Answer(Rcode.NXDOMAIN)
    assert names.resolve(View("vpc-a"), "t.x.local", "A").authoritative


def _reply(names: Names, q: dns.message.Message | bytes, limit: int | None = 512):
    wire = q if isinstance(q, bytes) else q.to_wire()
    out = respond(names, HOST, wire, limit)
    return None if out is None else dns.message.from_wire(out)


def test_wire_replies():
    names = Names("us-east-1")
    names.put("big.test.internal", [f"10.0.{i // 250}.{i % 250}" for i in range(120)])
    r = _reply(names, dns.message.make_query("big.test.internal", "A"))
    assert r.flags & dns.flags.TC and not r.answer  # too big for 512 bytes: ask over TCP
    r = _reply(names, dns.message.make_query("big.test.internal", "A"), None)
    assert len(r.answer[0]) == 120  # over TCP it all fits
    r = _reply(names, dns.message.make_query("big.test.internal", "A", use_edns=0,
                                             payload=4096))
    assert r.flags & dns.flags.TC  # EDNS: at most 1232 bytes however much is offered
    r = _reply(names, dns.message.make_query("example.com", "A"))
    assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.RA
    assert _reply(names, b"\x00" * 11) is None
    formerr = respond(names, HOST, b"\xab\xcd\x01\x00" + b"\x00\x01" + b"\xff" * 30, 512)
    assert formerr is not None and formerr[:2] == b"\xab\xcd" and formerr[3] & 15 == 1
    q = dns.message.make_query(dns.name.Name([b"a.b", b"internal", b""]), "A")
    assert _reply(names, q).rcode() == dns.rcode.NXDOMAIN


def test_a_task_flooding_its_resolver_is_held_back():
    from fargo.api.dns import _Bucket

    bucket = _Bucket(rate=10.0, burst=5.0)
    assert sum(bucket.take() for _ in range(50)) in (5, 6)  # the burst, then the rate
