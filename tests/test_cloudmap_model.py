"""Cloud Map's rules without a server (model/cloudmap.py), and its control over a store in a
temporary file: namespaces, services, instances, and the records the resolver gets."""

from __future__ import annotations

import random

import pytest

from fargo.control.cloudmap import CloudMap
from fargo.control.dns import Names
from fargo.model import cloudmap as cm
from fargo.model.cloudmap import CloudMapError, DnsRecordConf, Instance, Namespace, Service
from fargo.model.dns import HOST, A, Rcode, Srv, View
from fargo.store.sqlite import Store

pytestmark = pytest.mark.pure

NS = Namespace("ns-1", "corp.local", cm.PRIVATE, 0.0, "vpc-a")


def _svc(*types: str, policy: str = cm.MULTIVALUE, health: bool = False) -> Service:
    return Service("srv-1", "web", "ns-1", 0.0, "DNS_HTTP", None, policy,
                   [DnsRecordConf(t, 10) for t in types], health)


def _codes(fn, *args) -> str:
    with pytest.raises(CloudMapError) as err:
        fn(*args)
    return err.value.code


def test_dns_config_rules():
    assert cm.dns_config({"DnsRecords": [{"Type": "A", "TTL": 5}]}, NS) == \
        (cm.MULTIVALUE, [DnsRecordConf("A", 5)])
    http = Namespace("ns-2", "h", cm.HTTP_NS, 0.0)
    for raw, ns in (({"DnsRecords": [{"Type": "A", "TTL": 5}]}, http),
                    ({"DnsRecords": []}, NS),
                    ({"DnsRecords": [{"Type": "CNAME", "TTL": 5}]}, NS),
                    ({"DnsRecords": [{"Type": "CNAME", "TTL": 5}, {"Type": "A", "TTL": 5}],
                      "RoutingPolicy": "WEIGHTED"}, NS),
                    ({"DnsRecords": [{"Type": "A", "TTL": 5}, {"Type": "A", "TTL": 6}]}, NS)):
        assert _codes(cm.dns_config, raw, ns) == "InvalidInput", raw
    assert cm.dns_config({"DnsRecords": [{"Type": "CNAME", "TTL": 5}],
                          "RoutingPolicy": "WEIGHTED"}, NS)[0] == cm.WEIGHTED
    svc = _svc("A", "SRV")
    assert cm.changed_records(svc, [{"Type": "SRV", "TTL": 1}, {"Type": "A", "TTL": 2}])
    assert _codes(cm.changed_records, svc, [{"Type": "A", "TTL": 1}]) == "InvalidInput"


