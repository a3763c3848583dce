"""Kubernetes' protobuf encoding of the workload kinds, read into the JSON the rest of fargo
takes: kubectl's typed clients post protobuf (`kubectl create deployment` does, and does not
fall back to JSON, nor does `kubectl create job` or `create cronjob`), so the apiserver's wire
form of a Deployment, a ReplicaSet, a Job, a CronJob and the pod template inside them is read
here. The numbers are k8s.io/api's generated.proto (apps/v1, batch/v1, core/v1).

Each message is a line of fields: `jsonName number type`, where the type is s (string),
i (integer), b (bool), t (a meta Time), q (a Quantity), ios (an IntOrString), ms (a map of
strings), mq (a map of Quantities), mb (a map of bytes, base64 in JSON) or another
message's name; a trailing `*` marks a repeated
field, `?` one whose zero value is meaningful (a pointer in Go: kept, where a plain field's
zero is left out, as its JSON omits it), and `^` a struct embedded inline (its fields are
its parent's in JSON). A field number a message does not list is refused by name (415): it is
never silently dropped."""

from __future__ import annotations

import base64
import functools
import time
from typing import Any

from .protobuf import _varint, fields

_SPEC = {
    "ObjectMeta": "name 1 s; generateName 2 s; namespace 3 s; selfLink 4 s; uid 5 s; "
                  "resourceVersion 6 s; generation 7 i; creationTimestamp 8 t; labels 11 ms; "
                  "annotations 12 ms; ownerReferences 13 OwnerReference*; finalizers 14 s*",
    "OwnerReference": "kind 1 s; name 3 s; uid 4 s; apiVersion 5 s; controller 6 b?; "
                      "blockOwnerDeletion 7 b?",
    "LabelSelector": "matchLabels 1 ms; matchExpressions 2 LabelSelectorRequirement*",
    "LabelSelectorRequirement": "key 1 s; operator 2 s; values 3 s*",
    # apps/v1
    "Deployment": "metadata 1 ObjectMeta; spec 2 DeploymentSpec; status 3 Status",
    "DeploymentSpec": "replicas 1 i?; selector 2 LabelSelector?; template 3 PodTemplateSpec; "
                      "strategy 4 DeploymentStrategy; minReadySeconds 5 i; "
                      "revisionHistoryLimit 6 i?; paused 7 b; progressDeadlineSeconds 9 i?",
    "DeploymentStrategy": "type 1 s; rollingUpdate 2 RollingUpdateDeployment?",
    "RollingUpdateDeployment": "maxUnavailable 1 ios?; maxSurge 2 ios?",
    "ReplicaSet": "metadata 1 ObjectMeta; spec 2 ReplicaSetSpec; status 3 Status",
    "ReplicaSetSpec": "replicas 1 i?; selector 2 LabelSelector?; template 3 PodTemplateSpec; "
                      "minReadySeconds 4 i",
    # core/v1: the pod template
    "PodTemplateSpec": "metadata 1 ObjectMeta; spec 2 PodSpec",
    "PodSpec": "volumes 1 Volume*; containers 2 Container*; restartPolicy 3 s; "
               "terminationGracePeriodSeconds 4 i?; activeDeadlineSeconds 5 i?; "
               "dnsPolicy 6 s; nodeSelector 7 ms; serviceAccountName 8 s; "
               "serviceAccount 9 s; nodeName 10 s; hostNetwork 11 b; hostPID 12 b; "
               "hostIPC 13 b; securityContext 14 PodSecurityContext?; "
               "imagePullSecrets 15 LocalObjectReference*; hostname 16 s; subdomain 17 s; "
               "schedulerName 19 s; initContainers 20 Container*; "
               "automountServiceAccountToken 21 b?; tolerations 22 Toleration*; "
               "priorityClassName 24 s; priority 25 i?; shareProcessNamespace 27 b?; "
               "readinessGates 28 PodReadinessGate*; runtimeClassName 29 s?; "
               "enableServiceLinks 30 b?; preemptionPolicy 31 s?; setHostnameAsFQDN 35 b?; "
               "hostUsers 37 b?",
    "Container": "name 1 s; image 2 s; command 3 s*; args 4 s*; workingDir 5 s; "
                 "ports 6 ContainerPort*; env 7 EnvVar*; resources 8 ResourceRequirements; "
                 "volumeMounts 9 VolumeMount*; livenessProbe 10 Probe?; "
                 "readinessProbe 11 Probe?; lifecycle 12 Lifecycle?; "
                 "terminationMessagePath 13 s; imagePullPolicy 14 s; "
                 "securityContext 15 SecurityContext?; stdin 16 b; stdinOnce 17 b; tty 18 b; "
                 "envFrom 19 EnvFromSource*; terminationMessagePolicy 20 s; "
                 "startupProbe 22 Probe?",
    "ContainerPort": "name 1 s; hostPort 2 i; containerPort 3 i; protocol 4 s; hostIP 5 s",
    "EnvVar": "name 1 s; value 2 s; valueFrom 3 EnvVarSource?",
    "EnvVarSource": "fieldRef 1 ObjectFieldSelector?; "
                    "resourceFieldRef 2 ResourceFieldSelector?; "
                    "configMapKeyRef 3 KeySelector?; secretKeyRef 4 KeySelector?",
    "ObjectFieldSelector": "apiVersion 1 s; fieldPath 2 s",
    "ResourceFieldSelector": "containerName 1 s; resource 2 s; divisor 3 q",
    "KeySelector": "ref 1 LocalObjectReference^; key 2 s; optional 3 b?",
    "EnvFromSource": "prefix 1 s; configMapRef 2 RefSource?; secretRef 3 RefSource?",
    "RefSource": "ref 1 LocalObjectReference^; optional 2 b?",
    "LocalObjectReference": "name 1 s",
    "ResourceRequirements": "limits 1 mq; requests 2 mq",
    "VolumeMount": "name 1 s; readOnly 2 b; mountPath 3 s; subPath 4 s; "
                   "mountPropagation 5 s?; subPathExpr 6 s",
    "Probe": "handler 1 ProbeHandler^; initialDelaySeconds 2 i; timeoutSeconds 3 i; "
             "periodSeconds 4 i; successThreshold 5 i; failureThreshold 6 i; "
             "terminationGracePeriodSeconds 7 i?",
    "ProbeHandler": "exec 1 ExecAction?; httpGet 2 HTTPGetAction?; "
                    "tcpSocket 3 TCPSocketAction?; grpc 4 GRPCAction?",
    "Lifecycle": "postStart 1 LifecycleHandler?; preStop 2 LifecycleHandler?",
    "LifecycleHandler": "exec 1 ExecAction?; httpGet 2 HTTPGetAction?; "
                        "tcpSocket 3 TCPSocketAction?",
    "ExecAction": "command 1 s*",
    "HTTPGetAction": "path 1 s; port 2 ios; host 3 s; scheme 4 s; httpHeaders 5 HTTPHeader*",
    "HTTPHeader": "name 1 s; value 2 s",
    "TCPSocketAction": "port 1 ios; host 2 s",
    "GRPCAction": "port 1 i; service 2 s?",
    "SecurityContext": "capabilities 1 Capabilities?; privileged 2 b?; runAsUser 4 i?; "
                       "runAsNonRoot 5 b?; readOnlyRootFilesystem 6 b?; "
                       "allowPrivilegeEscalation 7 b?; runAsGroup 8 i?; procMount 9 s?; "
                       "seccompProfile 11 SeccompProfile?",
    "Capabilities": "add 1 s*; drop 2 s*",
    "SeccompProfile": "type 1 s; localhostProfile 2 s?",
    "PodSecurityContext": "runAsUser 2 i?; runAsNonRoot 3 b?; supplementalGroups 4 i*; "
                          "fsGroup 5 i?; runAsGroup 6 i?; sysctls 7 Sysctl*; "
                          "fsGroupChangePolicy 9 s?; seccompProfile 10 SeccompProfile?",
    "Sysctl": "name 1 s; value 2 s",
    "Toleration": "key 1 s; operator 2 s; value 3 s; effect 4 s; tolerationSeconds 5 i?",
    "PodReadinessGate": "conditionType 1 s",
    "Volume": "name 1 s; source 2 VolumeSource^",
    "VolumeSource": "hostPath 1 HostPathVolumeSource?; emptyDir 2 EmptyDirVolumeSource?; "
                    "secret 6 SecretVolumeSource?; "
                    "persistentVolumeClaim 10 PersistentVolumeClaimVolumeSource?; "
                    "downwardAPI 16 DownwardAPIVolumeSource?; "
                    "configMap 19 ConfigMapVolumeSource?; projected 26 ProjectedVolumeSource?",
    "HostPathVolumeSource": "path 1 s; type 2 s?",
    "EmptyDirVolumeSource": "medium 1 s; sizeLimit 2 q?",
    "SecretVolumeSource": "secretName 1 s; items 2 KeyToPath*; defaultMode 3 i?; "
                          "optional 4 b?",
    "ConfigMapVolumeSource": "ref 1 LocalObjectReference^; items 2 KeyToPath*; "
                             "defaultMode 3 i?; optional 4 b?",
    "KeyToPath": "key 1 s; path 2 s; mode 3 i?",
    "PersistentVolumeClaimVolumeSource": "claimName 1 s; readOnly 2 b",
    "DownwardAPIVolumeSource": "items 1 DownwardAPIVolumeFile*; defaultMode 2 i?",
    "DownwardAPIVolumeFile": "path 1 s; fieldRef 2 ObjectFieldSelector?; "
                             "resourceFieldRef 3 ResourceFieldSelector?; mode 4 i?",
    "ProjectedVolumeSource": "sources 1 VolumeProjection*; defaultMode 2 i?",
    "VolumeProjection": "secret 1 Projection?; downwardAPI 2 DownwardAPIProjection?; "
                        "configMap 3 Projection?; "
                        "serviceAccountToken 4 ServiceAccountTokenProjection?",
    "Projection": "ref 1 LocalObjectReference^; items 2 KeyToPath*; optional 4 b?",
    "DownwardAPIProjection": "items 1 DownwardAPIVolumeFile*",
    "ServiceAccountTokenProjection": "audience 1 s; expirationSeconds 2 i?; path 3 s",
}
_SPEC.update({  # core/v1 config objects, and the TokenRequest of `kubectl create token`
    "ConfigMap": "metadata 1 ObjectMeta; data 2 ms; binaryData 3 mb; immutable 4 b?",
    "Secret": "metadata 1 ObjectMeta; data 2 mb; type 3 s; stringData 4 ms; immutable 5 b?",
    "ServiceAccount": "metadata 1 ObjectMeta; secrets 2 ObjectReference*; "
                      "imagePullSecrets 3 LocalObjectReference*; "
                      "automountServiceAccountToken 4 b?",
    "ObjectReference": "kind 1 s; namespace 2 s; name 3 s; uid 4 s; apiVersion 5 s; "
                       "resourceVersion 6 s; fieldPath 7 s",
    "TokenRequest": "metadata 1 ObjectMeta; spec 2 TokenRequestSpec; status 3 Status",
    "TokenRequestSpec": "audiences 1 s*; boundObjectRef 3 BoundObjectReference?; "
                        "expirationSeconds 4 i?",
    "BoundObjectReference": "kind 1 s; apiVersion 2 s; name 3 s; uid 4 s",
})
_SPEC.update({  # batch/v1: what `kubectl create job` (also --from=cronjob) and `create cronjob`
    # post. A create's status is the server's (an empty one is what kubectl sends).
    "Job": "metadata 1 ObjectMeta; spec 2 JobSpec; status 3 Status",
    "JobSpec": "parallelism 1 i?; completions 2 i?; activeDeadlineSeconds 3 i?; "
               "selector 4 LabelSelector?; manualSelector 5 b?; template 6 PodTemplateSpec; "
               "backoffLimit 7 i?; ttlSecondsAfterFinished 8 i?; completionMode 9 s?; "
               "suspend 10 b?; podFailurePolicy 11 PodFailurePolicy?; "
               "backoffLimitPerIndex 12 i?; maxFailedIndexes 13 i?; "
               "podReplacementPolicy 14 s?; managedBy 15 s?; successPolicy 16 SuccessPolicy?",
    # Read so that the Job's checks refuse them by their names (422), as they do in JSON.
    "PodFailurePolicy": "rules 1 PodFailurePolicyRule*",
    "PodFailurePolicyRule": "action 1 s; onExitCodes 2 PodFailurePolicyOnExitCodes?; "
                            "onPodConditions 3 PodFailurePolicyOnPodConditionsPattern*",
    "PodFailurePolicyOnExitCodes": "containerName 1 s?; operator 2 s; values 3 i*",
    "PodFailurePolicyOnPodConditionsPattern": "type 1 s; status 2 s",
    "SuccessPolicy": "rules 1 SuccessPolicyRule*",
    "SuccessPolicyRule": "succeededIndexes 1 s?; succeededCount 2 i?",
    "CronJob": "metadata 1 ObjectMeta; spec 2 CronJobSpec; status 3 Status",
    "CronJobSpec": "schedule 1 s; startingDeadlineSeconds 2 i?; concurrencyPolicy 3 s; "
                   "suspend 4 b?; jobTemplate 5 JobTemplateSpec; "
                   "successfulJobsHistoryLimit 6 i?; failedJobsHistoryLimit 7 i?; "
                   "timeZone 8 s?",
    "JobTemplateSpec": "metadata 1 ObjectMeta; spec 2 JobSpec",
    # core/v1 Service (`kubectl create service clusterip|loadbalancer|externalname`)
    "Service": "metadata 1 ObjectMeta; spec 2 ServiceSpec; status 3 Status",
    "ServiceSpec": "ports 1 ServicePort*; selector 2 ms; clusterIP 3 s; type 4 s; "
                   "externalIPs 5 s*; sessionAffinity 7 s; loadBalancerIP 8 s; "
                   "loadBalancerSourceRanges 9 s*; externalName 10 s; "
                   "externalTrafficPolicy 11 s; healthCheckNodePort 12 i; "
                   "publishNotReadyAddresses 13 b; "
                   "sessionAffinityConfig 14 SessionAffinityConfig?; ipFamilyPolicy 17 s?; "
                   "clusterIPs 18 s*; ipFamilies 19 s*; allocateLoadBalancerNodePorts 20 b?; "
                   "loadBalancerClass 21 s?; internalTrafficPolicy 22 s?; "
                   "trafficDistribution 23 s?",
    "ServicePort": "name 1 s; protocol 2 s; port 3 i; targetPort 4 ios; nodePort 5 i; "
                   "appProtocol 6 s?",
    "SessionAffinityConfig": "clientIP 1 ClientIPConfig?",
    "ClientIPConfig": "timeoutSeconds 1 i?",
    # networking.k8s.io/v1 (`kubectl create ingress` posts protobuf)
    "Ingress": "metadata 1 ObjectMeta; spec 2 IngressSpec; status 3 Status",
    "IngressSpec": "defaultBackend 1 IngressBackend; tls 2 IngressTLS*; rules 3 IngressRule*; "
                   "ingressClassName 4 s?",
    "IngressBackend": "resource 3 IngressResourceRef; service 4 IngressServiceBackend",
    "IngressResourceRef": "apiGroup 1 s?; kind 2 s; name 3 s",
    "IngressServiceBackend": "name 1 s; port 2 ServiceBackendPort",
    "ServiceBackendPort": "name 1 s; number 2 i",
    "IngressRule": "host 1 s; value 2 IngressRuleValue^",
    "IngressRuleValue": "http 1 HTTPIngressRuleValue",
    "HTTPIngressRuleValue": "paths 1 HTTPIngressPath*",
    "HTTPIngressPath": "path 1 s; backend 2 IngressBackend; pathType 3 s?",
    "IngressTLS": "hosts 1 s*; secretName 2 s",
    "IngressClass": "metadata 1 ObjectMeta; spec 2 IngressClassSpec",
    "IngressClassSpec": "controller 1 s; parameters 2 IngressClassParams",
    "IngressClassParams": "apiGroup 1 s?; kind 2 s; name 3 s; scope 4 s?; namespace 5 s?",
})
# The kinds whose whole object this module reads, by the TypeMeta (apiVersion, kind) of the
# envelope, each to the message that encodes it: another group's kind of the same name is
# not read with these numbers.
KINDS = {("apps/v1", "Deployment"): "Deployment", ("apps/v1", "ReplicaSet"): "ReplicaSet",
         ("v1", "ConfigMap"): "ConfigMap", ("v1", "Secret"): "Secret",
         ("v1", "ServiceAccount"): "ServiceAccount",
         ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
         ("batch/v1", "Job"): "Job", ("batch/v1", "CronJob"): "CronJob",
         ("v1", "Service"): "Service",
         ("networking.k8s.io/v1", "Ingress"): "Ingress",
         ("networking.k8s.io/v1", "IngressClass"): "IngressClass"}
