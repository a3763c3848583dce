"""Cluster DNS without a server: model/clusterdns.py's names and resolv.conf, and
control/clusterdns.py answering through control/dns.py's Names from a KubeState over a
throwaway store (the views of pods of one cluster, of another cluster, of an ECS task)."""

from __future__ import annotations

from typing import Any

import pytest

from fargo.control.clusterdns import ClusterDns
from fargo.control.dns import Names
from fargo.control.kubestate import KubeState
from fargo.model import clusterdns, dns
from fargo.model.dns import A, Cname, Ptr, Rcode, Srv, View
from fargo.store.kube import KubeTables
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure
CIDR = "172.20.0.0/16"
ZONE = "cluster.local"


def svc(name: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def eps(service: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]],
        ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-abc", "namespace": ns,
                         "labels": {clusterdns.SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}


def endpoint(ip: str, pod: str, ready: bool = True, ns: str = "default") -> dict[str, Any]:
    return {"addresses": [ip], "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "namespace": ns, "name": pod, "uid": "u-" + pod}}


def pod(name: str, ns: str = "default", deleting: bool = False,
        **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


# ---- resolv.conf


def test_cluster_first_is_the_default():
    text = clusterdns.resolv_conf({}, "apps", "172.20.0.10", "10.0.0.2", "us-east-1")
    assert text == ("search apps.svc.cluster.local svc.cluster.local cluster.local "
                    "ec2.internal\nnameserver 172.20.0.10\noptions ndots:5\n")
    other = clusterdns.resolv_conf({"dnsPolicy": "ClusterFirst"}, "x", "172.20.0.10",
                                   "10.0.0.2", "eu-west-1")
    assert "search x.svc.cluster.local svc.cluster.local cluster.local " \
           "eu-west-1.compute.internal\n" in other


def test_default_is_what_an_ecs_task_gets():
    text = clusterdns.resolv_conf({"dnsPolicy": "Default"}, "apps", "172.20.0.10",
                                  "10.0.0.2", "us-east-1")
    assert text == "search ec2.internal\nnameserver 10.0.0.2\n"
    # ClusterFirst without a cluster DNS address falls back to Default, as kubelet does.
    assert clusterdns.resolv_conf({}, "apps", None, "10.0.0.2", "us-east-1") == text


def test_none_takes_dns_config_alone():
    spec = {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["10.0.0.2", "10.0.0.2"], "searches": ["a.example", "b.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}
    text = clusterdns.resolv_conf(spec, "apps", "172.20.0.10", "10.0.0.2", "us-east-1")
    assert text == ("search a.example b.example\nnameserver 10.0.0.2\n"
                    "options ndots:2 edns0\n")


def test_dns_config_merges_into_cluster_first():
    spec = {"dnsConfig": {"nameservers": ["172.20.0.10", "10.0.0.2"],
                          "searches": ["svc.cluster.local", "corp.example"],
                          "options": [{"name": "ndots", "value": "1"},
                                      {"name": "timeout", "value": "2"}]}}
    text = clusterdns.resolv_conf(spec, "apps", "172.20.0.10", "10.0.0.2", "us-east-1")
    assert text.splitlines() == [
        "search apps.svc.cluster.local svc.cluster.local cluster.local ec2.internal "
        "corp.example",
        "nameserver 172.20.0.10", "nameserver 10.0.0.2", "options ndots:1 timeout:2"]


def test_search_list_is_cut_to_the_resolvers_limits():
    spec = {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["10.0.0.2"], "searches": [f"d{i}.example" for i in range(40)]}}
    text = clusterdns.resolv_conf(spec, "apps", None, "10.0.0.2", "us-east-1")
    assert len(text.splitlines()[0].split()) == 1 + clusterdns.MAX_SEARCHES


def test_dns_address_is_base_plus_ten():
    assert clusterdns.dns_address(CIDR) == "172.20.0.10"
    assert clusterdns.dns_address("10.100.0.0/16") == "10.100.0.10"


def test_hosts_file_of_a_pod_naming_itself():
    assert clusterdns.hosts_file("10.0.1.5", "apps", {}) is None
    text = clusterdns.hosts_file("10.0.1.5", "apps", {"hostname": "web-0", "subdomain": "web"})
    assert "10.0.1.5\tweb-0.web.apps.svc.cluster.local\tweb-0\n" in (text or "")


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"dnsPolicy": "Bogus"}, "spec.dnsPolicy", 'Unsupported value: \'Bogus\': supported values: '
     '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'),
    ({"dnsPolicy": "None"}, "spec.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {}}, "spec.dnsConfig.nameservers",
     "must provide at least one DNS nameserver"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]}},
     "spec.dnsConfig.nameservers", "must not have more than 3 nameservers"),
    ({"dnsConfig": {"nameservers": ["dns.example"]}}, "spec.dnsConfig.nameservers[0]",
     "must be a valid IP address"),
    ({"dnsConfig": {"searches": ["Bad_Name"]}}, "spec.dnsConfig.searches[0]",
     "a lowercase RFC 1123 subdomain"),
    ({"dnsConfig": {"searches": [f"d{i}.example" for i in range(33)]}},
     "spec.dnsConfig.searches", "must not have more than 32 search paths"),
    ({"dnsConfig": {"options": [{"value": "1"}]}}, "spec.dnsConfig.options[0]",
     "Option.Name must not be empty"),
    ({"hostname": "Web_0"}, "spec.hostname", "a lowercase RFC 1123 label"),
    ({"subdomain": "x" * 64}, "spec.subdomain", "a lowercase RFC 1123 label"),
])
def test_spec_errors_as_the_apiserver_words_them(spec, field, words):
    errors = clusterdns.spec_errors(spec)
    assert any(f == field and words in m for f, m in errors), errors


