"""The metadata rules every kind shares, as the apiserver applies them on create and update:
generateName, owner references and finalizers checked, what a write may not change, when
generation moves, and what a deletion does with finalizers. Pure: ids and times come in."""

from __future__ import annotations

import copy
from typing import Any

from .kubeerrors import KubeError, invalid
from .kubeobj import _SUBDOMAIN, check_meta

Obj = dict[str, Any]
# The apiserver's alphabet for generateName's suffix: no vowels, no look-alikes.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
SUFFIX_LEN = 5
MAX_GENERATED_PREFIX = 63 - SUFFIX_LEN
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
PROPAGATIONS = ("Orphan", "Background", "Foreground")
# What a client may set in metadata; the rest is the server's to stamp.
# managedFields are the server's too: model/ssa.py works them out (from what the client
# sent, if it sent any) before the write, and the write keeps what it is given.
_CLIENT_META = ("name", "generateName", "namespace", "labels", "annotations",
                "ownerReferences", "finalizers", "managedFields")


def conflict(plural: str, name: str) -> KubeError:
    return KubeError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": '
                     "the object has been modified; please apply your changes to the latest "
                     "version and try again", {"name": name, "kind": plural})


def assign_name(body: Any, suffix: str) -> None:
    """A body with generateName and no name gets generateName + suffix (the caller draws
    the suffix from NAME_ALPHABET)."""
    if not isinstance(body, dict):
        return
    meta = body.get("metadata")
    if isinstance(meta, dict) and not meta.get("name") and isinstance(
            meta.get("generateName"), str) and meta["generateName"]:
        # The apiserver's generator keeps 58 characters of the prefix, whatever the kind.
        meta["name"] = meta["generateName"][:MAX_GENERATED_PREFIX] + suffix


def _owner_errors(refs: Any) -> list[tuple[str, str]]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [("metadata.ownerReferences", "Invalid value: must be a list")]
    out: list[tuple[str, str]] = []
    controllers = 0
    for i, ref in enumerate(refs):
        at = f"metadata.ownerReferences[{i}]"
        if not isinstance(ref, dict):
            out.append((at, "Invalid value: must be an object"))
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref.get(key), str) or not ref[key]:
                out.append((f"{at}.{key}", "Required value"))
        for key in ("controller", "blockOwnerDeletion"):
            if key in ref and not isinstance(ref[key], bool | None):
                out.append((f"{at}.{key}", "Invalid value: must be a boolean"))
        controllers += ref.get("controller") is True
    if controllers > 1:
        out.append(("metadata.ownerReferences", "Invalid value: Only one reference can have "
                    "Controller set to true"))
    return out


def _finalizer_errors(finalizers: Any) -> list[tuple[str, str]]:
    if finalizers is None:
        return []
    if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
        return [("metadata.finalizers", "Invalid value: must be a list of strings")]
    out = []
    for i, f in enumerate(finalizers):
        prefix, _, name = f.rpartition("/")
        if not name or len(name) > 63 or (prefix and not _SUBDOMAIN.match(prefix)):
            out.append((f"metadata.finalizers[{i}]", f"Invalid value: {f[:80]!r}: a "
                        "qualified name must consist of alphanumeric characters, '-', '_' or "
                        "'.'"))
        elif "/" not in f and f not in (ORPHAN, FOREGROUND, "kubernetes"):
            out.append((f"metadata.finalizers[{i}]", f"Invalid value: {f!r}: name is neither "
                        "a standard finalizer name nor is it fully qualified"))
    return out


def check_metadata(obj: Obj, kind: str, label_name: bool = False) -> str:
    """check_meta's rules plus owner references and finalizers; returns the name."""
    name = check_meta(obj, kind, label_name)
    meta = obj["metadata"]
    errors = _owner_errors(meta.get("ownerReferences"))
    errors += _finalizer_errors(meta.get("finalizers"))
    if errors:
        raise invalid(kind, name, errors)
    return name


def new_metadata(meta: Obj, ns: str, uid: str, now: str) -> Obj:
    """The metadata a created object is stored with: what the client may set, plus the
    server's stamps (the resourceVersion is the store's)."""
    out = {k: copy.deepcopy(meta[k]) for k in _CLIENT_META if meta.get(k) not in (None, "")}
    if ns:
        out["namespace"] = ns
    else:
        out.pop("namespace", None)
    out["uid"] = uid
    out["creationTimestamp"] = now
    return out


def updated_metadata(old: Obj, new: Obj, plural: str) -> Obj:
    """The metadata an update stores: the client's labels, annotations, owner references and
    finalizers over the stored stamps. A stale resourceVersion is a 409; the name, namespace,
    uid and creation time may not change (an update that leaves them out keeps them)."""
    name = old["name"]
    rv = new.get("resourceVersion")
    if rv not in (None, "") and rv != old.get("resourceVersion"):
        raise conflict(plural, name)
    errors = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if new.get(key) not in (None, "") and new[key] != old.get(key):
            errors.append((f"metadata.{key}", "Invalid value: field is immutable"))
    if errors:
        raise invalid(plural, name, errors)
    out = copy.deepcopy(old)
    for key in ("labels", "annotations", "ownerReferences", "finalizers"):
        if new.get(key):
            out[key] = copy.deepcopy(new[key])
        else:
            out.pop(key, None)
    if "managedFields" in new:  # a writer that leaves them out keeps the stored ones
        if new["managedFields"]:
            out["managedFields"] = copy.deepcopy(new["managedFields"])
        else:
            out.pop("managedFields", None)
    if old.get("deletionTimestamp"):
        added = set(out.get("finalizers") or []) - set(old.get("finalizers") or [])
        if added:
            raise invalid(plural, name, [("metadata.finalizers", "Forbidden: no new "
                                          "finalizers can be added if the object is being "
                                          "deleted")])
    return out


def bump_generation(old: Obj, new: Obj) -> None:
    """metadata.generation counts spec changes (kinds whose rule asks for it)."""
    gen = int(old["metadata"].get("generation") or 1)
    if old.get("spec") != new.get("spec"):
        gen += 1
    new["metadata"]["generation"] = gen


def deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def finalizers(obj: Obj) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def propagation(raw: Any, default: str = "Background") -> str:
    if raw in (None, ""):
        return default
    if raw not in PROPAGATIONS:
        raise KubeError(422, "Invalid", f"DeleteOptions.propagationPolicy: Unsupported value: "
                        f"{str(raw)[:40]!r}: supported values: \"Orphan\", \"Background\", "
                        "\"Foreground\"")
    return str(raw)


def owned_by(obj: Obj, uid: str) -> bool:
    return any(isinstance(r, dict) and r.get("uid") == uid
               for r in obj["metadata"].get("ownerReferences") or [])


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or []
                 if isinstance(r, dict) and r.get("controller")), None)


def owner_reference(owner: Obj, block: bool = True) -> Obj:
    """The controller reference a controller puts on what it makes."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": block}
