"""Fargate's pod admission, pure: what a matching pod gets (a JSON patch) and what is refused.

Served twice: on fargo's own create path, and as AdmissionReview v1 webhooks."""

from __future__ import annotations

from typing import Any

from . import podvolumes, probes
from .profiles import PIN_LABEL, choose_profile

SCHEDULER = "fargate-scheduler"
_GPU_SUFFIX = "/gpu"
_SUPPORTED_VOLUMES = {"name", "emptyDir", "configMap", "secret", "downwardAPI", "projected",
                      "persistentVolumeClaim", "nfs", "csi", "ephemeral"}

# What fargo runs of a pod: members it honours, those Fargate's rules refuse above, and the
# apiserver's defaults (with the values that ask for nothing more than fargo does). Any other
# member given a value is refused by name: never admitted and then ignored. None: any value.
Known = dict[str, tuple[Any, ...] | None]
_SPEC_KNOWN: Known = {
    "containers": None, "initContainers": None, "restartPolicy": None,
    "terminationGracePeriodSeconds": None, "schedulerName": None, "nodeName": None,
    "hostNetwork": None, "hostPID": None, "hostIPC": None, "tolerations": None,
    "hostUsers": None,  # every task has a user namespace of its own anyway
    "volumes": None, "securityContext": None,  # looked into below
    "dnsPolicy": None, "dnsConfig": None,  # model/clusterdns.py's resolv.conf
    "hostname": None, "subdomain": None,  # its hosts file, and headless Services' names
    "serviceAccountName": None,
    "readinessGates": None,  # conditions others set (the LB controller's target health)
    "runtimeClassName": None,  # the sandbox tier: model/runtimeclass.py
    "serviceAccount": None, "enableServiceLinks": (True, False),
    "preemptionPolicy": ("PreemptLowerPriority",), "priority": (0,),
    "automountServiceAccountToken": None, "os": ({"name": "linux"},),
    "imagePullSecrets": None,  # control/volumes.py's pull_auth
}
_CONTAINER_KNOWN: Known = {
    "name": None, "image": None, "command": None, "args": None, "workingDir": None,
    "env": None, "ports": None, "resources": None, "securityContext": None,
    "volumeMounts": None, "envFrom": None,  # model/podvolumes.py looks into them
    "livenessProbe": None, "readinessProbe": None, "startupProbe": None,  # looked into below
    "imagePullPolicy": ("Always", "IfNotPresent"),
    "terminationMessagePath": ("/dev/termination-log",),
    "terminationMessagePolicy": ("File",),
}
_RUNTIME_DEFAULT = ({"type": "RuntimeDefault"},)  # fargo's default profile is always applied
_SECURITY_KNOWN: Known = {
    "runAsUser": None, "runAsGroup": None, "readOnlyRootFilesystem": None, "privileged": None,
    "allowPrivilegeEscalation": (False,),  # no_new_privs is always set
    "seccompProfile": _RUNTIME_DEFAULT, "capabilities": None,  # looked into below
}
_POD_SECURITY_KNOWN: Known = {"seccompProfile": _RUNTIME_DEFAULT}
_PORT_KNOWN: Known = {"containerPort": None, "name": None, "protocol": None, "hostPort": None}
_RESOURCES_RUN = ("cpu", "memory")
# env's sources fargo resolves
_VALUE_FROM_RUN = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def mutation(pod: dict[str, Any], profiles: list[dict[str, Any]],
             namespace: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the matched profile, the JSON patch making the pod Fargate's); (None, []) if none."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    profile = choose_profile(profiles, namespace, labels)
    if profile is None:
        return None, []
    spec = pod.get("spec") or {}
    patch: list[dict[str, Any]] = []
    if spec.get("schedulerName") != SCHEDULER:
        op = "replace" if "schedulerName" in spec else "add"
        patch.append({"op": op, "path": "/spec/schedulerName", "value": SCHEDULER})
    name = profile["fargateProfileName"]
    if not isinstance(meta.get("labels"), dict):  # absent, or `labels:` left empty (null)
        patch.append({"op": "add", "path": "/metadata/labels", "value": {PIN_LABEL: name}})
    elif labels.get(PIN_LABEL) != name:
        op = "replace" if PIN_LABEL in labels else "add"
        patch.append({"op": op, "path": f"/metadata/labels/{_escape(PIN_LABEL)}", "value": name})
    return profile, patch


def _given(value: Any) -> bool:
    return value not in (None, False, [], {}, "")


def _not_run(obj: Any, known: Known, at: str) -> list[str]:
    """The members of obj that are given a value fargo does not run, as field paths."""
    if not isinstance(obj, dict):
        return []
    return [f"{at}.{k}" for k, v in obj.items() if _given(v) and (
        k not in known or (known[k] is not None and v not in (known[k] or ())))]


def unimplemented(pod: dict[str, Any]) -> list[str]:
    """The fields of a pod (as field paths) that fargo would have to ignore to run it."""
    spec = pod.get("spec") or {}
    out = _not_run(spec, _SPEC_KNOWN, "spec")
    out += podvolumes.unimplemented(spec)  # of the volume types Fargate takes
    # fargo applies a container's own securityContext (and the default seccomp profile).
    out += _not_run(spec.get("securityContext"), _POD_SECURITY_KNOWN, "spec.securityContext")
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if isinstance(c, dict):
                out += _container_unimplemented(c, f"spec.{group}[{i}]")
    return list(dict.fromkeys(out))


def _container_unimplemented(c: dict[str, Any], at: str) -> list[str]:
    out = _not_run(c, _CONTAINER_KNOWN, at)
    for j, e in enumerate(c.get("env") or []):
        source = e.get("valueFrom") if isinstance(e, dict) else None
        if isinstance(source, dict):
            out += [f"{at}.env[{j}].valueFrom.{k}" for k, v in source.items()
                    if _given(v) and k not in _VALUE_FROM_RUN]
    out += probes.unimplemented(c, at)
    sc = c.get("securityContext")
    out += _not_run(sc, _SECURITY_KNOWN, f"{at}.securityContext")
    if isinstance(sc, dict):
        # Capabilities can be dropped (as an ECS task's can); a group needs its user.
        out += _not_run(sc.get("capabilities"), {"drop": None},
                        f"{at}.securityContext.capabilities")
        if sc.get("runAsGroup") is not None and sc.get("runAsUser") is None:
            out.append(f"{at}.securityContext.runAsGroup")
    for p in c.get("ports") or []:
        out += _not_run(p, _PORT_KNOWN, f"{at}.ports")
    res = c.get("resources") or {}
    if isinstance(res, dict):
        out += _not_run(res, {"requests": None, "limits": None}, f"{at}.resources")
        for part in ("requests", "limits"):
            out += [f"{at}.resources.{part}.{k}" for k in res.get(part) or {}
                    if k not in _RESOURCES_RUN and not k.endswith(_GPU_SUFFIX)]
    return out


def unsupported(pod: dict[str, Any], fargo_runs: bool = True) -> list[str]:
    """Why Fargate cannot run this pod, grouped the way EKS words it; empty when it can.
    With fargo_runs (fargo itself is to run it), also what fargo does not implement."""
    spec = pod.get("spec") or {}
    fields = [f for key, f in (("hostNetwork", "HostNetwork"), ("hostPID", "HostPID"),
                               ("hostIPC", "HostIPC")) if spec.get(key)]
    if fargo_runs:
        fields += unimplemented(pod)
    privileged, host_ports, gpus = [], [], []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if ((c.get("securityContext") or {}).get("privileged")):
            privileged.append(c.get("name", "?"))
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                host_ports.append(f"{c.get('name', '?')}:{p['hostPort']}")
        res = c.get("resources") or {}
        for key in list(res.get("limits") or {}) + list(res.get("requests") or {}):
            if key.endswith(_GPU_SUFFIX) and key not in gpus:
                gpus.append(key)
    parts = []
    if fields:
        parts.append("fields not supported: " + ", ".join(fields))
    if privileged:
        parts.append("invalid SecurityContext fields: Privileged (containers: "
                     + ", ".join(privileged) + ")")
    if host_ports:
        parts.append("fields not supported: HostPort (" + ", ".join(host_ports) + ")")
    bad_volumes = [v.get("name", "?") for v in spec.get("volumes") or []
                   if set(v) - _SUPPORTED_VOLUMES]
    if bad_volumes:
        parts.append("volumes not supported: " + ", ".join(
            f"{n} is of an unsupported volume Type" for n in bad_volumes))
    if gpus:
        parts.append("resources not supported: " + ", ".join(gpus))
    owners = [o for o in (pod.get("metadata") or {}).get("ownerReferences") or []
              if o.get("kind") == "DaemonSet"]
    if owners:
        parts.append("DaemonSet pods are not supported")
    return parts


def verdict(pod: dict[str, Any], profiles: list[dict[str, Any]],
            namespace: str, fargo_runs: bool = True) -> str | None:
    """None when the pod may be created; otherwise the refusal message. Pods no profile
    matches are not Fargate's to judge."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if choose_profile(profiles, namespace, labels) is None:
        return None
    parts = unsupported(pod, fargo_runs)
    return "Pod not supported on Fargate: " + "; ".join(parts) if parts else None


def _list_index(key: str, size: int) -> int:
    """An array index of a JSON pointer (RFC 6901: digits, no leading zero), below
    `size`; ValueError otherwise (Python's negative indices and huge numbers are not)."""
    if not (key.isascii() and key.isdigit()) or (len(key) > 1 and key[0] == "0") \
            or len(key) > 18 or int(key) >= size:
        raise ValueError(f"array index {key[:40]!r} is out of bounds")
    return int(key)


def apply_json_patch(doc: Any, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/remove/replace/test on plain JSON (enough for our own patches and PATCH
    requests); ValueError on anything it cannot apply."""
    import copy

    doc = copy.deepcopy(doc)
    for op in patch:
        if not isinstance(op, dict) or "path" not in op or "op" not in op:
            raise ValueError("each JSON patch operation needs op and path")
        path = str(op["path"])
        if path == "":
            if op["op"] in ("add", "replace"):
                doc = copy.deepcopy(op["value"])
                continue
            raise ValueError(f"unsupported operation on the root: {op['op']}")
        if not path.startswith("/"):
            raise ValueError(f"a JSON pointer must be empty or start with '/': {path[:60]!r}")
        keys = [k.replace("~1", "/").replace("~0", "~") for k in path[1:].split("/")]
        parent = doc
        for k in keys[:-1]:
            parent = parent[_list_index(k, len(parent))] if isinstance(parent, list) \
                else parent[k]
        last = keys[-1]
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" and kind == "add" else \
                _list_index(last, len(parent) + (kind == "add"))
            if kind == "add":
                parent.insert(idx, copy.deepcopy(op["value"]))
            elif kind == "remove":
                parent.pop(idx)
            elif kind == "replace":
                parent[idx] = copy.deepcopy(op["value"])
            elif kind == "test":
                if parent[idx] != op.get("value"):
                    raise ValueError(f"test failed at {path}")
            else:
                raise ValueError(f"unsupported JSON patch operation {kind!r}")
        elif isinstance(parent, dict):
            if kind == "add":
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "remove":
                del parent[last]
            elif kind == "replace":
                if last not in parent:
                    raise ValueError(f"replace of a missing member {path}")
                parent[last] = copy.deepcopy(op["value"])
            elif kind == "test":
                if parent.get(last) != op.get("value"):
                    raise ValueError(f"test failed at {path}")
            else:
                raise ValueError(f"unsupported JSON patch operation {kind!r}")
        else:
            raise ValueError(f"path {path} does not lead into an object or array")
    return doc
