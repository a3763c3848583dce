"""The VPC resolver end to end: a real server answers real DNS queries (dnspython) on the host's
port and, from inside busybox tasks, at the VPC's base + 2 named in their resolv.conf; it
answers only fargo's own names and sends nothing anywhere."""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import time
import uuid

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import wait_status
from tests.test_tasks import detail, logs, register, run


def host_dns_port(fargo) -> int:
    """The port the server printed for the host's resolver."""
    deadline = time.time() + 10
    while time.time() < deadline:
        found = re.findall(r"VPC DNS resolver for the host on 127\.0\.0\.1:(\d+)",
                           fargo.log.read_text())
        if found:
            return int(found[-1])
        time.sleep(0.1)
    raise AssertionError("the server printed no DNS port")


def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port=port, timeout=3)


def addresses(reply: dns.message.Message) -> set[str]:
    return {r.to_text() for rrset in reply.answer for r in rrset
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)}


def resolver_of(fargo) -> str:
    return str(ipaddress.ip_network(fargo.cidr).network_address + 2)


@pytest.fixture(scope="module")
def dns_port(fargo) -> int:
    return host_dns_port(fargo)


def test_task_names_resolve_in_task_and_host(ecs, fargo, busybox_image, subnet_id, dns_port):
    resolver = resolver_of(fargo)
    script = ("cat /etc/resolv.conf; cat /etc/hosts; echo host=$(hostname); "
              "busybox nslookup $(hostname) " + resolver + "; echo ---; "
              "busybox nslookup $(hostname); echo ---; "
              "busybox nslookup nosuch-" + uuid.uuid4().hex[:6] + ".ec2.internal; echo ---; "
              "busybox nslookup example.com; echo rc=$?; echo ---; "
              "trap 'exit 0' TERM; sleep 60 & wait")
    fam = register(ecs, busybox_image, command=["sh", "-c", script])
    t = run(ecs, fam, subnet_id)
    t = wait_status(ecs, t["taskArn"], "RUNNING")
    ip, name = detail(t, "privateIPv4Address"), detail(t, "privateDnsName")
    assert name == f"ip-{ip.replace('.', '-')}.ec2.internal"
    # The host asks too: the name, its reverse, over UDP and TCP.
    assert addresses(ask(dns_port, name)) == {ip}
    assert addresses(ask(dns_port, name.upper(), tcp=True)) == {ip}
    ptr = ask(dns_port, ipaddress.ip_address(ip).reverse_pointer, "PTR")
    assert [r.to_text() for rrset in ptr.answer for r in rrset] == [name + "."]
    aaaa = ask(dns_port, name, "AAAA")  # the name exists: NODATA, not NXDOMAIN
    assert aaaa.rcode() == dns.rcode.NOERROR and not aaaa.answer and aaaa.authority
    out = ""
    deadline = time.time() + 20
    while time.time() < deadline and out.count("---") < 4:
        out = logs(fargo, t["taskArn"])
        time.sleep(0.3)
    ecs.stop_task(task=t["taskArn"])
    assert f"nameserver {resolver}\nsearch ec2.internal\n" in out, out
    assert f"{ip} {name} " in out, out
    first, own, nosuch, outside = out.split("---")[:4]
    assert f"host={name}" in first
    assert f"Address: {ip}" in first and f"Address: {ip}" in own, out
    assert "NXDOMAIN" in nosuch or "can't find" in nosuch, out
    assert "rc=1" in outside and ("NXDOMAIN" in outside or "can't find" in outside), out
    t = wait_status(ecs, t["taskArn"], "STOPPED")
    # Gone with its network.
    assert ask(dns_port, name).rcode() == dns.rcode.NXDOMAIN


def test_unknown_and_outside_names(dns_port):
    for name in ("nosuch.ec2.internal", "example.com", "www.google.com", "localhost",
                 "1.0.0.127.in-addr.arpa"):
        for tcp in (False, True):
            reply = ask(dns_port, name, tcp=tcp)
            assert reply.rcode() == dns.rcode.NXDOMAIN, (name, reply)
            assert not reply.answer
    inside = ask(dns_port, "nosuch.ec2.internal")
    assert inside.flags & dns.flags.AA and inside.authority  # its zone's SOA
    outside = ask(dns_port, "example.com")
    assert not outside.flags & dns.flags.AA and not outside.authority


def test_nothing_is_forwarded(dns_port):
    """A query for an outside name is answered at once from here, and the server opens no
    socket toward any other address while answering it (no resolver is configured anyway:
    the answer would otherwise take the forwarder's round trip or time out)."""
    started = time.monotonic()
    reply = ask(dns_port, f"x{uuid.uuid4().hex[:8]}.example.com")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - started < 0.5


