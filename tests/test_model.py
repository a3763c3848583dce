"""Unit tests for the pure rules in fargo/model."""

from __future__ import annotations

import random

import pytest

from fargo.model import lifecycle, sizes, taskdef
from fargo.model.capacity import StrategyItem
from fargo.model.errors import ClientException, InvalidParameterException
from fargo.model.names import cluster_name_from, family_revision, task_id_from
from fargo.model.task import apply_overrides, check_count, check_launch, container_plan
from fargo.model.taskrecord import Interface, Task
from fargo.model.vpc import default_vpc


def td(**over):
    base = {
        "family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "app", "image": "busybox"}],
    }
    base.update(over)
    return base


@pytest.mark.parametrize("text,units", [("256", 256), ("1 vCPU", 1024), (".25 vcpu", 256),
                                        ("0.5 vCPU", 512), ("16 vCPU", 16384)])
def test_parse_cpu(text, units):
    assert sizes.parse_cpu(text) == units


@pytest.mark.parametrize("text,mib", [("512", 512), ("2GB", 2048), ("0.5GB", 512),
                                      ("30 gb", 30720)])
def test_parse_memory(text, mib):
    assert sizes.parse_memory(text) == mib


@pytest.mark.parametrize("bad", ["", "one", "1 GHz", "-5", "1e3"])
def test_parse_rejects(bad):
    with pytest.raises(ClientException):
        sizes.parse_cpu(bad)
    with pytest.raises(ClientException):
        sizes.parse_memory(bad)


@pytest.mark.parametrize("cpu,mem", [(256, 512), (256, 2048), (512, 4096), (1024, 8192),
                                     (4096, 30720), (8192, 61440), (16384, 122880),
                                     (8192, 20480), (16384, 40960)])
def test_valid_sizes(cpu, mem):
    sizes.check_task_size(cpu, mem)


@pytest.mark.parametrize("cpu,mem,word", [(256, 4096, "memory"), (300, 512, "cpu"),
                                          (512, 512, "memory"), (8192, 18432, "memory"),
                                          (16384, 36864, "memory"), (4096, 31744, "memory")])
def test_invalid_sizes_name_setting(cpu, mem, word):
    with pytest.raises(ClientException, match=f"Invalid '{word}' setting for task"):
        sizes.check_task_size(cpu, mem)


def test_smallest_fit_pod_example():
    # 1 vCPU + 8 GiB + 256 MiB -> 2 vCPU / 9 GB (FARGATE.md section 7)
    assert sizes.smallest_fit(1024, 8 * 1024 + 256) == (2048, 9216)
    assert sizes.smallest_fit(0, 256) == (256, 512)


def test_normalize_converts_and_defaults():
    out = taskdef.normalize(td(cpu="1 vCPU", memory="2GB", containerDefinitions=[
        {"name": "app", "image": "busybox", "portMappings": [{"containerPort": 8080}]}]))
    assert (out["cpu"], out["memory"]) == ("1024", "2048")
    c = out["containerDefinitions"][0]
    assert c["essential"] is True
    assert c["portMappings"] == [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}]
    assert out["compatibilities"] == ["EC2", "FARGATE"]


@pytest.mark.parametrize("change,needle", [
    ({"networkMode": "bridge"}, "awsvpc"),
    ({"cpu": None}, "'cpu'"),
    ({"ipcMode": "host"}, "ipcMode"),
    ({"pidMode": "host"}, "pidMode"),
    ({"placementConstraints": [{"type": "memberOf", "expression": "x"}]}, "placementConstraints"),
    ({"volumes": [{"name": "v", "dockerVolumeConfiguration": {"scope": "task"}}]},
     "dockerVolumeConfiguration"),
    ({"volumes": [{"name": "v", "host": {"sourcePath": "/etc"}}]}, "sourcePath"),
])
def test_fargate_refuses_task_fields(change, needle):
    req = td(**change)
    if change.get("cpu", 1) is None:
        del req["cpu"]
    with pytest.raises(ClientException, match=needle):
        taskdef.normalize(req)


