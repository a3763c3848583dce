"""The services' nftables table as rendered (agent/serviceproxy.py), without root: what each
ClusterIP port becomes, affinity, hairpin, refusals, and what the renderer refuses."""

from __future__ import annotations

import pytest

from fargo.agent.serviceproxy import port_key, render
from fargo.port.errors import InvalidSpec
from fargo.port.services import Backend, ServicesSpec, VirtualPort

T = "fargo_fg_svc"


def web(*ips: str, affinity: int = 0, port: int = 80) -> VirtualPort:
    return VirtualPort("172.20.4.7", "tcp", port, [Backend(ip, 8080) for ip in ips],
                       affinity=affinity, name="default/web:http")


def test_empty_spec_only_removes_the_table():
    text = render(T, ServicesSpec(), "fgbr*")
    assert text.splitlines() == [f"table ip {T} {{}}", f"delete table ip {T}"]


def test_a_port_picks_its_ready_endpoints_at_random():
    vp = web("10.0.1.5", "10.0.1.4")
    text = render(T, ServicesSpec([vp]), "fgbr*")
    key = port_key(vp)
    assert text.startswith(f"table ip {T} {{}}\ndelete table ip {T}\n")  # one transaction
    assert f"172.20.4.7 . tcp . 80 : goto s_{key}" in text
    assert (f"numgen random mod 2 vmap {{ 0 : goto e_{key}_0, 1 : goto e_{key}_1 }}"
            in text)
    # endpoints in address order: the same store gives the same text (no needless re-apply)
    assert text.index("dnat to 10.0.1.4:8080") < text.index("dnat to 10.0.1.5:8080")
    assert text == render(T, ServicesSpec([web("10.0.1.4", "10.0.1.5")]), "fgbr*")
    assert '"default/web:http"' in text
    assert "10.0.1.4 . 10.0.1.4, 10.0.1.5 . 10.0.1.5" in text  # hairpin pairs
    assert 'iifname "fgbr*" ip daddr . meta l4proto . th dport vmap @svcs' in text
    assert "type nat hook output priority -100" in text
    assert "ip saddr . ip daddr @hairpin masquerade" in text
    assert "set a_" not in text  # no affinity asked


def test_one_endpoint_needs_no_choice():
    vp = web("10.0.1.5")
    text = render(T, ServicesSpec([vp]), "fgbr*")
    assert f"goto e_{port_key(vp)}_0" in text and "numgen" not in text


def test_client_ip_affinity_is_a_timed_set_per_endpoint():
    vp = web("10.0.1.4", "10.0.1.5", affinity=10800)
    key = port_key(vp)
    text = render(T, ServicesSpec([vp]), "fgbr*")
    for k in (0, 1):
        assert (f"set a_{key}_{k} {{ type ipv4_addr; flags dynamic,timeout; timeout 10800s; }}"
                in text)
        assert f"ip saddr @a_{key}_{k} goto e_{key}_{k}" in text
        assert f"update @a_{key}_{k} {{ ip saddr }}" in text
    # remembered clients are looked up before the random choice
    assert text.index(f"@a_{key}_1 goto") < text.index("numgen random")


def test_a_port_without_endpoints_is_refused_not_routed():
    empty = VirtualPort("172.20.9.9", "udp", 53, [])
    text = render(T, ServicesSpec([web("10.0.1.4"), empty]), "fgbr*")
    assert "172.20.9.9" in text.split("set vips")[1].split("}")[0]
    assert "172.20.9.9 . udp" not in text  # nothing to DNAT to
    forward = text.split("chain forward {")[1].split("}")[0]
    assert forward.index("ip daddr @vips reject") < forward.index("drop")
    assert "ip daddr @vips reject" in text.split("chain output_filter {")[1]