def _raw_udp(port: int, data: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def test_malformed_and_hostile_queries(dns_port):
    assert _raw_udp(dns_port, b"") is None
    assert _raw_udp(dns_port, b"\x12") is None  # no header to answer
    junk = _raw_udp(dns_port, b"\x12\x34\x01\x00" + b"\xff" * 40)
    assert junk is not None and junk[:2] == b"\x12\x34"
    assert junk[3] & 0x0F == dns.rcode.FORMERR
    # A response sent to it is never answered (no loop between two servers).
    reply = dns.message.make_response(dns.message.make_query("a.ec2.internal", "A"))
    assert _raw_udp(dns_port, reply.to_wire()) is None
    # Names no fargo name can be: bytes outside ASCII, a dot inside a label, NUL.
    for labels in ([b"a\x00b", b"ec2", b"internal"], [b"a.b", b"ec2", b"internal"],
                   [b"\xff\xfe", b"ec2", b"internal"], [b"x" * 63] * 3 + [b"y" * 60]):
        q = dns.message.make_query(dns.name.Name([*labels, b""]), "A")
        assert ask_raw(dns_port, q).rcode() == dns.rcode.NXDOMAIN
    # Zone transfers are refused; classes other than IN too; opcodes other than QUERY: NOTIMP.
    assert ask(dns_port, "ec2.internal", "AXFR", tcp=True).rcode() == dns.rcode.REFUSED
    chaos = dns.message.make_query("version.bind", "TXT", rdclass="CH")
    assert ask_raw(dns_port, chaos).rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query("ec2.internal", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert ask_raw(dns_port, notify).rcode() == dns.rcode.NOTIMP
    # Two questions: FORMERR.
    two = dns.message.make_query("a.ec2.internal", "A")
    two.question.append(dns.rrset.RRset(dns.name.from_text("b.ec2.internal"),
                                        dns.rdataclass.IN, dns.rdatatype.A))
    assert ask_raw(dns_port, two).rcode() == dns.rcode.FORMERR
    # Oversized and garbage over TCP: the connection is closed or answered, the server lives.
    with socket.create_connection(("127.0.0.1", dns_port), timeout=3) as s:
        s.sendall(struct.pack("!H", 65535) + b"\x00" * 100)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b""
    assert ask(dns_port, "example.com").rcode() == dns.rcode.NXDOMAIN


def ask_raw(port: int, q: dns.message.Message) -> dns.message.Message:
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=3)


def test_resolver_comes_back_after_a_server_crash(fargo_servers, busybox_image):
    """SIGKILL the server while a task keeps asking for its own name: after the restart the
    re-adopted task's resolver answers again (in its netns and on the host's port)."""
    srv = fargo_servers()
    ecs = srv.client("ecs")
    subnet = srv.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    loop = ("n=0; trap 'exit 0' TERM; while true; do n=$((n+1)); "
            "if busybox nslookup $(hostname) >/dev/null 2>&1; then echo ok $n; "
            "else echo fail $n; fi; sleep 0.3; done")
    fam = register(ecs, busybox_image, command=["sh", "-c", loop])
    t = wait_status(ecs, run(ecs, fam, subnet)["taskArn"], "RUNNING")
    name = detail(t, "privateDnsName")

    def tail(count: int) -> list[str]:
        return [line.split()[0] for line in logs(srv, t["taskArn"]).splitlines()
                if line.startswith(("ok ", "fail "))][-count:]

    deadline = time.time() + 20
    while time.time() < deadline and "ok" not in tail(1):
        time.sleep(0.3)
    assert tail(1) == ["ok"]
    srv.kill()
    srv.start()
    deadline = time.time() + 30
    while time.time() < deadline and tail(3) != ["ok"] * 3:
        time.sleep(0.5)
    assert tail(3) == ["ok"] * 3, logs(srv, t["taskArn"])[-2000:]
    assert addresses(ask(host_dns_port(srv), name)) == {detail(t, "privateIPv4Address")}
    ecs.stop_task(task=t["taskArn"])
    wait_status(ecs, t["taskArn"], "STOPPED")


def test_resolv_conf_with_a_read_only_root(ecs, fargo, busybox_image, subnet_id):
    """The files are bound before runc makes the root read-only; the task cannot change
    them."""
    script = ("cat /etc/resolv.conf; echo x >> /etc/resolv.conf && echo wrote || echo refused; "
              "busybox nslookup $(hostname) && echo found")
    fam = register(ecs, busybox_image, command=["sh", "-c", script],
                   readonlyRootFilesystem=True, user="nobody")
    t = wait_status(ecs, run(ecs, fam, subnet_id)["taskArn"], "STOPPED")
    out = logs(fargo, t["taskArn"])
    assert f"nameserver {resolver_of(fargo)}\n" in out and "refused" in out, out
    assert "found" in out and t["containers"][0]["exitCode"] == 0, out
