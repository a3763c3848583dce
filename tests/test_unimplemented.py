"""Nothing is accepted and then ignored: every member of the ECS requests (walked from
botocore's shapes) and every pod field that fargo does not act on is refused by name."""

from __future__ import annotations

import copy
import os
from typing import Any

import botocore.session
import pytest

from fargo.model import admission, kubeobj, task, taskdef
from fargo.model.errors import ClientException, InvalidParameterException

pytestmark = pytest.mark.pure

ECS = botocore.session.get_session().get_service_model("ecs")
ARCH = {"x86_64": "X86_64", "aarch64": "ARM64"}[os.uname().machine]


def sample(shape: Any) -> Any:
    """A small value of shape that asks for something (a true, a non-empty list, ...)."""
    kind = shape.type_name
    if kind == "structure":
        first = next(iter(shape.members))
        return {first: sample(shape.members[first])}
    if kind == "list":
        return [sample(shape.member)]
    if kind == "map":
        return {"k": "v"}
    if kind == "boolean":
        return True
    if kind in ("integer", "long"):
        return 5
    return shape.enum[-1] if shape.enum else "x"


def members(shape_name: str) -> dict[str, Any]:
    return dict(ECS.shape_for(shape_name).members)


def td(**over: Any) -> dict[str, Any]:
    base = {"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "app", "image": "busybox"}]}
    base.update(over)
    return base


def refused(req: dict[str, Any]) -> str:
    with pytest.raises(ClientException) as exc:
        taskdef.normalize(req)
    return exc.value.message


# ---- RegisterTaskDefinition, member by member

def test_known_members_are_real_members():
    """The tables name botocore's members (no typo lets a field through)."""
    stored = {"taskDefinitionArn", "revision", "status", "compatibilities",
              "requiresAttributes", "registeredAt", "registeredBy", "deregisteredAt",
              "deleteRequestedAt"}
    assert taskdef._TASKDEF_KNOWN - stored <= set(members("RegisterTaskDefinitionRequest"))
    assert taskdef._CONTAINER_KNOWN <= set(members("ContainerDefinition"))
    assert taskdef._LINUX_KNOWN <= set(members("LinuxParameters"))
    assert taskdef._PORT_KNOWN <= set(members("PortMapping"))
    assert taskdef._VOLUME_KNOWN <= set(members("Volume"))
    assert task._RUN_TASK_KNOWN <= set(members("RunTaskRequest"))
    assert task._OVERRIDES_KNOWN <= set(members("TaskOverride"))
    assert task._CONTAINER_OVERRIDE_KNOWN <= set(members("ContainerOverride"))
    assert task._AWSVPC_KNOWN <= set(members("AwsVpcConfiguration"))


@pytest.mark.parametrize("name", sorted(set(members("RegisterTaskDefinitionRequest"))
                                        - taskdef._TASKDEF_KNOWN))
def test_task_level_member_refused(name):
    value = sample(members("RegisterTaskDefinitionRequest")[name])
    if name == "pidMode":
        value = "task"  # Fargate's own value: fargo gives each container its own
    assert f"'{name}'" in refused(td(**{name: value}))


@pytest.mark.parametrize("name", sorted(set(members("ContainerDefinition"))
                                        - taskdef._CONTAINER_KNOWN))
def test_container_member_refused(name):
    value = sample(members("ContainerDefinition")[name])
    extra: dict[str, Any] = {}
    if name == "mountPoints":  # a declared volume: only fargo's own refusal is left
        value, extra = [{"sourceVolume": "v", "containerPath": "/v"}], {"volumes": [
            {"name": "v"}]}
    if name == "volumesFrom":
        value = [{"sourceContainer": "app"}]
    if name == "restartPolicy":
        value = {"enabled": True}
    msg = refused(td(containerDefinitions=[{"name": "app", "image": "b", name: value}],
                     **extra))
    assert f"Container 'app': the '{name}' parameter is not supported by fargo." == msg


@pytest.mark.parametrize("shape,field,allowed", [
    ("LinuxParameters", "linuxParameters", taskdef._LINUX_KNOWN),
    ("PortMapping", "portMappings", taskdef._PORT_KNOWN),
])
def test_nested_container_members_refused(shape, field, allowed):
    for name in sorted(set(members(shape)) - allowed):
        value = {name: sample(members(shape)[name])}
        if field == "portMappings":
            value = [dict(value, containerPort=80)]
        msg = refused(td(containerDefinitions=[{"name": "app", "image": "b", field: value}]))
        assert f"'{field}.{name}'" in msg, msg


def test_volume_members_refused():
    for name in sorted(set(members("Volume")) - taskdef._VOLUME_KNOWN):
        vol = {"name": "v", name: sample(members("Volume")[name])}
        assert f"Volume 'v': the '{name}' parameter" in refused(td(volumes=[vol]))


def test_known_cases_of_the_issue():
    # AWS refuses a mount of a volume the definition does not declare, at registration.
    c = {"name": "app", "image": "b", "mountPoints": [{"sourceVolume": "data",
                                                       "containerPath": "/data"}]}
    assert refused(td(containerDefinitions=[c])) == "Unknown volume 'data'."
    assert refused(td(containerDefinitions=[c], requiresCompatibilities=[])) == \
        "Unknown volume 'data'."
    big = {"name": "app", "image": "b", "ulimits": [
        {"name": "nofile", "softLimit": 2 ** 40, "hardLimit": 2 ** 40}]}
    assert "'ulimits'" in refused(td(containerDefinitions=[big]))
    for name, value in (("dockerLabels", {"a": "b"}),
                        ("ulimits", [{"name": "nofile", "softLimit": 1, "hardLimit": 1}])):
        msg = refused(td(containerDefinitions=[{"name": "app", "image": "b", name: value}]))
        assert f"'{name}'" in msg
    # An EC2-only definition is refused the same: fargo stores only what it could run.
    assert "'dockerLabels'" in refused({"family": "x", "containerDefinitions": [
        {"name": "a", "image": "b", "dockerLabels": {"a": "b"}}]})


def test_what_asks_for_nothing_still_registers():
    c = {"name": "app", "image": "b", "interactive": False, "secrets": [], "ulimits": [],
         "restartPolicy": {"enabled": False}, "dockerLabels": {}, "mountPoints": [],
         "versionConsistency": "disabled", "portMappings": [
             {"containerPort": 80, "name": "web", "appProtocol": "http"}],
         "linuxParameters": {"capabilities": {"add": ["SYS_PTRACE"]},
                             "initProcessEnabled": False}}
    out = taskdef.normalize(td(containerDefinitions=[c], volumes=[{"name": "scratch"}],
                               executionRoleArn="arn:aws:iam::000000000000:role/x",
                               runtimePlatform={"operatingSystemFamily": "LINUX",
                                                "cpuArchitecture": ARCH},
                               ephemeralStorage={"sizeInGiB": 30}))
    assert "FARGATE" in out["compatibilities"]


def test_runtime_platform():
    other = "ARM64" if ARCH == "X86_64" else "X86_64"
    assert "cpuArchitecture" in refused(td(runtimePlatform={"cpuArchitecture": other}))
    assert "operatingSystemFamily" in refused(td(runtimePlatform={
        "operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"}))


def test_stored_definition_is_checked_again_at_run_task():
    """A definition an older fargo stored with a field it ignored is not run now."""
    stored = taskdef.normalize(td())
    stored.update(status="ACTIVE", taskDefinitionArn="arn:td", revision=1)
    task.require_fargate(stored)
    older = copy.deepcopy(stored)
    older["containerDefinitions"][0]["firelensConfiguration"] = {"type": "fluentbit"}
    with pytest.raises(ClientException, match="'firelensConfiguration'"):
        task.require_fargate(older)


# ---- RunTask's own parameters

RUN_OK = {"taskDefinition": "web", "cluster": "default", "count": 2, "launchType": "FARGATE",
          "platformVersion": "LATEST", "propagateTags": "NONE", "group": "g",
          "startedBy": "me", "clientToken": "t", "tags": [{"key": "k", "value": "v"}],
          "networkConfiguration": {"awsvpcConfiguration": {
              "subnets": ["subnet-1"], "securityGroups": ["sg-1"],
              "assignPublicIp": "DISABLED"}},
          "overrides": {"cpu": "512", "memory": "1024", "taskRoleArn": "arn:r",
                        "executionRoleArn": "arn:e", "containerOverrides": [
                            {"name": "app", "command": ["x"], "cpu": 1, "memory": 6,
                             "memoryReservation": 6,
                             "environment": [{"name": "A", "value": "1"}]}]},
          "enableExecuteCommand": False, "placementConstraints": []}


def run_refused(p: dict[str, Any]) -> str:
    with pytest.raises(InvalidParameterException) as exc:
        task.check_run_task_params(p)
    return exc.value.message


def test_run_task_parameters_fargo_honours_pass():
    task.check_run_task_params(copy.deepcopy(RUN_OK))


@pytest.mark.parametrize("name", sorted(set(members("RunTaskRequest")) - task._RUN_TASK_KNOWN))
def test_run_task_member_refused(name):
    value = sample(members("RunTaskRequest")[name])
    if name == "propagateTags":
        value = "TASK_DEFINITION"
    assert f"'{name}'" in run_refused(dict(RUN_OK, **{name: value}))


def test_run_task_nested_members_refused():
    for name in sorted(set(members("TaskOverride")) - task._OVERRIDES_KNOWN):
        p = copy.deepcopy(RUN_OK)
        p["overrides"][name] = sample(members("TaskOverride")[name])
        assert f"'overrides.{name}'" in run_refused(p)
    for name in sorted(set(members("ContainerOverride")) - task._CONTAINER_OVERRIDE_KNOWN):
        p = copy.deepcopy(RUN_OK)
        p["overrides"]["containerOverrides"][0][name] = sample(
            members("ContainerOverride")[name])
        assert f"'containerOverrides.{name}'" in run_refused(p)
    p = copy.deepcopy(RUN_OK)
    p["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] = "ENABLED"
    assert "'awsvpcConfiguration.assignPublicIp'" in run_refused(p)
    assert "Platform version 1.3.0" in run_refused(dict(RUN_OK, platformVersion="1.3.0"))


# ---- pods

PROFILES = [{"fargateProfileName": "web", "status": "ACTIVE", "subnets": ["subnet-1"],
             "selectors": [{"namespace": "apps"}]}]


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {"name": "app", "image": "busybox:1", **(container or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "apps"},
            "spec": {"containers": [c], **spec}}


def test_a_pod_as_the_apiserver_defaults_it_is_admitted():
    p = pod({"command": ["sh"], "args": ["-c", "x"], "workingDir": "/w",
             "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80,
                                                               "name": "http"}],
             "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                           "limits": {"memory": "128Mi"}},
             "securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": True,
                                 "allowPrivilegeEscalation": False}},
            initContainers=[{"name": "init", "image": "busybox:1"}], restartPolicy="Never",
            tolerations=[{"key": "k", "operator": "Exists"}], terminationGracePeriodSeconds=3)
    kubeobj.default_pod(p)
    assert admission.verdict(p, PROFILES, "apps") is None


