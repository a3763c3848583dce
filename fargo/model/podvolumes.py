"""A pod's volumes and what its containers take from ConfigMaps and Secrets (pure): the
apiserver's checks of `volumes`, `volumeMounts`, `envFrom` and the two key selectors; what
fargo runs of them; the task volumes and mounts they become (port VolumeSpec, VolumeMount);
and each volume's files and each container's variables as kubelet makes them from the objects
they name (the caller reads those from the store, and mints tokens)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..port.data import VolumeFile, VolumeMount, VolumeSpec
from . import quantity
from .configmap import key_error
from .downward import Placed, resource_value
from .kubeobj import name_error
from .secret import decoded

SOURCES = ("emptyDir", "configMap", "secret", "projected", "downwardAPI")
# Volume types Fargate takes that fargo does not run: refused by name.
NOT_RUN = ("persistentVolumeClaim", "nfs", "csi", "ephemeral")
PROJECTIONS = ("configMap", "secret", "downwardAPI", "serviceAccountToken")
DEFAULT_MODE = 0o644
MAX_MODE = 0o777
MIN_TOKEN_EXPIRY = 600
MAX_TOKEN_EXPIRY = 1 << 32
DOWNWARD_VOLUME_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name",
                         "metadata.namespace", "metadata.uid")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")
_MOUNT_KNOWN = {"name": None, "mountPath": None, "readOnly": None, "subPath": None,
                "mountPropagation": ("None",), "recursiveReadOnly": ("Disabled",)}
Errors = list[tuple[str, str]]


# ---- the apiserver's checks
def _local_path_errors(path: Any, at: str, descending: bool = False) -> Errors:
    """A path inside a volume: relative, no '..' element (and for items: not starting with
    '..', which kubelet's own entries use)."""
    if not isinstance(path, str) or not path:
        return [] if descending else [(at, "Required value")]
    if path.startswith("/"):
        return [(at, f'Invalid value: "{path[:200]}": must be a relative path')]
    if ".." in path.split("/"):
        return [(at, f"Invalid value: \"{path[:200]}\": must not contain '..'")]
    if not descending and path.startswith(".."):
        return [(at, f"Invalid value: \"{path[:200]}\": must not start with '..'")]
    return []


def _mode_errors(mode: Any, at: str) -> Errors:
    if mode is None:
        return []
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= MAX_MODE:
        return [(at, f"Invalid value: {str(mode)[:20]}: must be a number between 0 and 0777 "
                 "(octal), both inclusive")]
    return []


def _items_errors(items: Any, at: str, paths: set[str]) -> Errors:
    if items is None:
        return []
    if not isinstance(items, list):
        return [(at, "Invalid value: must be a list")]
    out: Errors = []
    for i, item in enumerate(items):
        where = f"{at}[{i}]"
        if not isinstance(item, dict):
            out.append((where, "Invalid value: must be an object"))
            continue
        key = item.get("key")
        if not isinstance(key, str) or not key:
            out.append((f"{where}.key", "Required value"))
        else:
            err = key_error(key)
            if err:
                out.append((f"{where}.key", err))
        out += _local_path_errors(item.get("path"), f"{where}.path")
        out += _mode_errors(item.get("mode"), f"{where}.mode")
        if isinstance(item.get("path"), str):
            if item["path"] in paths:
                out.append((f"{where}.path", f'Invalid value: "{item["path"][:200]}": '
                            "conflicting duplicate paths"))
            paths.add(item["path"])
    return out


def _downward_items_errors(items: Any, at: str, names: set[str], paths: set[str]) -> Errors:
    if items is None:
        return []
    if not isinstance(items, list):
        return [(at, "Invalid value: must be a list")]
    out: Errors = []
    for i, item in enumerate(items):
        where = f"{at}[{i}]"
        if not isinstance(item, dict):
            out.append((where, "Invalid value: must be an object"))
            continue
        out += _local_path_errors(item.get("path"), f"{where}.path")
        out += _mode_errors(item.get("mode"), f"{where}.mode")
        if isinstance(item.get("path"), str):
            if item["path"] in paths:
                out.append((f"{where}.path", f'Invalid value: "{item["path"][:200]}": '
                            "conflicting duplicate paths"))
            paths.add(item["path"])
        given = [k for k in ("fieldRef", "resourceFieldRef") if item.get(k) is not None]
        if len(given) != 1:
            out.append((where, "Invalid value: \"\": must specify exactly one of fieldRef "
                        "and resourceFieldRef" if given else
                        "Required value: one of fieldRef and resourceFieldRef is required"))
            continue
        ref = item[given[0]]
        if not isinstance(ref, dict):
            out.append((f"{where}.{given[0]}", "Invalid value: must be an object"))
        elif given[0] == "fieldRef":
            path = ref.get("fieldPath")
            if ref.get("apiVersion", "v1") != "v1":
                out.append((f"{where}.fieldRef.apiVersion", f"Unsupported value: "
                            f"{str(ref.get('apiVersion'))[:40]!r}: supported values: \"v1\""))
            if not isinstance(path, str) or not path:
                out.append((f"{where}.fieldRef.fieldPath", "Required value"))
            elif not _SUBSCRIPT.match(path) and path not in DOWNWARD_VOLUME_PATHS:
                out.append((f"{where}.fieldRef.fieldPath", f"Unsupported value: "
                            f"{path[:80]!r}: supported values: "
                            + ", ".join(f'"{p}"' for p in DOWNWARD_VOLUME_PATHS)))
        else:
            container = ref.get("containerName")
            if not container:
                out.append((f"{where}.resourceFieldRef.containerName", "Required value"))
            elif container not in names:
                out.append((f"{where}.resourceFieldRef.containerName", f"Invalid value: "
                            f"{str(container)[:80]!r}: must be the name of one of the pod's "
                            "containers"))
            if ref.get("resource") not in ("limits.cpu", "limits.memory", "requests.cpu",
                                           "requests.memory", "limits.ephemeral-storage",
                                           "requests.ephemeral-storage"):
                out.append((f"{where}.resourceFieldRef.resource", f"Unsupported value: "
                            f"{str(ref.get('resource'))[:80]!r}"))
    return out


def _token_errors(src: Any, at: str, paths: set[str]) -> Errors:
    if not isinstance(src, dict):
        return [(at, "Invalid value: must be an object")]
    out = _local_path_errors(src.get("path"), f"{at}.path")
    if isinstance(src.get("path"), str):
        if src["path"] in paths:
            out.append((f"{at}.path", f'Invalid value: "{src["path"][:200]}": conflicting '
                        "duplicate paths"))
        paths.add(src["path"])
    expiry = src.get("expirationSeconds")
    if expiry is not None:
        if not isinstance(expiry, int) or isinstance(expiry, bool):
            out.append((f"{at}.expirationSeconds", "Invalid value: must be an integer"))
        elif expiry < MIN_TOKEN_EXPIRY:
            out.append((f"{at}.expirationSeconds", f"Invalid value: {expiry}: may not specify "
                        "a duration less than 10 minutes"))
        elif expiry > MAX_TOKEN_EXPIRY:
            out.append((f"{at}.expirationSeconds", f"Invalid value: {expiry}: may not specify "
                        "a duration larger than 2^32 seconds"))
    if src.get("audience") is not None and not isinstance(src["audience"], str):
        out.append((f"{at}.audience", "Invalid value: must be a string"))
    return out


def _named(src: dict[str, Any], key: str, at: str) -> Errors:
    name = src.get(key)
    if not isinstance(name, str) or not name:
        return [(f"{at}.{key}", "Required value")]
    return []


def _source_errors(kind: str, src: Any, at: str, names: set[str]) -> Errors:
    if not isinstance(src, dict):
        return [(at, "Invalid value: must be an object")]
    out: Errors = []
    if kind == "emptyDir":
        if src.get("medium") not in (None, "", "Memory"):
            out.append((f"{at}.medium", f"Unsupported value: {str(src['medium'])[:40]!r}: "
                        'supported values: "", "Memory"'))
        if src.get("sizeLimit") is not None:
            try:
                if quantity.parse(src["sizeLimit"]) <= 0:
                    raise ValueError
            except ValueError:
                out.append((f"{at}.sizeLimit", f"Invalid value: "
                            f"{str(src['sizeLimit'])[:40]!r}: must be a positive quantity"))
    elif kind in ("configMap", "secret"):
        out += _named(src, "name" if kind == "configMap" else "secretName", at)
        out += _items_errors(src.get("items"), f"{at}.items", set())
        out += _mode_errors(src.get("defaultMode"), f"{at}.defaultMode")
    elif kind == "downwardAPI":
        out += _downward_items_errors(src.get("items"), f"{at}.items", names, set())
        out += _mode_errors(src.get("defaultMode"), f"{at}.defaultMode")
    elif kind == "projected":
        out += _mode_errors(src.get("defaultMode"), f"{at}.defaultMode")
        sources = src.get("sources")
        if sources is not None and not isinstance(sources, list):
            return out + [(f"{at}.sources", "Invalid value: must be a list")]
        paths: set[str] = set()
        for j, proj in enumerate(sources or []):
            where = f"{at}.sources[{j}]"
            given = [k for k in proj if proj[k] is not None] if isinstance(proj, dict) else []
            if len(given) != 1:
                out.append((where, "Invalid value: must specify exactly one projection type"
                            if given else "Required value: must specify one projection type"))
                continue
            part, psrc = given[0], proj[given[0]]
            if part not in PROJECTIONS:
                continue  # refused by name (unimplemented), not invalid
            at_part = f"{where}.{part}"
            if not isinstance(psrc, dict):
                out.append((at_part, "Invalid value: must be an object"))
            elif part in ("configMap", "secret"):
                out += _named(psrc, "name", at_part)
                out += _items_errors(psrc.get("items"), f"{at_part}.items", paths)
            elif part == "downwardAPI":
                out += _downward_items_errors(psrc.get("items"), f"{at_part}.items", names,
                                              paths)
            else:
                out += _token_errors(psrc, at_part, paths)
    return out


def _volume_errors(volumes: Any, names: set[str]) -> tuple[Errors, set[str]]:
    if volumes is None:
        return [], set()
    if not isinstance(volumes, list):
        return [("spec.volumes", "Invalid value: must be a list")], set()
    out: Errors = []
    seen: set[str] = set()
    for i, v in enumerate(volumes):
        at = f"spec.volumes[{i}]"
        if not isinstance(v, dict):
            out.append((at, "Invalid value: must be an object"))
            continue
        err = name_error(v.get("name"), label=True)
        if err:
            out.append((f"{at}.name", err if v.get("name") else "Required value"))
        elif v["name"] in seen:
            out.append((f"{at}.name", f'Duplicate value: "{v["name"]}"'))
        else:
            seen.add(v["name"])
        given = [k for k, val in v.items() if k != "name" and val is not None]
        if not given:
            out.append((at, "Required value: must specify a volume type"))
        elif len(given) > 1:
            out.append((f"{at}.{given[1]}", "Forbidden: may not specify more than 1 volume "
                        "type"))
        elif given[0] in SOURCES:
            out += _source_errors(given[0], v[given[0]], f"{at}.{given[0]}", names)
    return out, seen


def _mount_errors(c: dict[str, Any], at: str, volumes: set[str]) -> Errors:
    mounts = c.get("volumeMounts")
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        return [(f"{at}.volumeMounts", "Invalid value: must be a list")]
    out: Errors = []
    paths: set[str] = set()
    for k, m in enumerate(mounts):
        where = f"{at}.volumeMounts[{k}]"
        if not isinstance(m, dict):
            out.append((where, "Invalid value: must be an object"))
            continue
        name = m.get("name")
        if not isinstance(name, str) or not name:
            out.append((f"{where}.name", "Required value"))
        elif name not in volumes:
            out.append((f"{where}.name", f'Not found: "{name[:80]}"'))
        path = m.get("mountPath")
        if not isinstance(path, str) or not path:
            out.append((f"{where}.mountPath", "Required value"))
        elif path in paths:
            out.append((f"{where}.mountPath", f'Invalid value: "{path[:200]}": must be '
                        "unique"))
        else:
            paths.add(path)
        if m.get("subPath") is not None and not isinstance(m["subPath"], str):
            out.append((f"{where}.subPath", "Invalid value: must be a string"))
        else:
            out += _local_path_errors(m.get("subPath"), f"{where}.subPath", descending=True)
        if m.get("readOnly") is not None and not isinstance(m["readOnly"], bool):
            out.append((f"{where}.readOnly", "Invalid value: must be a boolean"))
    return out


def _env_var_name_error(name: str) -> bool:
    """Whether a variable's name is refused: printable ASCII, no '=' (1.32's relaxed rule)."""
    return not name or "=" in name or not all(" " <= ch <= "~" for ch in name)


def _env_errors(c: dict[str, Any], at: str) -> Errors:
    out: Errors = []
    for j, e in enumerate(c.get("env") or []):
        source = e.get("valueFrom") if isinstance(e, dict) else None
        if not isinstance(source, dict):
            continue
        for part in ("configMapKeyRef", "secretKeyRef"):
            ref = source.get(part)
            if ref is None:
                continue
            where = f"{at}.env[{j}].valueFrom.{part}"
            if not isinstance(ref, dict):
                out.append((where, "Invalid value: must be an object"))
                continue
            out += _named(ref, "name", where)
            key = ref.get("key")
            if not isinstance(key, str) or not key:
                out.append((f"{where}.key", "Required value"))
            else:
                err = key_error(key)
                if err:
                    out.append((f"{where}.key", err))
            if ref.get("optional") is not None and not isinstance(ref["optional"], bool):
                out.append((f"{where}.optional", "Invalid value: must be a boolean"))
    env_from = c.get("envFrom")
    if env_from is None:
        return out
    if not isinstance(env_from, list):
        return out + [(f"{at}.envFrom", "Invalid value: must be a list")]
    for j, e in enumerate(env_from):
        where = f"{at}.envFrom[{j}]"
        if not isinstance(e, dict):
            out.append((where, "Invalid value: must be an object"))
            continue
        given = [k for k in ("configMapRef", "secretRef") if e.get(k) is not None]
        if len(given) != 1:
            out.append((where, "Invalid value: \"\": may not have more than one field "
                        "specified at a time" if given else
                        "Invalid value: \"\": must specify one of: `configMapRef` or "
                        "`secretRef`"))
            continue
        ref = e[given[0]]
        if not isinstance(ref, dict):
            out.append((f"{where}.{given[0]}", "Invalid value: must be an object"))
            continue
        out += _named(ref, "name", f"{where}.{given[0]}")
        prefix = e.get("prefix")
        if prefix not in (None, "") and (not isinstance(prefix, str)
                                          or _env_var_name_error(prefix)):
            out.append((f"{where}.prefix", f'Invalid value: "{str(prefix)[:80]}": a valid '
                        "environment variable name must consist only of printable ASCII "
                        "characters other than '='"))
    return out


def spec_errors(spec: dict[str, Any]) -> Errors:
    """The apiserver's 422 causes for a pod's volumes, mounts, envFrom and key selectors."""
    groups = [(g, spec.get(g) or []) for g in ("initContainers", "containers")]
    names = {str(c.get("name")) for _, cs in groups if isinstance(cs, list) for c in cs
             if isinstance(c, dict)}
    out, volumes = _volume_errors(spec.get("volumes"), names)
    for group, containers in groups:
        if not isinstance(containers, list):
            continue
        for i, c in enumerate(containers):
            if isinstance(c, dict):
                out += _mount_errors(c, f"spec.{group}[{i}]", volumes)
                out += _env_errors(c, f"spec.{group}[{i}]")
    return out


# ---- what fargo runs
def _given(value: Any) -> bool:
    return value not in (None, False, [], {}, "")


def unimplemented(spec: dict[str, Any]) -> list[str]:
    """The field paths of a pod's volumes and mounts fargo would have to ignore."""
    out: list[str] = []
    for i, v in enumerate(spec.get("volumes") or []):
        if not isinstance(v, dict):
            continue
        at = f"spec.volumes[{i}]"
        out += [f"{at}.{k}" for k in NOT_RUN if v.get(k) is not None]
        for j, proj in enumerate((v.get("projected") or {}).get("sources") or []):
            if isinstance(proj, dict):
                out += [f"{at}.projected.sources[{j}].{k}" for k, val in proj.items()
                        if k not in PROJECTIONS and _given(val)]
        for k, key in (("configMap", "name"), ("secret", "secretName")):
            src = v.get(k)
            if isinstance(src, dict):
                out += [f"{at}.{k}.{m}" for m, val in src.items() if _given(val) and m not in
                        (key, "items", "defaultMode", "optional")]
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            if not isinstance(c, dict):
                continue
            for j, m in enumerate(c.get("volumeMounts") or []):
                if isinstance(m, dict):
                    out += [f"spec.{group}[{i}].volumeMounts[{j}].{name}"
                            for name, val in m.items() if _given(val) and (
                                name not in _MOUNT_KNOWN or (
                                    _MOUNT_KNOWN[name] is not None
                                    and val not in (_MOUNT_KNOWN[name] or ())))]
    return out


# ---- the task's volumes and each container's mounts
def _source(volume: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the volume's type, its source); ("", {}) for a type fargo does not run."""
    kind = next((k for k in SOURCES if volume.get(k) is not None), "")
    return kind, (volume[kind] or {}) if kind else {}


def volume_specs(spec: dict[str, Any], memory_mib: int) -> tuple[VolumeSpec, ...]:
    """The task volumes a pod's volumes become; memory_mib: the pod's (an emptyDir in
    memory is never larger)."""
    out = []
    pod_bytes = memory_mib << 20
    for v in spec.get("volumes") or []:
        kind, src = _source(v)
        if not kind:
            continue  # refused by admission: never run
        if kind != "emptyDir":
            out.append(VolumeSpec(v["name"], "files", mode=0o777))
        elif src.get("medium") == "Memory":
            limit = src.get("sizeLimit")
            size = min(int(quantity.parse(limit)), pod_bytes) if limit else pod_bytes
            out.append(VolumeSpec(v["name"], "memory", size_bytes=max(size, 4096)))
        else:
            out.append(VolumeSpec(v["name"], "scratch", mode=0o777))
    return tuple(out)


def disk_limits(spec: dict[str, Any]) -> dict[str, tuple[int, str]]:
    """The sizeLimit (bytes, and as given) of each emptyDir on the task's storage, by
    volume name: kubelet evicts a pod whose emptyDir grows past it."""
    out = {}
    for v in spec.get("volumes") or []:
        kind, src = _source(v)
        if kind == "emptyDir" and src.get("medium") != "Memory" and src.get("sizeLimit"):
            out[v["name"]] = (int(quantity.parse(src["sizeLimit"])), str(src["sizeLimit"]))
    return out


def mount_points(c: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A pod container's volumeMounts as the container definition's mountPoints (ECS's shape,
    with subPath); config volumes always read-only, as kubelet mounts them."""
    kinds = {v["name"]: _source(v)[0] for v in spec.get("volumes") or []
             if isinstance(v, dict) and any(v.get(k) is not None for k in SOURCES)}
    out = []
    for m in c.get("volumeMounts") or []:
        point: dict[str, Any] = {"sourceVolume": m["name"], "containerPath": m["mountPath"],
                                 "readOnly": bool(m.get("readOnly"))
                                 or kinds.get(m["name"]) not in (None, "emptyDir")}
        if m.get("subPath"):
            point["subPath"] = m["subPath"]
        out.append(point)
    return out


def task_mounts(plan: list[dict[str, Any]], cdef: dict[str, Any],
                image_volumes: Any = None) -> list[VolumeMount]:
    """A container definition's mountPoints, and those of the containers named in its
    volumesFrom (read-only when either says so), as the port's mounts, parents first.
    image_volumes: the image config's Volumes (an ECS bind mount at one of them is seeded
    with what the image holds there)."""
    seeded = set(image_volumes or {}) if isinstance(image_volumes, dict) else set()
    points = [(mp, False) for mp in cdef.get("mountPoints") or []]
    by_name = {c["name"]: c for c in plan}
    for vf in cdef.get("volumesFrom") or []:
        other = by_name.get(vf.get("sourceContainer"))
        for mp in (other or {}).get("mountPoints") or []:
            points.append((mp, bool(vf.get("readOnly"))))
    out: dict[str, VolumeMount] = {}
    for mp, ro in points:
        path = str(mp["containerPath"]).rstrip("/") or "/"
        if path in out:
            continue  # the container's own mount at a path wins over one it inherits
        out[path] = VolumeMount(volume=mp["sourceVolume"], path=path,
                                readonly=bool(mp.get("readOnly")) or ro,
                                sub_path=str(mp.get("subPath") or ""),
                                seed=path in seeded and not mp.get("subPath"))
    return sorted(out.values(), key=lambda m: m.path.count("/") if m.path != "/" else 0)


def ecs_volume_specs(plan: list[dict[str, Any]]) -> tuple[VolumeSpec, ...]:
    """An ECS task's bind-mount volumes (on Fargate, every volume is one: an empty directory
    of the task's storage, root's and 0755 as Fargate makes it), those its containers mount."""
    names = dict.fromkeys(mp["sourceVolume"] for c in plan for mp in c.get("mountPoints") or [])
    return tuple(VolumeSpec(n, "scratch", mode=0o755) for n in names)


# ---- contents, from the objects they name
class Missing(Exception):
    """A source kubelet cannot make yet; the message is kubelet's."""


Token = Callable[[str, int], str]  # (audience, expirationSeconds) -> a token for the pod


@dataclass
class Sources:
    """What a pod's volumes and variables are made from: its namespace's ConfigMaps and
    Secrets by name (None: no such object), and tokens for its service account."""

    namespace: str
    configmap: Callable[[str], dict[str, Any] | None]
    secret: Callable[[str], dict[str, Any] | None]
    token: Token | None = None
    invalid_env: list[str] = field(default_factory=list)  # envFrom keys skipped, for events


def _cm_values(cm: dict[str, Any]) -> dict[str, bytes]:
    out = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def _mode_of(item: dict[str, Any], default: int) -> int:
    mode = item.get("mode")
    return default if mode is None else int(mode)


def _key_files(values: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int,
               optional: bool, what: str) -> list[VolumeFile]:
    if not items:
        return [VolumeFile(k, v, mode) for k, v in sorted(values.items())]
    out = []
    for item in items:
        if item["key"] not in values:
            if optional:
                continue
            raise Missing(f"{what} references non-existent config key: {item['key']}"
                          if what == "configmap" else
                          f"references non-existent secret key: {item['key']}")
        out.append(VolumeFile(item["path"], values[item["key"]],
                              _mode_of(item, mode)))
    return out


def _object_files(kind: str, src: dict[str, Any], sources: Sources,
                  mode: int) -> list[VolumeFile]:
    name = src.get("name") if kind == "configMap" else src.get("secretName", src.get("name"))
    optional = bool(src.get("optional"))
    if kind == "configMap":
        obj = sources.configmap(str(name))
        if obj is None:
            if optional:
                return []
            raise Missing(f'configmap "{name}" not found')
        return _key_files(_cm_values(obj), src.get("items"), mode, optional, "configmap")
    obj = sources.secret(str(name))
    if obj is None:
        if optional:
            return []
        raise Missing(f'secret "{name}" not found')
    return _key_files(decoded(obj), src.get("items"), mode, optional, "secret")


def _quoted(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _downward_value(pod: dict[str, Any], item: dict[str, Any], placed: Placed) -> bytes:
    meta = pod.get("metadata") or {}
    if item.get("fieldRef") is not None:
        path = item["fieldRef"]["fieldPath"]
        sub = _SUBSCRIPT.match(path)
        if sub:
            return str((meta.get(sub.group(1)) or {}).get(sub.group(2), "")).encode()
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".", 1)[1]) or {}
            return "\n".join(f"{k}={_quoted(str(v))}" for k, v in sorted(values.items())).encode()
        return str(meta.get(path.split(".", 1)[1]) or "").encode()
    ref = item["resourceFieldRef"]
    spec = pod["spec"]
    container = next(c for c in (spec.get("initContainers") or []) + spec["containers"]
                     if c["name"] == ref["containerName"])
    return resource_value(spec, container, ref, placed).encode()