_SCALARS = {"s", "i", "b", "t", "q", "ios", "ms", "mq", "mb"}


class _Field:
    __slots__ = ("name", "kind", "repeated", "pointer", "inline")

    def __init__(self, text: str):
        name, _, kind = text.split()
        self.repeated = kind.endswith("*")
        self.pointer = kind.endswith("?")
        self.inline = kind.endswith("^")
        self.name = name
        self.kind = kind.rstrip("*?^")


@functools.cache
def _message(name: str) -> dict[int, _Field]:
    out = {}
    for part in filter(None, (p.strip() for p in _SPEC[name].split(";"))):
        f = _Field(part)
        out[int(part.split()[1])] = f
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ValueError("protobuf: expected a string")
    return value.decode()


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError("protobuf: expected an embedded message")
    return value


def _time(buf: bytes) -> str | None:
    parts = dict(fields(buf))
    raw = parts.get(1, 0)
    seconds = _signed(raw) if isinstance(raw, int) else 0
    if not seconds:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _quantity(buf: bytes) -> str:
    return _text(dict(fields(buf)).get(1, b""))


def _int_or_string(buf: bytes) -> int | str:
    parts = dict(fields(buf))
    if parts.get(1, 0) == 1:
        return _text(parts.get(3, b""))
    raw = parts.get(2, 0)
    return _signed(raw) if isinstance(raw, int) else 0


