"""Security-group rules (model/secgroups.py), form parsing and the nftables rendering, no I/O."""

from __future__ import annotations

import pytest

from fargo.agent.firewall import member_update, render, set_name
from fargo.agent.netnames import Names
from fargo.api.ec2forms import permissions
from fargo.api.ec2query import params
from fargo.control.network import new_id
from fargo.model import secgroups as sg
from fargo.model.errors import ApiError
from fargo.model.vpc import block, subnet_block
from fargo.port.errors import InvalidSpec
from fargo.port.firewall import FirewallSpec, GroupRules


def _same_vpc(pair: dict) -> str:
    return pair["GroupId"]


def rules(*perms: dict, egress: bool = False) -> list[sg.Rule]:
    return sg.parse_permissions(list(perms), egress, _same_vpc)


def test_permissions_split_into_rules_and_back():
    got = rules({"IpProtocol": "TCP", "FromPort": "80", "ToPort": "443",
                 "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "office"}],
                 "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
                {"IpProtocol": "6", "FromPort": 80, "ToPort": 443,
                 "IpRanges": [{"CidrIp": "192.168.0.0/16"}]})
    assert [(r.protocol, r.from_port, r.to_port, r.cidr, r.group) for r in got] == [
        ("tcp", 80, 443, "10.0.0.0/8", None), ("tcp", 80, 443, None, "sg-1"),
        ("tcp", 80, 443, "192.168.0.0/16", None)]
    (perm,) = sg.to_permissions(got)
    assert perm["IpRanges"] == [{"CidrIp": "10.0.0.0/8", "Description": "office"},
                                {"CidrIp": "192.168.0.0/16"}]
    assert perm["UserIdGroupPairs"][0]["GroupId"] == "sg-1"
    assert (perm["FromPort"], perm["ToPort"]) == (80, 443)


@pytest.mark.parametrize("perm,code", [
    ({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 65536}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": -1, "ToPort": 80}, "InvalidParameterValue"),
    ({"IpProtocol": "udp", "FromPort": 9, "ToPort": 8}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": 80}, "InvalidParameterValue"),
    ({"IpProtocol": "tcp", "FromPort": "eighty", "ToPort": 80}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": 300, "ToPort": -1}, "InvalidParameterValue"),
    ({"IpProtocol": "gre"}, "InvalidParameterValue"),
    ({"IpProtocol": "256"}, "InvalidParameterValue"),
    ({"FromPort": 1, "ToPort": 2}, "MissingParameter"),
])
def test_bad_protocols_and_ports(perm, code):
    with pytest.raises(ApiError) as exc:
        rules(dict(perm, IpRanges=[{"CidrIp": "10.0.0.0/8"}]))
    assert exc.value.code == code


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "10.0.0.1/8", "banana", "10.0.0.1", "::/0",
                                  "10.0.0.0/8\x00", "1" * 10000])
def test_bad_cidrs(cidr):
    with pytest.raises(ApiError) as exc:
        rules({"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]})
    assert exc.value.code == "InvalidParameterValue"


def test_all_protocols_ignore_ports_and_icmp_defaults():
    (r,) = rules({"IpProtocol": "-1", "FromPort": 5, "ToPort": 9,
                  "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})
    assert (r.from_port, r.to_port) == (None, None)
    (r,) = rules({"IpProtocol": "icmp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})
    assert (r.from_port, r.to_port) == (-1, -1)
    (r,) = rules({"IpProtocol": "47", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]})
    assert r.protocol == "47"


def test_rules_need_a_peer():
    with pytest.raises(ApiError) as exc:
        rules({"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2})
    assert exc.value.code == "MissingParameter"


def test_add_and_remove_are_all_or_nothing():
    base = sg.default_rules("sg-1", True, new_id)
    assert [(r.egress, r.group, r.cidr) for r in base] == [(False, "sg-1", None),
                                                          (True, None, "0.0.0.0/0")]
    new = rules({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    after, added = sg.add_rules(base, new, new_id)
    assert len(after) == 3 and added[0].rule_id.startswith("sgr-")
    with pytest.raises(ApiError) as exc:
        sg.add_rules(after, rules({"IpProtocol": "udp", "FromPort": 1, "ToPort": 1,
                                   "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}) + new, new_id)
    assert exc.value.code == "InvalidPermission.Duplicate"
    with pytest.raises(ApiError) as exc:  # the same rule twice in one request
        sg.add_rules(base, new + new, new_id)
    assert exc.value.code == "InvalidPermission.Duplicate"
    # A description does not make a different rule; revoking finds it without one.
    described = rules({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                       "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "x"}]})
    with pytest.raises(ApiError):
        sg.add_rules(after, described, new_id)
    kept, removed = sg.remove_rules(after, new)
    assert kept == base and removed == added
    with pytest.raises(ApiError) as exc:
        sg.remove_rules(base, new)
    assert exc.value.code == "InvalidPermission.NotFound"
    # Egress and ingress are different rules.
    assert sg.add_rules(after, rules({"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                                      "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}, egress=True),
                        new_id)


def test_rule_limit():
    many = [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p,
             "IpRanges": [{"CidrIp": "10.0.0.0/8"}]} for p in range(1, sg.MAX_RULES + 2)]
    with pytest.raises(ApiError) as exc:
        sg.add_rules([], rules(*many), new_id)
    assert exc.value.code == "RulesPerSecurityGroupLimitExceeded"


@pytest.mark.parametrize("name,code", [
    ("", "MissingParameter"), (None, "MissingParameter"), ("x" * 256, "InvalidParameterValue"),
    ("nul\x00", "InvalidParameterValue"), ("tab\there", "InvalidParameterValue"),
    ("sg-web", "InvalidParameterValue"), ("default", "InvalidGroup.Reserved"),
])
def test_group_names(name, code):
    with pytest.raises(ApiError) as exc:
        sg.check_group_name(name)
    assert exc.value.code == code


def test_good_group_name():
    assert sg.check_group_name("web tier (prod) #1") == "web tier (prod) #1"


def test_vpc_and_subnet_blocks():
    assert str(block("10.1.0.0/16", "vpc")) == "10.1.0.0/16"
    for bad, code in (("10.0.0.0/8", "InvalidVpc.Range"), ("10.0.0.0/29", "InvalidVpc.Range"),
                      ("10.0.0.1/16", "InvalidParameterValue"), ("x", "InvalidParameterValue")):
        with pytest.raises(ApiError) as exc:
            block(bad, "vpc")
        assert exc.value.code == code
    assert subnet_block("10.1.2.0/24", "10.1.0.0/16", ["10.1.3.0/24"]) == "10.1.2.0/24"
    with pytest.raises(ApiError) as exc:
        subnet_block("10.2.0.0/24", "10.1.0.0/16", [])
    assert exc.value.code == "InvalidSubnet.Range"
    with pytest.raises(ApiError) as exc:
        subnet_block("10.1.0.0/20", "10.1.0.0/16", ["10.1.3.0/24"])
    assert exc.value.code == "InvalidSubnet.Conflict"


def test_form_parsing_both_shapes():
    form = {"IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "80",
            "IpPermissions.1.ToPort": "81", "IpPermissions.1.IpRanges.1.CidrIp": "1.2.3.0/24",
            "IpPermissions.1.IpRanges.2.CidrIp": "5.6.7.0/24",
            "IpPermissions.1.Groups.1.GroupId": "sg-2", "IpPermissions.2.IpProtocol": "-1",
            "IpPermissions.2.IpRanges.1.CidrIp": "0.0.0.0/0"}
    ingress = "AuthorizeSecurityGroupIngress"
    perms = permissions(params(ingress, form))
    assert [r["CidrIp"] for r in perms[0]["IpRanges"]] == ["1.2.3.0/24", "5.6.7.0/24"]
    assert perms[0]["UserIdGroupPairs"] == [{"GroupId": "sg-2"}]
    assert perms[1]["IpProtocol"] == "-1"
    legacy = permissions(params(ingress, {"IpProtocol": "tcp", "FromPort": "80",
                                          "ToPort": "80", "CidrIp": "10.0.0.0/8"}))
    assert legacy == [{"IpProtocol": "tcp", "FromPort": "80", "ToPort": "80",
                       "IpRanges": [{"CidrIp": "10.0.0.0/8"}], "UserIdGroupPairs": []}]
    assert permissions(params(ingress, {"SourceSecurityGroupName": "web"}))[0][
        "IpProtocol"] == "-1"
    with pytest.raises(ApiError):
        permissions(params(ingress, {**form, "CidrIp": "10.0.0.0/8"}))


def test_render_fails_closed_and_checks_both_ends():
    a, b = "sg-0a", "sg-0b"
    web = rules({"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                 "UserIdGroupPairs": [{"GroupId": b}]},
                {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8"}]})
    names = Names("t")
    spec = FirewallSpec(nets=["10.5.0.0/24"], gateways=["10.5.0.1"], subnets=["subnet-a"],
                        groups=[GroupRules(a, web),
                                GroupRules(b, sg.default_rules(b, True, new_id), admits_host=True)],
                        members={a: {"10.5.0.4"}, b: {"10.5.0.5"}}, tasks={"t-1": "10.5.0.4"})
    text = render("fargo_t", spec, names)
    assert text.startswith("table inet fargo_t {}\ndelete table inet fargo_t\n")
    assert f"ip daddr @{set_name(a)} ip saddr @{set_name(b)} meta l4proto tcp th dport 8080 " \
        "accept" in text
    assert f"ip daddr @{set_name(a)} ip saddr 10.0.0.0/8 meta l4proto icmp icmp type 8 " \
        "accept" in text
    assert f"ip saddr @{set_name(b)} return" in text  # b's allow-all egress
    # Each of sg_in and sg_out ends in a drop: an address in no group gets nothing.
    assert text.count("    drop\n") == 2
    assert ("oifname @bridges ip daddr @nets ip daddr != @gateways "
            f"ip daddr @{set_name(b)} accept") in text
    assert f'"{names.bridge_name("subnet-a")}"' in text
    assert f'"{names.veth_name("t-1")}" . 10.5.0.4' in text
    # Subnets are not routed to each other even where the host forwards IPv4.
    br = f'"{names.bridge_name("subnet-a")}"'
    assert f"set same_bridge {{ type ifname . ifname; elements = {{ {br} . {br} }} }}" in text
    assert "iifname @bridges iifname . oifname != @same_bridge drop" in text


def test_member_update_is_idempotent_and_refuses_injection():
    out = member_update("fargo_t", "10.5.0.4", ["sg-0a"], "tv0123456789abc", add=False)
    lines = out.splitlines()
    assert lines[0].startswith("add element") and lines[1].startswith("delete element")
    for bad_ip in ("10.5.0.4 } ; flush ruleset", "10.5.0.256"):
        with pytest.raises(InvalidSpec):
            member_update("fargo_t", bad_ip, ["sg-0a"], "tv0123456789abc", add=True)
    with pytest.raises(InvalidSpec):
        set_name("sg-1; flush ruleset")
    with pytest.raises(InvalidSpec):
        member_update("fargo_t", "10.5.0.4", ["sg-0a"], 'x" ; flush ruleset', add=True)