def _downward_files(pod: dict[str, Any], items: list[dict[str, Any]], mode: int,
                    placed: Placed) -> list[VolumeFile]:
    return [VolumeFile(item["path"], _downward_value(pod, item, placed),
                       _mode_of(item, mode))
            for item in items or []]


def volume_files(pod: dict[str, Any], volume: dict[str, Any], sources: Sources,
                 placed: Placed) -> list[VolumeFile]:
    """A config volume's files as kubelet writes them; Missing (kubelet's words) when an
    object or key it needs is not there."""
    kind, src = _source(volume)
    mode = src.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else mode
    if kind in ("configMap", "secret"):
        return _object_files(kind, src, sources, mode)
    if kind == "downwardAPI":
        return _downward_files(pod, src.get("items") or [], mode, placed)
    out: list[VolumeFile] = []
    for proj in src.get("sources") or []:
        if proj.get("configMap") is not None:
            out += _object_files("configMap", proj["configMap"], sources, mode)
        elif proj.get("secret") is not None:
            out += _object_files("secret", {**proj["secret"],
                                            "secretName": proj["secret"].get("name")},
                                 sources, mode)
        elif proj.get("downwardAPI") is not None:
            out += _downward_files(pod, proj["downwardAPI"].get("items") or [], mode, placed)
        elif proj.get("serviceAccountToken") is not None:
            tok = proj["serviceAccountToken"]
            if sources.token is None:
                raise Missing("no service account token can be issued for this pod")
            token = sources.token(str(tok.get("audience") or ""),
                                  int(tok.get("expirationSeconds") or 3600))
            out.append(VolumeFile(tok["path"], token.encode(), mode))
    return out


