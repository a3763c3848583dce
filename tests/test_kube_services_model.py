"""Services, Endpoints and EndpointSlices without a server: the apiserver's defaults and
refusals (model/kubeservice.py), what the endpoints controller makes of pods
(model/endpoints.py), and the allocation and controllers over a real store in a temporary
directory (control/kubeservices.py, control/endpoints.py)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from fargo.control.endpoints import EndpointsController
from fargo.control.kubeservices import KubeDnsService, ServiceWrites
from fargo.control.kubestate import KubeState
from fargo.control.objects import DeleteOptions, Objects
from fargo.model import endpoints as epm
from fargo.model import kubeobj
from fargo.model import kubeservice as ksvc
from fargo.model.kubeerrors import KubeError
from fargo.store.kube import KubeTables
from fargo.store.sqlite import Store


def service(name: str = "web", **spec) -> dict:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def defaulted(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    ksvc.default_service(obj)
    return obj


def refusal(obj: dict, old: dict | None = None) -> str:
    with pytest.raises(KubeError) as err:
        ksvc.check_service(defaulted(obj), old)
    assert err.value.code == 422
    return err.value.message


# ---- defaults

def test_defaults_of_a_clusterip_service():
    spec = defaulted(service(selector={"app": "web"}))["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert "sessionAffinityConfig" not in spec
    assert defaulted(service())["status"] == {"loadBalancer": {}}


def test_defaults_of_affinity_loadbalancer_and_headless():
    spec = defaulted(service(sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    lb = defaulted(service(type="LoadBalancer"))["spec"]
    assert lb["externalTrafficPolicy"] == "Cluster" and lb["allocateLoadBalancerNodePorts"]
    # Headless with a selector: one family; without one: both, as upstream records it.
    with_sel = defaulted(service(clusterIP="None", selector={"a": "b"}))["spec"]
    assert with_sel["ipFamilyPolicy"] == "SingleStack" and with_sel["clusterIPs"] == ["None"]
    bare = defaulted(service(clusterIP="None"))["spec"]
    assert bare["ipFamilyPolicy"] == "RequireDualStack"
    assert bare["ipFamilies"] == ["IPv4", "IPv6"]
    ksvc.check_service(defaulted(service(clusterIP="None")), None)
    ext = defaulted(service(type="ExternalName", externalName="example.com", ports=[]))["spec"]
    assert "ipFamilies" not in ext and "clusterIP" not in ext


# ---- refusals, as the apiserver words them

@pytest.mark.parametrize("spec, want", [
    ({"ports": [{"port": 0}]},
     "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 70000}]},
     "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 80, "protocol": "ICMP"}]},
     'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", '
     '"UDP"'),
    ({"ports": [{"name": "a", "port": 80}, {"port": 81}]}, "spec.ports[1].name: Required value"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
     'spec.ports[1].name: Duplicate value: "a"'),
    ({"ports": [{"name": "Web", "port": 80}]},
     'spec.ports[0].name: Invalid value: "Web": a lowercase RFC 1123 label'),
    ({"ports": [{"port": 80, "targetPort": "http-web-server-x"}]},
     'spec.ports[0].targetPort: Invalid value: "http-web-server-x": must be no more than 15 '
     "characters"),
    ({"ports": [{"port": 80, "targetPort": "8080"}]},
     'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter'),
    ({"ports": [{"port": 80, "targetPort": 0}, {"name": "b", "port": 80}]},
     "spec.ports[0].name: Required value"),
    ({"ports": []}, "spec.ports: Required value"),
    ({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
     'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
     'AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, '
     'StrVal:""}, NodePort:0}'),
    ({"type": "Bogus"}, 'spec.type: Unsupported value: "Bogus": supported values: '
                        '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ({"type": "NodePort"}, "spec.type: Forbidden: NodePort Services are not supported on "
                           "Fargate"),
    ({"sessionAffinity": "Sticky"}, 'spec.sessionAffinity: Unsupported value: "Sticky"'),
    ({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {
        "timeoutSeconds": 86401}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be "
     "greater than 0 and less than 86400"),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}},
     "spec.sessionAffinityConfig: Invalid value"),
    ({"clusterIP": "abc"}, 'spec.clusterIPs[0]: Invalid value: "abc": must be a valid IP '
                           "address"),
    ({"clusterIP": "172.20.0.5", "clusterIPs": ["172.20.0.6"]},
     "spec.clusterIPs: Invalid value: []string{\"172.20.0.6\"}: first value must match"),
    ({"type": "LoadBalancer", "clusterIP": "None"},
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for "
     "LoadBalancer services"),
    ({"type": "ExternalName", "ports": []}, "spec.externalName: Required value"),
    ({"type": "ExternalName", "externalName": "Not_A_Name", "ports": []},
     'spec.externalName: Invalid value: "Not_A_Name": a lowercase RFC 1123 subdomain'),
    ({"type": "ExternalName", "externalName": "x.example", "clusterIP": "172.20.1.1"},
     "spec.clusterIP: Forbidden: may not be set for ExternalName services"),
    ({"ipFamilies": ["IPv6"]}, 'spec.ipFamilies[0]: Invalid value: "IPv6": not configured '
                               "on this cluster"),
    ({"ipFamilyPolicy": "RequireDualStack"},
     'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured '
     "for dual-stack services"),
    ({"selector": {"app": "bad value!"}}, "spec.selector"),
    ({"externalIPs": ["1.2.3.4"]}, "spec.externalIPs: Forbidden"),
    ({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/33"]},
     'spec.loadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/33": must be a CIDR'),
    ({"trafficDistribution": "Anywhere"},
     'spec.trafficDistribution: Unsupported value: "Anywhere": supported values: '
     '"PreferClose"'),
    ({"ports": [{"port": 80, "nodePort": 30001}]},
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
])
def test_refusals(spec, want):
    message = refusal(service(**spec))
    assert want in message, message
    assert message.startswith('Service "web" is invalid: ')


def test_a_service_name_is_a_dns1035_label():
    assert 'metadata.name: Invalid value: "9lives": a DNS-1035 label' in \
        refusal(service("9lives"))


def test_cluster_ip_is_immutable_and_kept_when_left_out():
    old = defaulted(service(clusterIP="172.20.1.1"))
    new = defaulted(service(clusterIP="172.20.1.2"))
    assert 'spec.clusterIPs[0]: Invalid value: []string{"172.20.1.2"}: may not change once ' \
        "set" in refusal(new, old)
    bare = service()
    ksvc.patch_allocated(bare, old)
    assert bare["spec"]["clusterIP"] == "172.20.1.1"
    ksvc.check_service(defaulted(bare), old)


def test_type_changes_shed_what_the_new_type_may_not_keep():
    lb = defaulted(service(type="LoadBalancer", clusterIP="172.20.1.1",
                           ports=[{"port": 80, "nodePort": 30080}]))
    to_ip = copy.deepcopy(lb)
    to_ip["spec"]["type"] = "ClusterIP"
    ksvc.dropped_for_type(to_ip, lb)
    ksvc.check_service(defaulted(to_ip), lb)
    assert "nodePort" not in to_ip["spec"]["ports"][0]
    assert "allocateLoadBalancerNodePorts" not in to_ip["spec"]
    assert "externalTrafficPolicy" not in to_ip["spec"]
    to_ext = copy.deepcopy(to_ip)
    to_ext["spec"].update(type="ExternalName", externalName="db.example.com")
    ksvc.dropped_for_type(to_ext, to_ip)
    ksvc.check_service(defaulted(to_ext), to_ip)
    assert "clusterIP" not in to_ext["spec"] and "ipFamilies" not in to_ext["spec"]


def test_cells():
    lb = defaulted(service(type="LoadBalancer", ports=[{"port": 80, "nodePort": 31000},
                                                      {"name": "u", "port": 53,
                                                       "protocol": "UDP"}]))
    assert ksvc.ports_cell(lb) == "80:31000/TCP,53/UDP"
    assert ksvc.external_ip_cell(lb) == "<pending>"
    lb["status"] = {"loadBalancer": {"ingress": [{"hostname": "k8s-x.elb.amazonaws.com"}]}}
    assert ksvc.external_ip_cell(lb) == "k8s-x.elb.amazonaws.com"
    assert ksvc.selector_cell(service(selector={"b": "2", "a": "1"})) == "a=1,b=2"


def test_service_link_variables():
    web = defaulted(service("my-web", clusterIP="172.20.1.1",
                            ports=[{"name": "http", "port": 80},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}]))
    headless = defaulted(service("h", clusterIP="None"))
    ext = defaulted(service("x", type="ExternalName", externalName="a.example", ports=[]))
    env = ksvc.link_env([web, headless, ext])
    assert env == {
        "MY_WEB_SERVICE_HOST": "172.20.1.1", "MY_WEB_SERVICE_PORT": "80",
        "MY_WEB_SERVICE_PORT_HTTP": "80", "MY_WEB_SERVICE_PORT_DNS": "53",
        "MY_WEB_PORT": "tcp://172.20.1.1:80",
        "MY_WEB_PORT_80_TCP": "tcp://172.20.1.1:80", "MY_WEB_PORT_80_TCP_PROTO": "tcp",
        "MY_WEB_PORT_80_TCP_PORT": "80", "MY_WEB_PORT_80_TCP_ADDR": "172.20.1.1",
        "MY_WEB_PORT_53_UDP": "udp://172.20.1.1:53", "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53", "MY_WEB_PORT_53_UDP_ADDR": "172.20.1.1"}


# ---- endpoints from pods

def pod(name: str, ip: str | None = "10.0.1.5", ready: bool = True, deleting: bool = False,
        ports: list | None = None, phase: str = "Running") -> dict:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}",
            "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Ready",
                                              "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": meta, "spec": {"nodeName": f"fargate-{name}", "containers": [
        {"name": "app", "ports": ports or []}]}, "status": status}


def test_conditions_of_ready_not_ready_and_terminating_pods():
    svc = defaulted(service(selector={"app": "web"}))
    svc["metadata"]["uid"] = "svc-uid"
    eps = epm.endpoints_of(svc, [pod("a"), pod("b", "10.0.1.6", ready=False),
                                 pod("c", "10.0.1.7", deleting=True), pod("d", None),
                                 pod("e", "10.0.1.9", phase="Succeeded")])
    conds = {e.pod["metadata"]["name"]: e.cond for e in eps}
    assert conds == {"a": {"ready": True, "serving": True, "terminating": False},
                     "b": {"ready": False, "serving": False, "terminating": False},
                     "c": {"ready": False, "serving": True, "terminating": True}}
    (sl,) = epm.slices_for(svc, eps, {"fargate-a": "us-east-1a"})
    assert sl["metadata"]["labels"] == {epm.SERVICE_NAME: "web", epm.MANAGED_BY: epm.CONTROLLER}
    assert sl["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert sl["endpoints"][0]["zone"] == "us-east-1a"
    assert [e["addresses"] for e in sl["endpoints"]] == [["10.0.1.5"], ["10.0.1.6"],
                                                         ["10.0.1.7"]]
    ep = epm.endpoints_object(svc, eps)
    (subset,) = ep["subsets"]
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.1.5"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.0.1.6"]  # c: terminating
    # publishNotReadyAddresses: everyone is ready.
    svc["spec"]["publishNotReadyAddresses"] = True
    assert all(e.cond["ready"] for e in epm.endpoints_of(svc, [pod("b", ready=False)]))


def test_named_target_ports_resolve_per_pod():
    svc = defaulted(service(selector={"app": "web"},
                            ports=[{"name": "http", "port": 80, "targetPort": "web"}]))
    svc["metadata"]["uid"] = "u"
    eps = epm.endpoints_of(svc, [
        pod("a", "10.0.1.5", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "10.0.1.6", ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", "10.0.1.7")])  # no port of that name: in no slice's ports
    slices = epm.slices_for(svc, eps, {})
    by_port = {tuple(p["port"] for p in s["ports"] or []): [e["addresses"][0]
                                                             for e in s["endpoints"]]
               for s in slices}
    assert by_port == {(8080,): ["10.0.1.5"], (9090,): ["10.0.1.6"], (): ["10.0.1.7"]}
    assert len({s["metadata"]["name"] for s in slices}) == 3
    ep = epm.endpoints_object(svc, eps)
    assert sorted(s["ports"][0]["port"] for s in ep["subsets"]) == [8080, 9090]


def test_app_protocol_and_unnamed_ports():
    svc = defaulted(service(selector={"app": "web"},
                            ports=[{"port": 80, "appProtocol": "http"}]))
    svc["metadata"]["uid"] = "u"
    eps = epm.endpoints_of(svc, [pod("a")])
    (sl,) = epm.slices_for(svc, eps, {})
    assert sl["ports"] == [{"name": "", "port": 80, "protocol": "TCP", "appProtocol": "http"}]
    assert epm.endpoints_object(svc, eps)["subsets"][0]["ports"] == [
        {"port": 80, "protocol": "TCP", "appProtocol": "http"}]


def test_hostnames_of_pods_under_their_subdomain():
    svc = defaulted(service(clusterIP="None", selector={"app": "web"}))
    svc["metadata"]["uid"] = "u"
    named, other = pod("a"), pod("b", "10.0.1.6")
    named["spec"].update(hostname="db-0", subdomain="web")
    other["spec"].update(hostname="db-1", subdomain="elsewhere")
    eps = epm.endpoints_of(svc, [named, other])
    (sl,) = epm.slices_for(svc, eps, {})
    assert [e.get("hostname") for e in sl["endpoints"]] == ["db-0", None]
    assert sl["metadata"]["labels"][epm.HEADLESS_LABEL] == ""
    addrs = epm.endpoints_object(svc, eps)["subsets"][0]["addresses"]
    assert [a.get("hostname") for a in addrs] == ["db-0", None]


def test_no_endpoints_is_one_placeholder_slice():
    svc = defaulted(service(selector={"app": "web"}))
    svc["metadata"]["uid"] = "u"
    (sl,) = epm.slices_for(svc, [], {})
    assert sl["endpoints"] == [] and sl["ports"] is None
    assert "subsets" not in epm.endpoints_object(svc, [])


# ---- allocation and the controllers over a real store

@pytest.fixture
def state(tmp_path):
    store = Store(tmp_path / "s.db")
    st = KubeState(KubeTables(store))
    for cluster in ("one", "two"):
        store.execute("INSERT INTO eks_clusters VALUES (?,?)", (cluster, json.dumps({
            "name": cluster, "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}})))
        for ns in ("default", "kube-system"):
            st.add_namespace(cluster, kubeobj.namespace(ns))
    return st


def test_allocation_is_unique_across_clusters_but_the_dns_address(state):
    writes = ServiceWrites(state, Objects(state), random.Random(7))
    for cluster in ("one", "two"):
        KubeDnsService(writes).reconcile(cluster)
        dns = state.get(cluster, "services", "kube-system", "kube-dns")
        assert dns["spec"]["clusterIP"] == "172.20.0.10"
    made = writes.create("one", "default", service("a"))
    ip = made["spec"]["clusterIP"]
    assert made["spec"]["clusterIPs"] == [ip]
    assert ip != "172.20.0.10" and not ip.startswith("172.20.0.")  # above the static band
    with pytest.raises(KubeError) as err:
        writes.create("two", "default", service("b", clusterIP=ip))
    assert err.value.message == (f'Service "b" is invalid: spec.clusterIPs: Invalid value: '
                                 f'[]string{{"{ip}"}}: failed to allocate IP {ip}: provided IP '
                                 "is already allocated")
    with pytest.raises(KubeError) as err:
        writes.create("two", "default", service("b", clusterIP="172.20.0.10"))
    assert "provided IP is already allocated" in err.value.message
    with pytest.raises(KubeError) as err:  # default/kubernetes' address, held for it
        writes.create("two", "default", service("b", clusterIP="172.20.0.1"))
    assert "provided IP is already allocated" in err.value.message
    with pytest.raises(KubeError) as err:
        writes.create("two", "default", service("b", clusterIP="10.1.2.3"))
    assert "provided IP is not in the valid range. The range of valid IPs is 172.20.0.0/16" \
        in err.value.message
    # A dry run allocates nothing; a refused create holds nothing.
    dry = writes.create("two", "default", service("c", clusterIP="172.20.0.99"), dry_run=True)
    assert dry["spec"]["clusterIP"] == "172.20.0.99"
    writes.create("two", "default", service("c", clusterIP="172.20.0.99"))
    # Deleted, its address is free again (the objects are the record).
    writes.delete("one", "default", "a", DeleteOptions())
    assert writes.create("two", "default", service("d", clusterIP=ip))["spec"]["clusterIP"] == ip


def test_node_ports_and_their_refusals(state):
    writes = ServiceWrites(state, Objects(state), random.Random(3))
    lb = writes.create("one", "default", service(
        "lb", type="LoadBalancer", ports=[{"name": "t", "port": 53, "protocol": "TCP"},
                                          {"name": "u", "port": 53, "protocol": "UDP"},
                                          {"name": "h", "port": 80}]))
    ports = lb["spec"]["ports"]
    assert ports[0]["nodePort"] == ports[1]["nodePort"] != ports[2]["nodePort"]
    assert all(30000 <= p["nodePort"] <= 32767 for p in ports)
    taken = ports[2]["nodePort"]
    with pytest.raises(KubeError) as err:
        writes.create("one", "default", service("lb2", type="LoadBalancer",
                                                ports=[{"port": 80, "nodePort": taken}]))
    assert f"spec.ports[0].nodePort: Invalid value: {taken}: provided port is already " \
        "allocated" in err.value.message
    with pytest.raises(KubeError) as err:
        writes.create("one", "default", service("lb2", type="LoadBalancer",
                                                ports=[{"port": 80, "nodePort": 8080}]))
    assert "provided port is not in the valid range. The range of valid ports is 30000-32767" \
        in err.value.message
    # Another cluster's nodes are its own.
    writes.create("two", "default", service("lb2", type="LoadBalancer",
                                            ports=[{"port": 80, "nodePort": taken}]))
    # A replace that leaves them out keeps them; no allocation without the flag.
    again = writes.replace("one", "default", "lb", service(
        "lb", type="LoadBalancer", ports=[{"name": "t", "port": 53, "protocol": "TCP"},
                                          {"name": "u", "port": 53, "protocol": "UDP"},
                                          {"name": "h", "port": 80}]))
    assert [p["nodePort"] for p in again["spec"]["ports"]] == [p["nodePort"] for p in ports]
    assert again["spec"]["clusterIP"] == lb["spec"]["clusterIP"]
    none = writes.create("one", "default", service("lb3", type="LoadBalancer",
                                                   allocateLoadBalancerNodePorts=False))
    assert "nodePort" not in none["spec"]["ports"][0]
    local = writes.create("one", "default", service("lb4", type="LoadBalancer",
                                                    externalTrafficPolicy="Local"))
    assert 30000 <= local["spec"]["healthCheckNodePort"] <= 32767


def test_endpoints_controller_level_triggered(state):
    objects = Objects(state)
    writes = ServiceWrites(state, objects)
    ctl = EndpointsController(state, objects)
    svc = writes.create("one", "default", service(selector={"app": "web"}))
    state.create("one", "pods", "default", pod("a"))
    ctl.reconcile("one")
    (sl,) = state.list("one", "endpointslices", "default")
    assert sl["endpoints"][0]["addresses"] == ["10.0.1.5"]
    rv = sl["metadata"]["resourceVersion"]
    ctl.reconcile("one")  # nothing changed: nothing written
    assert state.list("one", "endpointslices", "default")[0]["metadata"]["resourceVersion"] == rv
    # The pod starts terminating: not ready at once.
    p = state.get("one", "pods", "default", "a")
    p["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z",
                         deletionGracePeriodSeconds=30)
    state.update("one", "pods", "default", p)
    ctl.reconcile("one")
    (sl,) = state.list("one", "endpointslices", "default")
    assert sl["endpoints"][0]["conditions"] == {"ready": False, "serving": True,
                                                "terminating": True}
    ep = state.get("one", "endpoints", "default", "web")
    assert "subsets" not in ep
    # Selector removed: the managed objects go, a user's Endpoints would stay.
    new = copy.deepcopy(svc)
    del new["spec"]["selector"]
    writes.replace("one", "default", "web", new)
    ctl.reconcile("one")
    assert state.list("one", "endpointslices", "default") == []
    assert state.list("one", "endpoints", "default") == []
    state.create("one", "endpoints", "default", {"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]})
    ctl.reconcile("one")
    assert state.find("one", "endpoints", "default", "web") is not None