def test_instance_attributes():
    svc = _svc("A", "SRV", health=True)
    attrs, health = cm.instance_attributes(svc, NS, "i-1", {
        "AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80", "x": "y",
        "AWS_INIT_HEALTH_STATUS": "UNHEALTHY"})
    assert attrs == {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80", "x": "y"}
    assert health == cm.UNHEALTHY
    for bad in ({"AWS_INSTANCE_PORT": "80"}, {"AWS_INSTANCE_IPV4": "10.0.0.1"},
                {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "0"},
                {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "080"},
                {"AWS_INSTANCE_IPV4": "fd00::1", "AWS_INSTANCE_PORT": "80"},
                {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                 "AWS_INIT_HEALTH_STATUS": "MAYBE"},
                {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80", "AWS_X": "1"},
                {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80",
                 "k": "v" * 5000}):
        assert _codes(cm.instance_attributes, svc, NS, "i-1", bad) == "InvalidInput", bad
    assert _codes(cm.instance_attributes, svc, NS, "a" * 64,
                  {"AWS_INSTANCE_IPV4": "10.0.0.1", "AWS_INSTANCE_PORT": "80"}) == "InvalidInput"
    # No health check: no status, and AWS_INIT_HEALTH_STATUS is refused.
    assert cm.instance_attributes(_svc("A"), NS, "i", {"AWS_INSTANCE_IPV4": "10.0.0.1"})[1] \
        is None


def test_routing_and_records():
    insts = [Instance("srv-1", f"i{n}", {"AWS_INSTANCE_IPV4": f"10.0.0.{n}",
                                         "AWS_INSTANCE_PORT": "80"}, 0.0, None,
                      cm.UNHEALTHY if n < 3 else cm.HEALTHY) for n in range(12)]
    rng = random.Random(1)
    multi = _svc("A", health=True)
    chosen = cm.answered(multi, insts, rng.sample)
    assert len(chosen) == 8 and all(i.health == cm.HEALTHY for i in chosen)
    weighted = _svc("A", policy=cm.WEIGHTED, health=True)
    assert len(cm.answered(weighted, insts, rng.sample)) == 1
    sick = [Instance("srv-1", "s", {"AWS_INSTANCE_IPV4": "10.0.0.9"}, 0.0, None, cm.UNHEALTHY)]
    assert cm.answered(multi, sick, rng.sample) == sick  # none healthy: as if all were
    srv = _svc("A", "SRV")
    recs = cm.service_records(srv, NS, insts[:1])
    assert [(r.name, r.data) for r in recs] == [
        ("web.corp.local", A("10.0.0.0")), ("web.corp.local", Srv(1, 1, 80, "i0.web.corp.local"))]
    assert cm.instance_records(srv, NS, insts[0])[0].name == "i0.web.corp.local"


def test_discover_and_filters():
    svc = _svc("A", health=True)
    insts = [Instance("srv-1", "a", {"env": "prod", "v": "1"}, 0.0, None, cm.HEALTHY),
             Instance("srv-1", "b", {"env": "prod", "v": "2"}, 0.0, None, cm.UNHEALTHY),
             Instance("srv-1", "c", {"env": "dev"}, 0.0, None, cm.HEALTHY)]
    ids = lambda found: [i.id for i in found]  # noqa: E731
    assert ids(cm.discover(svc, insts, {"env": "prod"}, {}, "ALL", 100)) == ["a", "b"]
    assert ids(cm.discover(svc, insts, {"env": "prod"}, {"v": "2"}, "ALL", 100)) == ["b"]
    assert ids(cm.discover(svc, insts, {"env": "prod"}, {"v": "9"}, "ALL", 100)) == ["a", "b"]
    assert ids(cm.discover(svc, insts, {}, {}, "HEALTHY", 100)) == ["a", "c"]
    assert ids(cm.discover(svc, insts, {}, {}, "UNHEALTHY", 100)) == ["b"]
    assert ids(cm.discover(svc, insts[1:2], {}, {}, "HEALTHY_OR_ELSE_ALL", 100)) == ["b"]
    assert ids(cm.discover(_svc("A"), insts, {}, {}, "HEALTHY", 1)) == ["a"]  # no check: all
    fs = cm.filters([{"Name": "TYPE", "Values": ["DNS_PRIVATE", "HTTP"], "Condition": "IN"}],
                    "namespace")
    assert cm.matches(fs[0], "HTTP") and not cm.matches(fs[0], "DNS_PUBLIC")
    for bad in ([{"Name": "TYPE", "Values": ["A", "B"]}],
                [{"Name": "NAME", "Values": ["a"], "Condition": "IN"}],
                [{"Name": "NAMESPACE_ID", "Values": ["x"]}]):
        assert _codes(cm.filters, bad, "namespace") == "InvalidInput", bad
    between = cm.filters([{"Name": "UPDATE_DATE", "Values": ["10", "20"]}], "operation")[0]
    assert cm.matches(between, 15.0) and not cm.matches(between, 25.0)
    assert _codes(cm.filters, [{"Name": "UPDATE_DATE", "Values": ["x", "y"]}],
                  "operation") == "InvalidInput"


def test_tags_and_names():
    assert cm.check_tags([{"Key": "a", "Value": "2"}], [{"Key": "a", "Value": "1"}], "r") == \
        [{"Key": "a", "Value": "2"}]
    assert _codes(cm.check_tags, [{"Key": "aws:x", "Value": ""}], [], "r") == "InvalidInput"
    assert _codes(cm.check_tags, [{"Key": f"k{n}", "Value": ""} for n in range(51)], [],
                  "r") == "TooManyTagsException"
    assert cm.check_private_name("Corp.Local.") == "Corp.Local"
    for bad in ("arn:aws:x", "a b", "-x.local", "x" * 64):
        assert _codes(cm.check_private_name, bad) == "InvalidInput", bad
    assert cm.id_from("arn:aws:servicediscovery:us-east-1:0:service/srv-9", "service") == "srv-9"
    assert cm.id_from("arn:aws:servicediscovery:us-east-1:0:namespace/ns-9", "service") == ""


def test_control_feeds_the_resolver(tmp_path):
    store = Store(tmp_path / "s.db")
    cloud = CloudMap(store, "us-east-1", lambda: ["vpc-a", "vpc-b"], rng=random.Random(3))
    names = Names("us-east-1")
    names.add_source(cloud)
    op = cloud.create_private_dns_namespace("corp.local", "vpc-a", request_id="r1")
    assert cloud.get_operation(op).status == "SUCCESS"
    ns_id = cloud.get_operation(op).targets["NAMESPACE"]
    assert cloud.create_private_dns_namespace("corp.local", "vpc-a", request_id="r1") == op
    svc = cloud.create_service("api", ns_id, request_id="s1",
                               dns_config={"DnsRecords": [{"Type": "A", "TTL": 7}]},
                               custom_health={})
    arn = svc.arn("us-east-1")
    assert cloud.registry(arn).record_types == frozenset({"A"})
    cloud.register(arn, "task-1", "10.89.0.4")
    cloud.register(arn, "task-2", "10.89.0.5")
    got = names.resolve(View("vpc-a"), "api.corp.local", "A")
    assert {r.data for r in got.records} == {A("10.89.0.4"), A("10.89.0.5")}
    # Private namespaces are their VPC's only; the host sees every VPC's.
    assert names.resolve(View("vpc-b"), "api.corp.local", "A").rcode is Rcode.NXDOMAIN
    assert names.resolve(HOST, "api.corp.local", "A").records
    cloud.set_health(arn, "task-1", healthy=False)
    assert {r.data for r in names.resolve(HOST, "api.corp.local", "A").records} == \
        {A("10.89.0.5")}
    assert cloud.deregister(arn, "task-2") and not cloud.deregister(arn, "task-2")
    # The one left is unhealthy: answered all the same (failing open).
    assert names.resolve(HOST, "api.corp.local", "A").records
    assert cloud.deregister(arn, "task-1")
    assert names.resolve(HOST, "api.corp.local", "A").rcode is Rcode.NXDOMAIN
    # What the store holds is what a new control (a restarted server) serves.
    cloud.register(arn, "task-3", "10.89.0.6")
    again = CloudMap(store, "us-east-1", lambda: ["vpc-a"])
    assert again.records_at(HOST, "api.corp.local")
    with pytest.raises(CloudMapError) as err:
        cloud.register("arn:aws:servicediscovery:us-east-1:000000000000:service/srv-no",
                       "t", "10.0.0.1")
    assert err.value.code == "ServiceNotFound"
    assert not cloud.deregister("srv-no", "t")
    store.close()