def test_valid_dns_specs_pass():
    for spec in ({}, {"dnsPolicy": "Default"}, {"dnsPolicy": "ClusterFirstWithHostNet"},
                 {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["10.0.0.2"],
                                                     "searches": ["a.example.", "."]}},
                 {"hostname": "web-0", "subdomain": "web"}):
        assert clusterdns.spec_errors(spec) == []


# ---- the records


def ask(table: clusterdns.ClusterRecords, name: str, qtype: str = "A") -> dns.Answer:
    return dns.answer(name, qtype, clusterdns.zones(CIDR), table.at)


def data(answer: dns.Answer) -> list[Any]:
    return [r.data for r in answer.records]


@pytest.fixture
def table() -> clusterdns.ClusterRecords:
    services = [
        svc("web", clusterIP="172.20.4.1", clusterIPs=["172.20.4.1"],
            ports=[{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]),
        svc("db", clusterIP="None", ports=[{"name": "pg", "port": 5432}]),
        svc("empty", clusterIP="None"),
        svc("ext", type="ExternalName", externalName="Lb-1.elb.example.com."),
        svc("other", "team", clusterIP="172.20.4.2"),
        svc("lost", "gone-ns", clusterIP="172.20.4.3"),  # its namespace is gone
    ]
    slices = [eps("db", [endpoint("10.0.1.5", "db-0"), endpoint("10.0.1.6", "db-1"),
                         endpoint("10.0.1.7", "db-2", ready=False),
                         endpoint("10.0.1.8", "db-3"), endpoint("10.0.1.9", "db-4")],
                  [{"name": "pg", "port": 5433, "protocol": "TCP"}])]
    pods = [pod("db-0", hostname="db-0", subdomain="db"), pod("db-1"), pod("db-2"),
            pod("db-3", deleting=True)]  # db-4 is gone: the slice has not caught up
    return clusterdns.build(["default", "team", "kube-system"], services, slices, pods, CIDR)


def test_cluster_ip_service(table):
    found = ask(table, f"web.default.svc.{ZONE}")
    assert found.rcode is Rcode.NOERROR and found.authoritative
    assert data(found) == [A("172.20.4.1")] and found.records[0].ttl == clusterdns.TTL
    srv = ask(table, f"_http._tcp.web.default.svc.{ZONE}", "SRV")
    assert data(srv) == [Srv(0, 100, 80, f"web.default.svc.{ZONE}")]
    # An unnamed port has no SRV; the name on the way exists without records.
    assert ask(table, f"_tcp.web.default.svc.{ZONE}", "SRV").rcode is Rcode.NOERROR
    assert ask(table, f"_81._tcp.web.default.svc.{ZONE}", "SRV").rcode is Rcode.NXDOMAIN
    assert data(ask(table, "1.4.20.172.in-addr.arpa", "PTR")) == [Ptr(f"web.default.svc.{ZONE}")]


def test_headless_service_answers_its_ready_live_endpoints(table):
    found = ask(table, f"db.default.svc.{ZONE}")
    assert sorted(d.address for d in data(found)) == ["10.0.1.5", "10.0.1.6"]
    srv = ask(table, f"_pg._tcp.db.default.svc.{ZONE}", "SRV")
    targets = sorted((d.port, d.target) for d in data(srv))
    assert targets == [(5433, f"10-0-1-6.db.default.svc.{ZONE}"),
                       (5433, f"db-0.db.default.svc.{ZONE}")]
    assert data(ask(table, f"db-0.db.default.svc.{ZONE}")) == [A("10.0.1.5")]
    assert data(ask(table, f"10-0-1-6.db.default.svc.{ZONE}")) == [A("10.0.1.6")]
    for gone in ("10-0-1-7", "10-0-1-8", "10-0-1-9"):  # not ready, terminating, pod gone
        assert ask(table, f"{gone}.db.default.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    none = ask(table, f"empty.default.svc.{ZONE}")
    assert none.rcode is Rcode.NOERROR and not none.records and none.authority


def test_publish_not_ready_addresses():
    slices = [eps("db", [endpoint("10.0.1.7", "db-2", ready=False)], [])]
    table = clusterdns.build(["default"], [svc("db", clusterIP="None",
                                               publishNotReadyAddresses=True)],
                             slices, [pod("db-2")], CIDR)
    assert data(ask(table, f"db.default.svc.{ZONE}")) == [A("10.0.1.7")]


def test_external_name_is_a_cname(table):
    found = ask(table, f"ext.default.svc.{ZONE}")
    assert data(found) == [Cname("lb-1.elb.example.com")]


def test_pod_names_and_nxdomain(table):
    assert data(ask(table, f"10-0-1-5.default.pod.{ZONE}")) == [A("10.0.1.5")]
    assert ask(table, f"10-0-1-5.nope.pod.{ZONE}").rcode is Rcode.NXDOMAIN
    assert ask(table, f"10-0-01-5.default.pod.{ZONE}").rcode is Rcode.NXDOMAIN
    assert ask(table, f"web.nope.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    assert ask(table, f"lost.gone-ns.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    assert ask(table, f"nothing.default.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    assert ask(table, f"kube-system.svc.{ZONE}").rcode is Rcode.NOERROR
    apex = ask(table, ZONE, "SOA")
    assert apex.rcode is Rcode.NOERROR and apex.records[0].type == "SOA"
    assert data(ask(table, f"other.team.svc.{ZONE}")) == [A("172.20.4.2")]


# ---- through Names, by view


class Cluster:
    def __init__(self, tmp_path):
        self.store = Store(tmp_path / "state.db")
        self.state = KubeState(KubeTables(self.store))
        self.clusters = {"one": CIDR, "two": CIDR}
        self.dns = ClusterDns(self.state, self.clusters.get, "us-east-1")
        self.names = Names("us-east-1")
        self.names.add_source(self.dns)
        for c in self.clusters:
            self.state.create(c, "namespaces", "", {"metadata": {"name": "default"}})

    def resolve(self, view: View, name: str, qtype: str = "A") -> dns.Answer:
        return self.names.resolve(view, name, qtype)


def test_names_answer_a_clusters_pods_only(tmp_path):
    c = Cluster(tmp_path)
    c.state.create("one", "services", "default", svc("web", clusterIP="172.20.9.9"))
    c.names.put("lb-1.elb.example.com", ["10.0.5.5"])  # a load balancer's DNSName
    c.state.create("one", "services", "default",
                   svc("ext", type="ExternalName", externalName="lb-1.elb.example.com"))
    one, two = View("vpc-1", "one"), View("vpc-1", "two")
    assert data(c.resolve(one, f"web.default.svc.{ZONE}")) == [A("172.20.9.9")]
    assert c.resolve(two, f"web.default.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    assert c.resolve(View("vpc-1"), f"web.default.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    assert c.resolve(dns.HOST, f"web.default.svc.{ZONE}").rcode is Rcode.NXDOMAIN
    chased = c.resolve(one, f"ext.default.svc.{ZONE}")
    assert data(chased) == [Cname("lb-1.elb.example.com"), A("10.0.5.5")]
    # VPC names still resolve for pods, and nothing else is invented.
    assert data(c.resolve(one, "lb-1.elb.example.com")) == [A("10.0.5.5")]
    assert c.resolve(one, "example.org").rcode is Rcode.NXDOMAIN


def test_records_follow_writes_and_are_built_only_after_them(tmp_path):
    c = Cluster(tmp_path)
    view = View("vpc-1", "one")
    name = f"web.default.svc.{ZONE}"
    assert c.resolve(view, name).rcode is Rcode.NXDOMAIN
    built = c.dns.builds
    for _ in range(50):
        c.resolve(view, name)
    assert c.dns.builds == built  # queries alone read nothing again
    c.state.create("one", "services", "default", svc("web", clusterIP="172.20.9.9"))
    assert data(c.resolve(view, name)) == [A("172.20.9.9")]
    c.state.delete("one", "services", "default", "web")
    assert c.resolve(view, name).rcode is Rcode.NXDOMAIN
    assert c.resolve(View("vpc-1", "gone"), name).rcode is Rcode.NXDOMAIN
