"""Cluster DNS end to end: busybox pods on a real server ask their cluster DNS address
(172.20.0.10, DNATed inside their own netns to fargo's resolver) with nslookup: short names
through the search path, FQDNs, SRV of named ports, a headless Service's endpoints and its
pod's hostname.subdomain name, an ExternalName CNAME, a VPC name, pod names, NXDOMAIN for
what does not exist. resolv.conf by dnsPolicy (ClusterFirst with a dnsConfig merged,
Default, None), DNS over TCP through the DNAT, and the host's view, which sees no
cluster.local. Nothing is asked of any other server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import FargoServers
from tests.holderpaths import netns_exec, pinned_names
from tests.test_dns import host_dns_port, resolver_of
from tests.test_kubectl import KUBECTL, eks_cluster, kubectl, kubectl_run

NS = "apps"
ZONE = "cluster.local"
DNS_IP = "172.20.0.10"
SLEEPER = "trap 'exit 0' TERM; sleep 3600 & wait"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with FargoServers(tmp_path_factory.mktemp("kdns-state")) as servers:
        yield servers("--overcommit", "8")


@pytest.fixture(scope="module")
def cfg(srv, tmp_path_factory) -> Path:
    return eks_cluster(srv, tmp_path_factory.mktemp("kdns"), [{"namespace": NS}], [NS], "dns")[1]


def pod(name: str, image: str, labels: dict | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": image,
                                     "command": ["sh", "-c", SLEEPER]}], **spec}}


def service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def apply(cfg: Path, *objs: dict) -> None:
    kubectl_run(cfg, "apply", "-f", "-",
                stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def get(cfg: Path, kind: str, name: str) -> dict:
    return json.loads(kubectl_run(cfg, "get", kind, name, "-n", NS, "-o", "json"))


def wait_until(what: str, check, timeout: float = 40):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.time() < deadline, what
        time.sleep(0.1)


def ready(cfg: Path, name: str) -> dict | None:
    p = get(cfg, "pod", name)
    conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
    return p if conds.get("Ready") == "True" and p["status"].get("podIP") else None


def sh(cfg: Path, name: str, script: str) -> str:
    out = kubectl(cfg, "exec", name, "-n", NS, "--", "sh", "-c", script, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def sections(text: str) -> list[str]:
    return text.split("===\n")


def netns_of(srv, ip: str) -> str:
    """The netns (its pin's name) of this server's task holding ip."""
    for name in pinned_names():
        if name.startswith(srv.prefix + "-"):
            out = subprocess.run([*netns_exec(name), "ip", "-4", "-o", "addr"],
                                 capture_output=True, text=True).stdout
            if f" {ip}/" in out:
                return name
    raise AssertionError(f"no netns holds {ip}")


@pytest.fixture(scope="module")
def world(cfg, busybox_image):
    """A ClusterIP Service, a headless one with a pod naming its hostname, and three
    clients (ClusterFirst with a dnsConfig, Default, None)."""
    apply(cfg,
          service("web", selector={"app": "web"},
                  ports=[{"name": "http", "port": 80, "targetPort": 8080}]),
          service("db", clusterIP="None", selector={"app": "db"},
                  ports=[{"name": "pg", "port": 5432}]),
          pod("db-0", busybox_image, {"app": "db"}, hostname="db-0", subdomain="db"),
          pod("client", busybox_image, dnsConfig={
              "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"},
                                                        {"name": "edns0"}]}),
          pod("plain", busybox_image, dnsPolicy="Default"),
          pod("none", busybox_image, dnsPolicy="None",
              dnsConfig={"nameservers": [DNS_IP], "searches": [f"{NS}.svc.{ZONE}"]}))
    pods = {n: wait_until(f"{n} ready", lambda n=n: ready(cfg, n))
            for n in ("db-0", "client", "plain", "none")}
    wait_until("db's slice has db-0", lambda: any(
        ep["addresses"] == [pods["db-0"]["status"]["podIP"]]
        for s in json.loads(kubectl_run(cfg, "get", "endpointslices", "-n", NS, "-l",
                                        "kubernetes.io/service-name=db", "-o", "json"))["items"]
        for ep in s.get("endpoints") or []))
    return pods


def test_resolv_conf_by_dns_policy(srv, cfg, world):
    client = sh(cfg, "client", "cat /etc/resolv.conf")
    lines = client.splitlines()
    search = lines[0].split()
    assert search[:4] == ["search", f"{NS}.svc.{ZONE}", f"svc.{ZONE}", ZONE]
    assert search[4].endswith(".internal") and search[5:] == ["corp.example"]
    assert lines[1:] == [f"nameserver {DNS_IP}", "options ndots:2 edns0"]
    assert sh(cfg, "plain", "cat /etc/resolv.conf") == (
        f"search {search[4]}\nnameserver {resolver_of(srv)}\n")
    assert sh(cfg, "none", "cat /etc/resolv.conf") == (
        f"search {NS}.svc.{ZONE}\nnameserver {DNS_IP}\n")
    # The pod that names its hostname has it, and its FQDN in /etc/hosts, as kubelet writes.
    ip = world["db-0"]["status"]["podIP"]
    out = sh(cfg, "db-0", "hostname; cat /etc/hosts")
    assert out.startswith("db-0\n") and f"{ip}\tdb-0.db.{NS}.svc.{ZONE}\tdb-0" in out


def test_names_from_a_pod(srv, cfg, world):
    db_ip = world["db-0"]["status"]["podIP"]
    web_ip = get(cfg, "service", "web")["spec"]["clusterIP"]
    # The VPC's name of db-0's task, as Fargate names the ENI (the search path's last domain).
    domain = sh(cfg, "client", "cat /etc/resolv.conf").split()[4]
    vpc_name = f"ip-{db_ip.replace('.', '-')}.{domain}"
    apply(cfg, service("ext", type="ExternalName", externalName=vpc_name))
    script = " ; echo === ; ".join([
        "nslookup web",  # the first search domain: web.apps.svc.cluster.local
        f"nslookup web.{NS}.svc.{ZONE}.",
        f"nslookup -type=SRV _http._tcp.web.{NS}.svc.{ZONE}",
        f"nslookup db.{NS}.svc.{ZONE}",
        f"nslookup db-0.db.{NS}.svc.{ZONE}",
        f"nslookup -type=SRV _pg._tcp.db.{NS}.svc.{ZONE}",
        f"nslookup ext.{NS}.svc.{ZONE}",
        f"nslookup {vpc_name}",
        f"nslookup kube-dns.kube-system.svc.{ZONE}",
        f"nslookup {db_ip.replace('.', '-')}.{NS}.pod.{ZONE}",
        f"nslookup nothing.{NS}.svc.{ZONE}; echo rc=$?",
        "nslookup example.org; echo rc=$?",
    ]) + " ; echo ==="
    out = sections(sh(cfg, "client", script))
    short, fqdn, srv_web, headless, host, srv_db, ext, vpc, kdns, podname, missing, outside = \
        out[:12]
    assert f"Name:\tweb.{NS}.svc.{ZONE}\nAddress: {web_ip}" in short, short
    assert f"Address: {web_ip}" in fqdn and DNS_IP in fqdn, fqdn
    assert f"_http._tcp.web.{NS}.svc.{ZONE}\tservice = 0 100 80 web.{NS}.svc.{ZONE}" in srv_web, \
        srv_web
    assert f"Address: {db_ip}" in headless, headless
    assert f"Name:\tdb-0.db.{NS}.svc.{ZONE}\nAddress: {db_ip}" in host, host
    assert f"service = 0 100 5432 db-0.db.{NS}.svc.{ZONE}" in srv_db, srv_db
    assert f"ext.{NS}.svc.{ZONE}\tcanonical name = {vpc_name}" in ext and \
        f"Address: {db_ip}" in ext, ext
    assert f"Address: {db_ip}" in vpc, vpc
    assert f"Address: {DNS_IP}" in kdns, kdns
    assert f"Address: {db_ip}" in podname, podname
    assert "NXDOMAIN" in missing and "rc=1" in missing, missing
    assert "rc=1" in outside, outside  # nothing is forwarded off the machine


def test_writes_show_at_once_tcp_and_the_hosts_view(srv, cfg, world):
    name = f"late.{NS}.svc.{ZONE}"
    assert "NXDOMAIN" in sh(cfg, "client", f"nslookup {name} ; true")
    apply(cfg, service("late", selector={"app": "late"}, ports=[{"port": 81}]))
    ip = get(cfg, "service", "late")["spec"]["clusterIP"]
    assert f"Address: {ip}" in sh(cfg, "client", f"nslookup {name}")
    # Over TCP too, from inside the pod's netns (dnspython there, the DNAT's TCP rule).
    netns = netns_of(srv, world["client"]["status"]["podIP"])
    probe = ("import dns.message, dns.query, sys; "
             f"r = dns.query.tcp(dns.message.make_query('{name}', 'A'), '{DNS_IP}', timeout=3); "
             "print(r.answer[0][0].address)")
    out = subprocess.run([*netns_exec(netns), sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == ip, out.stderr
    kubectl_run(cfg, "delete", "service", "late", "-n", NS)
    assert "NXDOMAIN" in sh(cfg, "client", f"nslookup {name} ; true")
    # The host's resolver has no cluster: cluster.local is no name of its own there.
    port = host_dns_port(srv)
    reply = dns.query.udp(dns.message.make_query(f"web.{NS}.svc.{ZONE}", "A"), "127.0.0.1",
                          port=port, timeout=3)
    assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer


def test_cluster_dns_qps_from_a_pod(srv, world):
    """A figure, and a floor: queries answered per second from inside a pod's netns."""
    netns = netns_of(srv, world["client"]["status"]["podIP"])
    probe = ("import dns.message, dns.query, time\n"
             f"q = dns.message.make_query('web.{NS}.svc.{ZONE}', 'A')\n"
             "n, t0 = 0, time.perf_counter()\n"
             "while time.perf_counter() - t0 < 1.5:\n"
             f"    r = dns.query.udp(q, '{DNS_IP}', timeout=2); assert r.answer; n += 1\n"
             "print(round(n / (time.perf_counter() - t0)))\n")
    out = subprocess.run([*netns_exec(netns), sys.executable, "-c", probe],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    qps = int(out.stdout)
    print(f"cluster DNS: {qps} queries/s, one client in a pod's netns, UDP, sequential")
    assert qps > 200


def test_a_sigkill_of_the_server_keeps_pods_names(srv, cfg, world):
    """The running pods are re-adopted: their netns's DNAT and view (its cluster) again."""
    srv.kill()
    srv.start()
    web_ip = get(cfg, "service", "web")["spec"]["clusterIP"]
    out = sh(cfg, "client", f"nslookup web ; nslookup db-0.db.{NS}.svc.{ZONE}")
    assert f"Address: {web_ip}" in out and \
        f"Address: {world['db-0']['status']['podIP']}" in out, out
