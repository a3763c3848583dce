"""NetworkPolicy and SecurityGroupPolicy rules without a server: the apiserver's checks and
defaults, what policies mean per pod, the nft text the agent renders, and which policy gives
a pod its security groups."""

from __future__ import annotations

from typing import Any

import pytest

from fargo.agent.netnames import Names
from fargo.agent.netpolicy import render
from fargo.model import kubekinds, kubeschema, sgpolicy
from fargo.model import netpolicy as npm
from fargo.model.kubeerrors import KubeError
from fargo.model.netpolicy import Allow, PodView
from fargo.port.firewall import PolicySpec


def _np(spec: dict[str, Any], name: str = "p", ns: str = "a") -> dict[str, Any]:
    obj = {"metadata": {"name": name, "namespace": ns}, "spec": spec}
    npm.default_netpolicy(obj)
    return obj


def _refusal(spec: Any) -> str:
    with pytest.raises(KubeError) as err:
        npm.check_netpolicy({"metadata": {"name": "p"}, "spec": spec}, None)
    assert err.value.code == 422
    return err.value.message


def test_the_kinds_are_registered() -> None:
    rule = kubekinds.rule("networkpolicies")
    assert (rule.group, rule.version, rule.kind) == ("networking.k8s.io", "v1", "NetworkPolicy")
    sgp = kubekinds.rule("securitygrouppolicies")
    assert sgp.api_version == "vpcresources.k8s.aws/v1beta1"
    assert kubeschema.kind_schema("vpcresources.k8s.aws", "v1beta1", "SecurityGroupPolicy")


def test_refusals_in_the_apiservers_words() -> None:
    assert _refusal({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}).endswith(
        'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: '
        '"SCTP", "TCP", "UDP"')
    assert "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, " \
        "inclusive" in _refusal({"ingress": [{"ports": [{"port": 0}]}]})
    assert "spec.egress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal " \
        "to `port`" in _refusal({"egress": [{"ports": [{"port": 80, "endPort": 70}]}]})
    assert "may not be specified when `port` is non-numeric" in _refusal(
        {"egress": [{"ports": [{"port": "http", "endPort": 90}]}]})
    assert "may not be specified when `port` is not specified" in _refusal(
        {"egress": [{"ports": [{"endPort": 90}]}]})
    assert "spec.ingress[0].from[0]: Required value: must specify a peer" in _refusal(
        {"ingress": [{"from": [{}]}]})
    assert "Forbidden: may not specify both ipBlock and another peer" in _refusal(
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]})
    assert 'spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be ' \
        "a strict subset of `cidr`" in _refusal(
            {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                "except": ["10.0.0.0/8"]}}]}]})
    assert 'ipBlock.cidr: Invalid value: "10.0.0.1": must be a valid CIDR value' in _refusal(
        {"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.1"}}]}]})
    assert 'spec.policyTypes[0]: Unsupported value: "Both"' in _refusal({"policyTypes": ["Both"]})
    assert "may not specify more than two policyTypes" in _refusal(
        {"policyTypes": ["Ingress", "Egress", "Ingress"]})
    assert "spec.podSelector.matchExpressions[0].operator" in _refusal(
        {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}})
    npm.check_netpolicy(_np({"ingress": [{"ports": [{"port": "http"}, {"port": 80,
                                                                        "endPort": 90}]}]}), None)


def test_defaults() -> None:
    obj = _np({"egress": [{"ports": [{"port": 53}]}]})
    assert obj["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                           "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}]}
    assert _np({})["spec"]["policyTypes"] == ["Ingress"]
    assert _np({"policyTypes": ["Egress"]})["spec"]["policyTypes"] == ["Egress"]


PODS = [PodView("a", "web", "10.0.1.10", {"app": "web"}, {"http": ("tcp", 8080)}),
        PodView("a", "client", "10.0.1.11", {"app": "client"}),
        PodView("b", "other", "10.0.1.12", {"app": "client"}, {"http": ("tcp", 9090)}),
        PodView("c", "third", "10.0.1.13", {"app": "db"})]
NAMESPACES = {"a": {}, "b": {"team": "blue"}, "c": {"team": "red"}}