def config_volumes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's volumes whose files are made from objects (all but emptyDir)."""
    return [v for v in spec.get("volumes") or [] if _source(v)[0] not in ("", "emptyDir")]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def container_env(c: dict[str, Any], sources: Sources) -> dict[str, str]:
    """The variables a container takes from ConfigMaps and Secrets, in kubelet's order:
    envFrom first, then env (where a later one wins). A name given by another source
    (fieldRef...) is left out so the plan's value stands. Missing when a source that is not
    optional is not there (the container waits: CreateContainerConfigError)."""
    ns = sources.namespace
    out: dict[str, str] = {}
    for e in c.get("envFrom") or []:
        prefix = e.get("prefix") or ""
        if e.get("configMapRef") is not None:
            ref, kind = e["configMapRef"], "configmap"
            obj = sources.configmap(ref["name"])
            found = dict((obj or {}).get("data") or {})
        else:
            ref, kind = e["secretRef"], "secret"
            obj = sources.secret(ref["name"])
            found = {k: _text(v) for k, v in decoded(obj or {}).items()}
        if obj is None:
            if ref.get("optional"):
                continue
            raise Missing(f'{kind} "{ref["name"]}" not found')
        for key, value in found.items():
            name = prefix + key
            if _env_var_name_error(name):
                sources.invalid_env.append(name)
                continue
            out[name] = value
    for e in c.get("env") or []:
        source = e.get("valueFrom")
        if source is None:
            out[e["name"]] = e.get("value") or ""
            continue
        ref = source.get("configMapKeyRef") or source.get("secretKeyRef")
        if ref is None:
            out.pop(e["name"], None)  # the downward API's: the plan holds its value
            continue
        values: dict[str, str] | None = None
        if source.get("configMapKeyRef") is not None:
            cm = sources.configmap(ref["name"])
            kind, label = "configmap", "ConfigMap"
            if cm is not None:
                values = dict(cm.get("data") or {})
        else:
            secret = sources.secret(ref["name"])
            kind, label = "secret", "Secret"
            if secret is not None:
                values = {k: _text(v) for k, v in decoded(secret).items()}
        if values is None:
            if ref.get("optional"):
                continue
            raise Missing(f'{kind} "{ref["name"]}" not found')
        if ref["key"] not in values:
            if ref.get("optional"):
                continue
            raise Missing(f"couldn't find key {ref['key']} in {label} {ns}/{ref['name']}")
        out[e["name"]] = values[ref["key"]]
    return out


def uses_objects(c: dict[str, Any]) -> bool:
    """Whether a container's variables come from ConfigMaps or Secrets."""
    return bool(c.get("envFrom")) or any(
        isinstance(e.get("valueFrom"), dict) and (
            e["valueFrom"].get("configMapKeyRef") is not None
            or e["valueFrom"].get("secretKeyRef") is not None) for e in c.get("env") or [])