@pytest.mark.parametrize("container,spec,path", [
    ({"livenessProbe": {"grpc": {"port": 9000}}}, {}, "spec.containers[0].livenessProbe.grpc"),
    ({"readinessProbe": {"tcpSocket": {"port": 80, "host": "example.com"}}}, {},
     "spec.containers[0].readinessProbe.tcpSocket.host"),
    ({"startupProbe": {"httpGet": {"port": 80, "host": "example.com"}}}, {},
     "spec.containers[0].startupProbe.httpGet.host"),
    ({"lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}, {},
     "spec.containers[0].lifecycle"),
    ({"volumeMounts": [{"name": "v", "mountPath": "/v", "subPathExpr": "$(X)"}]},
     {"volumes": [{"name": "v", "emptyDir": {}}]},
     "spec.containers[0].volumeMounts[0].subPathExpr"),
    ({"volumeMounts": [{"name": "v", "mountPath": "/v", "mountPropagation": "HostToContainer"}]},
     {"volumes": [{"name": "v", "emptyDir": {}}]},
     "spec.containers[0].volumeMounts[0].mountPropagation"),
    ({"env": [{"name": "A", "valueFrom": {"fileKeyRef": {"path": "p", "key": "k"}}}]}, {},
     "spec.containers[0].env[0].valueFrom.fileKeyRef"),
    ({"stdin": True}, {}, "spec.containers[0].stdin"),
    ({"tty": True}, {}, "spec.containers[0].tty"),
    ({"imagePullPolicy": "Never"}, {}, "spec.containers[0].imagePullPolicy"),
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, {},
     "spec.containers[0].terminationMessagePolicy"),
    ({"resources": {"limits": {"ephemeral-storage": "1Gi"}}}, {},
     "spec.containers[0].resources.limits.ephemeral-storage"),
    ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, {},
     "spec.containers[0].securityContext.capabilities"),
    ({"securityContext": {"runAsNonRoot": True}}, {},
     "spec.containers[0].securityContext.runAsNonRoot"),
    ({"ports": [{"containerPort": 80, "hostIP": "1.2.3.4"}]}, {},
     "spec.containers[0].ports.hostIP"),
    ({}, {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]},
     "spec.volumes[0].persistentVolumeClaim"),
    ({}, {"volumes": [{"name": "v", "csi": {"driver": "efs.csi.aws.com"}}]},
     "spec.volumes[0].csi"),
    ({}, {"volumes": [{"name": "v", "projected": {"sources": [
        {"clusterTrustBundle": {"name": "b", "path": "p"}}]}}]},
     "spec.volumes[0].projected.sources[0].clusterTrustBundle"),
    ({}, {"securityContext": {"runAsUser": 1000}}, "spec.securityContext.runAsUser"),
    ({}, {"affinity": {"nodeAffinity": {}}}, "spec.affinity"),
    ({}, {"nodeSelector": {"disk": "ssd"}}, "spec.nodeSelector"),
    ({}, {"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}]}, "spec.hostAliases"),
    ({}, {"activeDeadlineSeconds": 60}, "spec.activeDeadlineSeconds"),
    ({}, {"shareProcessNamespace": True}, "spec.shareProcessNamespace"),
    ({}, {"setHostnameAsFQDN": True}, "spec.setHostnameAsFQDN"),
    ({}, {"os": {"name": "windows"}}, "spec.os"),
])
def test_pod_fields_fargo_does_not_run_are_refused(container, spec, path):
    p = pod(container, **spec)
    msg = admission.verdict(p, PROFILES, "apps")
    assert msg is not None and msg.startswith("Pod not supported on Fargate: fields not "
                                              "supported: ")
    assert path in msg
    # Judging for Fargate alone (an outside apiserver's webhook): only Fargate's own rules.
    assert path not in (admission.verdict(p, PROFILES, "apps", fargo_runs=False) or "")


def test_init_container_fields_are_named_by_index():
    p = pod(initContainers=[{"name": "i", "image": "b", "livenessProbe": {}},
                            {"name": "j", "image": "b", "tty": True}])
    msg = admission.verdict(p, PROFILES, "apps") or ""
    assert "spec.initContainers[1].tty" in msg and "initContainers[0]" not in msg