def _rules(*policies: dict[str, Any]) -> npm.PodRules:
    return npm.pod_rules(list(policies), PODS, NAMESPACES)


def test_unselected_pods_are_unrestricted_and_default_deny_isolates() -> None:
    assert _rules().ingress == {} and _rules().egress == {}
    deny = _rules(_np({"podSelector": {"matchLabels": {"app": "web"}}}))
    assert deny.ingress == {"10.0.1.10": []} and deny.egress == {}
    every = _rules(_np({"policyTypes": ["Ingress", "Egress"]}))
    assert set(every.ingress) == set(every.egress) == {"10.0.1.10", "10.0.1.11"}
    allow_all = _rules(_np({"ingress": [{}]}))
    assert allow_all.ingress["10.0.1.10"] == [Allow()]


def test_peers_by_pod_namespace_both_and_ip_block() -> None:
    web = {"matchLabels": {"app": "web"}}
    by_pod = _rules(_np({"podSelector": web, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}))
    assert by_pod.ingress["10.0.1.10"] == [Allow(("10.0.1.11",))]  # its namespace only
    by_ns = _rules(_np({"podSelector": web, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "blue"}}}]}]}))
    assert by_ns.ingress["10.0.1.10"] == [Allow(("10.0.1.12",))]
    by_name = _rules(_np({"podSelector": web, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "c"}}}]}]}))
    assert by_name.ingress["10.0.1.10"] == [Allow(("10.0.1.13",))]
    both = _rules(_np({"podSelector": web, "ingress": [{"from": [{
        "namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "client"}}}]}]}))
    assert both.ingress["10.0.1.10"] == [Allow(("10.0.1.11", "10.0.1.12"))]
    nobody = _rules(_np({"podSelector": web, "ingress": [
        {"from": [{"podSelector": {"matchLabels": {"app": "none"}}}]}]}))
    assert nobody.ingress["10.0.1.10"] == []  # a selector of no pod admits nobody
    block = _rules(_np({"podSelector": web, "ingress": [{"from": [{"ipBlock": {
        "cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}]}]}))
    assert block.ingress["10.0.1.10"] == [Allow(("10.0.0.0/16",), ("10.0.1.0/24",))]


def test_ports_numbers_ranges_and_named_ports_per_pod() -> None:
    ports = [{"port": "http"}, {"port": 80, "endPort": 90, "protocol": "UDP"},
             {"protocol": "SCTP"}]
    r = _rules(_np({"podSelector": {}, "ingress": [{"ports": ports}]}))
    assert r.ingress["10.0.1.10"] == [Allow(None, (), "tcp", 8080, 8080),
                                      Allow(None, (), "udp", 80, 90), Allow(None, (), "sctp")]
    # The client names no port "http": that entry allows it nothing.
    assert r.ingress["10.0.1.11"] == [Allow(None, (), "udp", 80, 90), Allow(None, (), "sctp")]
    # Egress to a named port: the destination pod's number, pod by pod.
    out = _rules(_np({"podSelector": {"matchLabels": {"app": "client"}},
                      "policyTypes": ["Egress"],
                      "egress": [{"to": [{"namespaceSelector": {}}],
                                  "ports": [{"port": "http", "protocol": "TCP"}]}]}))
    assert out.egress["10.0.1.11"] == [Allow(("10.0.1.10",), (), "tcp", 8080, 8080),
                                       Allow(("10.0.1.12",), (), "tcp", 9090, 9090)]


def test_policies_add_up() -> None:
    r = _rules(_np({"podSelector": {}}, "deny"),
               _np({"ingress": [{"ports": [{"port": 80}]}]}, "web"))
    assert r.ingress["10.0.1.10"] == [Allow(None, (), "tcp", 80, 80)]


def test_pod_view() -> None:
    pod = {"metadata": {"namespace": "a", "name": "x", "labels": {"k": "v"}},
           "spec": {"containers": [{"name": "c", "ports": [{"name": "web",
                                                             "containerPort": 80}]}]},
           "status": {"phase": "Pending", "hostIP": "10.0.1.5"}, "_fargo": {"task": "t"}}
    assert npm.pod_view(pod) == PodView("a", "x", "10.0.1.5", {"k": "v"}, {"web": ("tcp", 80)})
    assert npm.pod_view({**pod, "status": {"phase": "Succeeded", "podIP": "10.0.1.5"}}) is None
    assert npm.pod_view({**pod, "_fargo": {}, "status": {"phase": "Pending"}}) is None


def test_render() -> None:
    spec = PolicySpec(subnets=["subnet-1"],
                      ingress={"10.0.1.10": [Allow(("10.0.1.11", "10.0.1.0/25")),
                                             Allow(None, (), "tcp", 80, 90)],
                               "10.0.1.12": []},
                      egress={"10.0.1.11": [Allow(("0.0.0.0/0",), ("10.0.0.0/8",), "udp", 53,
                                                  53)]})
    text = render("fargo_t_np", spec, Names("t"))
    assert text.startswith("table inet fargo_t_np {}\ndelete table inet fargo_t_np\n")
    assert "10.0.1.10 : jump in_0, 10.0.1.12 : jump in_1" in text
    assert "    ip saddr { 10.0.1.0/25 } accept\n" in text  # overlaps merged
    assert "    meta l4proto tcp th dport 80-90 accept\n    drop\n" in text
    assert "  chain in_1 {\n    drop\n  }" in text
    assert ("ip daddr { 0.0.0.0/0 } ip daddr != { 10.0.0.0/8 } meta l4proto udp th dport 53 "
            "return") in text
    assert "priority filter + 10" in text and "ct state established,related accept" in text
    # Replicas with the same allows share one chain.
    same = PolicySpec(subnets=[], ingress={ip: [Allow(None, (), "tcp", 80, 80)]
                                           for ip in ("10.0.1.3", "10.0.1.2", "10.0.1.20")})
    text = render("fargo_t_np", same, Names("t"))
    assert "10.0.1.2 : jump in_0, 10.0.1.3 : jump in_0, 10.0.1.20 : jump in_0" in text
    assert text.count("chain in_") == 1 and "set bridges { type ifname; }" in text


def _sgp(name: str, spec: dict[str, Any], ns: str = "a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def test_security_group_policies() -> None:
    pod = {"metadata": {"namespace": "a", "name": "x", "labels": {"role": "db"}},
           "spec": {"serviceAccountName": "db-sa"}}
    sas = [{"metadata": {"namespace": "a", "name": "db-sa", "labels": {"tier": "data"}}}]
    ids = {"securityGroups": {"groupIds": ["sg-1", "sg-2"]}}
    assert sgpolicy.groups_for(pod, [_sgp("p", {"podSelector": {"matchLabels": {
        "role": "db"}}, **ids})], sas) == ["sg-1", "sg-2"]
    assert sgpolicy.groups_for(pod, [_sgp("p", {"serviceAccountSelector": {"matchLabels": {
        "tier": "data"}}, **ids})], sas) == ["sg-1", "sg-2"]
    assert sgpolicy.groups_for(pod, [_sgp("p", {"podSelector": {}, "serviceAccountSelector": {
        "matchLabels": {"tier": "web"}}, **ids})], sas) == []  # both must match
    assert sgpolicy.groups_for(pod, [_sgp("p", ids)], sas) == []  # no selector: nothing
    assert sgpolicy.groups_for(pod, [_sgp("p", {"podSelector": {}, **ids}, ns="b")], sas) == []
    with pytest.raises(KubeError) as err:
        sgpolicy.check_sgpolicy(_sgp("p", {"securityGroups": {"groupIds": []}}), None)
    assert err.value.message == ('SecurityGroupPolicy.vpcresources.k8s.aws "p" is invalid: '
                                 "spec.securityGroups.groupIds: Invalid value: 0: "
                                 "spec.securityGroups.groupIds in body should have at least 1 "
                                 "items")
    with pytest.raises(KubeError):
        sgpolicy.check_sgpolicy(_sgp("p", {"podSelector": {"matchExpressions": [
            {"key": "a", "operator": "Exists", "values": ["x"]}]}}), None)