def _map(entries: list[int | bytes], kind: str) -> dict[str, str]:
    """ms: strings, mq: Quantities, mb: bytes (base64 in JSON, as a Secret's data)."""
    out = {}
    for entry in entries:
        kv = dict(fields(_bytes(entry)))
        value = kv.get(2, b"")
        key = _text(kv.get(1, b""))
        if kind == "mq":
            out[key] = _quantity(_bytes(value))
        elif kind == "mb":
            out[key] = base64.b64encode(_bytes(value)).decode()
        else:
            out[key] = _text(value)
    return out


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "s":
        return _text(value)
    if kind == "b":
        return bool(value)
    if kind == "i":
        if isinstance(value, bytes):
            raise ValueError("protobuf: expected an integer")
        return _signed(value)
    if kind == "t":
        return _time(_bytes(value))
    if kind == "q":
        return _quantity(_bytes(value))
    return _int_or_string(_bytes(value))  # ios


def _ints(value: int | bytes) -> list[int]:
    """A repeated integer's entries: one varint, or several packed in bytes."""
    if isinstance(value, int):
        return [_signed(value)]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(_signed(v))
    return out


def decode_message(name: str, buf: bytes, depth: int = 0) -> dict[str, Any]:
    """One message as its JSON object."""
    if depth > 40:
        raise ValueError("protobuf: nested too deep")
    spec = _message(name)
    out: dict[str, Any] = {}
    maps: dict[str, list[int | bytes]] = {}
    for num, value in fields(buf):
        f = spec.get(num)
        if f is None:
            raise ValueError(f"protobuf: fargo does not read field {num} of {name} "
                             "(send the object as JSON, e.g. with kubectl apply -f)")
        if f.kind in ("ms", "mq", "mb"):
            maps.setdefault(f.name, []).append(value)
            continue
        if f.kind in _SCALARS:
            if f.repeated:
                entries = _ints(value) if f.kind == "i" else [_scalar(f.kind, value)]
                out.setdefault(f.name, []).extend(entries)
                continue
            got = _scalar(f.kind, value)
            if got is None or (not f.pointer and got in ("", 0, False)):
                out.pop(f.name, None)
                continue
            out[f.name] = got
            continue
        if f.kind == "Status":
            continue  # the server's to write: a create's status is dropped, as upstream's
        inner = decode_message(f.kind, _bytes(value), depth + 1)
        if f.inline:
            out.update(inner)
        elif f.repeated:
            out.setdefault(f.name, []).append(inner)
        else:
            out[f.name] = inner
    for key, entries in maps.items():
        out[key] = _map(entries, spec_kind(spec, key))
    return out


def spec_kind(spec: dict[int, _Field], name: str) -> str:
    return next(f.kind for f in spec.values() if f.name == name)


def decode_object(api_version: str, kind: str, body: bytes) -> dict[str, Any]:
    """The object (metadata, spec, status) a protobuf Unknown's raw bytes hold."""
    obj = decode_message(KINDS[api_version, kind], body)
    meta = obj.get("metadata") or {}
    meta.pop("selfLink", None)
    return obj