def test_ports_of_one_vip_and_protocols():
    spec = ServicesSpec([web("10.0.1.4", port=80), web("10.0.1.4", port=443),
                         VirtualPort("172.20.4.7", "udp", 80, [Backend("10.0.1.4", 5353)])])
    text = render(T, spec, "fgbr*")
    assert text.count("172.20.4.7 . tcp") == 2 and "172.20.4.7 . udp . 80" in text
    assert "meta l4proto udp dnat to 10.0.1.4:5353" in text


@pytest.mark.parametrize("bad", [
    VirtualPort("172.20.4.7; flush ruleset", "tcp", 80, []),
    VirtualPort("172.20.4.7", "icmp", 80, []),
    VirtualPort("172.20.4.7", "tcp", 0, []),
    VirtualPort("172.20.4.7", "tcp", 80, [Backend("10.0.1.4", 70000)]),
    VirtualPort("172.20.4.7", "tcp", 80, [Backend("10.0.1.4", 80)], affinity=-1),
    VirtualPort("172.20.4.7", "tcp", 80, [Backend("10.0.1.4", 80)], affinity=86401),
])
def test_what_cannot_reach_nft(bad):
    with pytest.raises(InvalidSpec):
        render(T, ServicesSpec([bad]), "fgbr*")


def test_a_port_twice_is_refused():
    with pytest.raises(InvalidSpec):
        render(T, ServicesSpec([web("10.0.1.4"), web("10.0.1.5")]), "fgbr*")


def test_comments_cannot_break_out():
    vp = VirtualPort("172.20.4.7", "tcp", 80, [Backend("10.0.1.4", 80)],
                     name='a"; flush ruleset; "\nb')
    text = render(T, ServicesSpec([vp]), "fgbr*")
    assert 'comment "a; flush ruleset; b";' in text


# ---- control/kubeproxy.py: the spec from upstream-shaped objects

def _svc(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": "172.20.4.7",
                     "clusterIPs": ["172.20.4.7"],
                     "ports": [{"name": "http", "port": 80, "targetPort": "web",
                                "protocol": "TCP"}], **spec}}


def _pod(name: str, uid: str, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "default", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def _slice(*eps: tuple[str, str, str, bool]) -> dict:
    return {"addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": name,
                                         "uid": uid}}
                          for name, uid, ip, ready in eps]}


def test_endpoints_are_the_slices_ready_pods_that_live():
    from fargo.control.kubeproxy import service_ports
    pods = {"default/a": _pod("a", "u1"), "default/b": _pod("b", "u2"),
            "default/c": _pod("c", "u3", deleting=True), "default/d": _pod("d", "other")}
    sl = _slice(("a", "u1", "10.0.1.4", True), ("b", "u2", "10.0.1.5", False),
                ("c", "u3", "10.0.1.6", True), ("d", "u4", "10.0.1.7", True),
                ("e", "u5", "10.0.1.8", True))
    [vp] = service_ports(_svc(), [sl], pods)
    # b not ready, c being deleted, d is another pod of that name now, e gone
    assert (vp.vip, vp.protocol, vp.port) == ("172.20.4.7", "tcp", 80)
    assert vp.backends == [Backend("10.0.1.4", 8080)] and vp.affinity == 0
    assert vp.name == "default/web:http"
    [vp] = service_ports(_svc(), [sl], pods, frozenset({"u1"}))  # a's task being stopped
    assert vp.backends == []


def test_affinity_headless_and_external_names():
    from fargo.control.kubeproxy import service_ports
    [vp] = service_ports(_svc(sessionAffinity="ClientIP"), [], {})
    assert vp.affinity == 10800 and vp.backends == []
    [vp] = service_ports(_svc(sessionAffinity="ClientIP", sessionAffinityConfig={
        "clientIP": {"timeoutSeconds": 30}}), [], {})
    assert vp.affinity == 30
    assert service_ports(_svc(clusterIP="None", clusterIPs=["None"]), [], {}) == []
    assert service_ports({"metadata": {"name": "x", "namespace": "default"},
                          "spec": {"type": "ExternalName", "externalName": "a.b"}}, [], {}) == []