@pytest.mark.parametrize("field,value", [
    ("privileged", True), ("disableNetworking", True), ("dnsServers", ["1.1.1.1"]),
    ("dnsSearchDomains", ["x"]), ("dockerSecurityOptions", ["label:x"]),
    ("extraHosts", [{"hostname": "a", "ipAddress": "10.0.0.1"}]), ("links", ["b"]),
    ("hostname", "box"),
    ("linuxParameters", {"devices": [{"hostPath": "/dev/kvm"}]}),
    ("linuxParameters", {"sharedMemorySize": 64}),
    ("linuxParameters", {"tmpfs": [{"containerPath": "/t", "size": 1}]}),
    ("linuxParameters", {"maxSwap": 10}), ("linuxParameters", {"swappiness": 10}),
    ("linuxParameters", {"capabilities": {"add": ["NET_ADMIN"]}}),
    ("resourceRequirements", [{"type": "GPU", "value": "1"}]),
    ("portMappings", [{"containerPort": 80, "hostPort": 8080}]),
])
def test_fargate_refuses_container_fields(field, value):
    c = {"name": "app", "image": "busybox", field: value}
    with pytest.raises(ClientException) as exc:
        taskdef.normalize(td(containerDefinitions=[c]))
    key = next(iter(value)) if field == "linuxParameters" and "capabilities" not in value else field
    if field == "linuxParameters" and "capabilities" in value:
        key = "NET_ADMIN"
    if field == "portMappings":
        key = "hostPort"
    if field == "resourceRequirements":
        key = "GPU"
    assert key in exc.value.message


def test_sys_ptrace_allowed_and_stop_timeout_bound():
    ok = {"name": "app", "image": "b", "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"]}},
          "stopTimeout": 120}
    taskdef.normalize(td(containerDefinitions=[ok]))
    with pytest.raises(ClientException, match="stopTimeout"):
        taskdef.normalize(td(containerDefinitions=[dict(ok, stopTimeout=121)]))


def test_container_sizes_must_fit():
    cs = [{"name": "a", "image": "b", "cpu": 200}, {"name": "b", "image": "b", "cpu": 100}]
    with pytest.raises(ClientException, match="'cpu'"):
        taskdef.normalize(td(containerDefinitions=cs))
    cs = [{"name": "a", "image": "b", "memory": 400}, {"name": "b", "image": "b", "memory": 200}]
    with pytest.raises(ClientException, match="'memory'"):
        taskdef.normalize(td(containerDefinitions=cs))


def test_depends_on_checked():
    cs = [{"name": "a", "image": "b", "dependsOn": [{"containerName": "b", "condition": "START"}]},
          {"name": "b", "image": "b", "dependsOn": [{"containerName": "a", "condition": "START"}]}]
    with pytest.raises(ClientException, match="cycle"):
        taskdef.normalize(td(containerDefinitions=cs))
    cs = [{"name": "a", "image": "b", "dependsOn": [{"containerName": "zz",
                                                      "condition": "START"}]}]
    with pytest.raises(ClientException, match="unknown container"):
        taskdef.normalize(td(containerDefinitions=cs))


def test_depends_on_conditions():
    ess = [{"name": "a", "image": "b"},
           {"name": "c", "image": "b", "dependsOn": [{"containerName": "a",
                                                       "condition": "COMPLETE"}]}]
    with pytest.raises(ClientException, match="essential container 'a'"):
        taskdef.normalize(td(containerDefinitions=ess))
    ess[0]["essential"] = False
    taskdef.normalize(td(containerDefinitions=ess))
    ess[1]["dependsOn"][0]["condition"] = "HEALTHY"
    with pytest.raises(ClientException, match="health checks"):
        taskdef.normalize(td(containerDefinitions=ess))


def test_non_fargate_definition_registers_for_ec2_only():
    out = taskdef.normalize({"family": "x", "containerDefinitions": [{"name": "a",
                                                                      "image": "b"}]})
    assert out["compatibilities"] == ["EC2"]


@pytest.mark.parametrize("bad", ["../etc", "a" * 256, "", "a\x00b", "sp ace"])
def test_hostile_names(bad):
    with pytest.raises(ClientException):
        taskdef.normalize(td(family=bad))


def test_refs():
    assert family_revision("web:3") == ("web", 3)
    assert family_revision("arn:aws:ecs:us-east-1:000000000000:task-definition/web:2") == ("web", 2)
    assert cluster_name_from(None) == "default"
    assert cluster_name_from("arn:aws:ecs:us-east-1:000000000000:cluster/c1") == "c1"
    tid = "0" * 32
    assert task_id_from(f"arn:aws:ecs:us-east-1:000000000000:task/c1/{tid}") == tid
    with pytest.raises(InvalidParameterException):
        task_id_from("../../etc/passwd")


def test_run_task_arguments():
    # launchType or a capacityProviderStrategy (tests/test_capacity_model.py has the rest)
    assert check_launch("FARGATE", None) is None
    assert check_launch(None, (StrategyItem("FARGATE"),)) is None
    with pytest.raises(InvalidParameterException):
        check_launch("FARGATE", (StrategyItem("FARGATE"),))
    with pytest.raises(InvalidParameterException):
        check_launch("EC2", None)
    for bad in (0, 11):
        with pytest.raises(InvalidParameterException):
            check_count(bad)


def test_overrides():
    d = taskdef.normalize(td(containerDefinitions=[
        {"name": "app", "image": "b", "command": ["a"],
         "environment": [{"name": "A", "value": "1"}]}]))
    ov = {"containerOverrides": [{"name": "app", "command": ["b"],
                                  "environment": [{"name": "B", "value": "2"}]}],
          "cpu": "512", "memory": "1024"}
    assert apply_overrides(d, ov) == (512, 1024)
    plan = container_plan(d, ov)
    assert plan[0]["command"] == ["b"]
    assert {e["name"] for e in plan[0]["environment"]} == {"A", "B"}
    with pytest.raises(InvalidParameterException):
        apply_overrides(d, {"containerOverrides": [{"name": "nope"}]})
    with pytest.raises(ClientException):
        apply_overrides(d, {"cpu": "256", "memory": "4096"})


def _task(**fields) -> Task:
    iface = Interface("att", "eni-1", "subnet-1", "10.0.0.5", "ip-10-0-0-5.ec2.internal")
    return Task(id="t", arn="arn:t", cluster_arn="arn:c", task_definition_arn="arn:td",
                family="f", region="us-east-1", cpu=256, memory=512, created_at=0.0,
                availability_zone="us-east-1a", interface=iface, containers=[], plan=[],
                **fields)


def test_lifecycle_moves_forward_only():
    t = _task(last_status="PROVISIONING", desired_status="RUNNING", version=1)
    assert lifecycle.advance(t, "RUNNING", 5.0)
    assert t.started_at == 5.0 and t.version == 2
    assert not lifecycle.advance(t, "PENDING", 6.0)
    assert lifecycle.request_stop(t, "UserInitiated", "bye", 7.0)
    assert not lifecycle.request_stop(t, "EssentialContainerExited", "x", 8.0)
    assert t.stop_code == "UserInitiated"
    lifecycle.advance(t, "STOPPED", 9.0)
    assert t.stopped_at == 9.0 and t.desired_status == "STOPPED"


def test_execution_stopped_when_containers_have_stopped():
    t = _task(last_status="RUNNING", desired_status="STOPPED", version=3)
    lifecycle.advance(t, "STOPPING", 1.0)
    assert t.execution_stopped_at is None  # SIGTERM only just went out
    lifecycle.advance(t, "DEPROVISIONING", 2.0)
    assert t.execution_stopped_at == 2.0


def test_default_vpc():
    v = default_vpc("us-east-1", "10.89.0.0/16")
    assert [s.cidr for s in v.subnets] == ["10.89.0.0/18", "10.89.64.0/18", "10.89.128.0/18"]
    assert v.subnets[0].gateway == "10.89.0.1"
    assert default_vpc("us-east-1", "10.89.0.0/16") == v


@pytest.mark.parametrize("cidr", ["169.254.0.0/16", "127.0.0.0/16", "0.0.0.0/16", "224.0.0.0/16",
                                  "240.0.0.0/16"])
def test_vpc_blocks_refuse_reserved_ranges(cidr):
    from fargo.model.errors import ApiError
    from fargo.model.vpc import block

    with pytest.raises(ApiError, match="reserved"):
        block(cidr, "vpc")
    assert str(block("10.20.0.0/16", "vpc")) == "10.20.0.0/16"


def test_image_user_db_must_be_a_regular_file(tmp_path):
    """An image may ship /etc/passwd as a FIFO or a device: never block or read it."""
    import os

    from fargo.agent.sandbox import resolve_user

    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "passwd")
    os.symlink("/dev/zero", tmp_path / "etc" / "group")
    assert resolve_user(tmp_path, "")[:2] == (0, 0)  # default root, nothing read


def test_address_book_picks_the_lowest_free_as_a_walk_from_the_start_would() -> None:
    from fargo.model.ipam import AddressBook, Ipam

    rng = random.Random(7)
    subnets = ["10.0.0.0/26", "10.0.1.0/28"]
    book, used = AddressBook(), set[str]()
    for _ in range(3000):
        cidr = rng.choice(subnets)
        if used and rng.random() < 0.4:
            ip = rng.choice(sorted(used))
            used.discard(ip)
            book.free(ip)
        elif rng.random() < 0.05:  # held from outside (a load balancer's, a re-adopted task's)
            ip = rng.choice(list(Ipam.hosts(cidr)))
            used.add(ip)
            book.hold(ip)
        else:
            expected = Ipam.pick(cidr, used)
            assert book.pick(cidr) == expected
            if expected:
                used.add(expected)
        assert book.used == used
