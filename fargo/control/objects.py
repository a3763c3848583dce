"""Generic writes for every kind without handlers of its own, as the apiserver's registry
does them: kind and namespace checks, the shared metadata rules (model/objmeta.py), the
kind's own checks and defaults (model/kubekinds.py), the status subresource, generation,
deletion with propagation and preconditions, and dry runs."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from ..model import kubekinds, objmeta
from ..model.kubeerrors import KubeError, bad_request
from ..model.kubekinds import KindRule
from .kubestate import KubeState

Obj = dict[str, Any]


@dataclass(frozen=True)
class DeleteOptions:
    grace: int | None = None  # seconds; None: the object's own
    propagation: str | None = None  # Orphan, Background, Foreground; None: the kind's default
    uid: str | None = None  # preconditions
    resource_version: str | None = None
    dry_run: bool = False


def check_kind(body: Any, rule: KindRule) -> Obj:
    """A body of the kind the URL names (kind and apiVersion may be left out)."""
    if not isinstance(body, dict):
        raise bad_request("the body of the request was in an unknown format")
    if body.get("kind", rule.kind) != rule.kind or \
            body.get("apiVersion", rule.api_version) != rule.api_version:
        raise bad_request(f"the API version in the data ({str(body.get('apiVersion'))[:60]}) "
                          f"and kind ({str(body.get('kind'))[:60]}) do not match the path: "
                          f"expected {rule.api_version}, Kind={rule.kind}")
    return body


def check_namespace(body: Obj, ns: str) -> None:
    meta = body.get("metadata")
    if isinstance(meta, dict) and ns and meta.get("namespace") not in (None, "", ns):
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")


def open_namespace(state: KubeState, cluster: str, ns: str, plural: str, name: str) -> None:
    """New content needs a namespace that exists and is not being deleted."""
    namespace = state.get(cluster, "namespaces", "", ns)
    if (namespace.get("status") or {}).get("phase") == "Terminating":
        raise KubeError(403, "Forbidden", f'{plural} "{name}" is forbidden: unable to create '
                        f"new content in namespace {ns} because it is being terminated")


class Objects:
    def __init__(self, state: KubeState):
        self.state = state

    def create(self, cluster: str, plural: str, ns: str, body: Any,
               dry_run: bool = False) -> Obj:
        rule = kubekinds.rule(plural)
        obj = copy.deepcopy(check_kind(body, rule))
        check_namespace(obj, ns)
        name = objmeta.check_metadata(obj, rule.kind)
        if rule.namespaced:
            open_namespace(self.state, cluster, ns, plural, name)
        for key in [k for k in obj if k.startswith("_")]:
            del obj[key]  # fargo's private members are its own
        if rule.status:
            obj.pop("status", None)  # a controller's to write
        # The uid is the server's, drawn before the kind's rules: a Job's selector names it.
        uid = obj["metadata"]["uid"] = str(uuid.uuid4())
        if rule.default:
            rule.default(obj)
        if rule.check:
            rule.check(obj, None)
        return self.state.create(cluster, plural, ns, obj, dry_run, uid=uid)

    def update(self, cluster: str, plural: str, ns: str, name: str, body: Any,
               sub: str | None = None, dry_run: bool = False) -> Obj:
        """A PUT (or a PATCH's result) of the whole object, or with sub="status" of its
        status only."""
        rule = kubekinds.rule(plural)
        old = self.state.get(cluster, plural, ns, name)
        new = copy.deepcopy(check_kind(body, rule))
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        if meta.get("name") not in (None, "", name):
            raise bad_request(f"the name of the object ({str(meta['name'])[:253]}) does not "
                              f"match the name on the URL ({name})")
        check_namespace(new, ns)
        meta["name"] = name
        new["kind"], new["apiVersion"] = rule.kind, rule.api_version
        merged = self.merged(rule, old, new, sub)
        if merged == old:
            return old
        return self.state.update(cluster, plural, ns, merged, dry_run)

    def merged(self, rule: KindRule, old: Obj, new: Obj, sub: str | None) -> Obj:
        """What an update stores: `new` under the metadata and status rules, checked."""
        meta = objmeta.updated_metadata(old["metadata"], new["metadata"], rule.plural)
        if sub == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = copy.deepcopy(new["status"])
            else:
                merged.pop("status", None)
            return merged
        merged = {k: v for k, v in new.items() if not k.startswith("_")}
        merged["metadata"] = meta
        objmeta.check_metadata(merged, rule.kind)
        for key, value in old.items():
            if key.startswith("_"):
                merged[key] = copy.deepcopy(value)  # fargo's private members stay
        if rule.status:
            if "status" in old:
                merged["status"] = copy.deepcopy(old["status"])
            else:
                merged.pop("status", None)
        if rule.default:
            rule.default(merged)
        if rule.check:
            rule.check(merged, old)
        if rule.generation:
            objmeta.bump_generation(old, merged)
        return merged

    def write_status(self, cluster: str, plural: str, ns: str, obj: Obj,
                     status: Obj) -> Obj:
        """A controller's status write (no resourceVersion check: the controller read it in
        the same pass)."""
        if obj.get("status") == status:
            return obj
        obj = copy.deepcopy(obj)
        obj["status"] = status
        return self.state.update(cluster, plural, ns, obj)

    def delete(self, cluster: str, plural: str, ns: str, name: str,
               opts: DeleteOptions = DeleteOptions()) -> Obj:
        obj = self.state.get(cluster, plural, ns, name)
        check_preconditions(obj, plural, opts)
        how = objmeta.propagation(opts.propagation)
        finalizer = {"Orphan": objmeta.ORPHAN, "Foreground": objmeta.FOREGROUND}.get(how)
        if finalizer and not objmeta.deleting(obj):
            obj = copy.deepcopy(obj)
            obj["metadata"]["finalizers"] = [*objmeta.finalizers(obj), finalizer]
            if not opts.dry_run:
                obj = self.state.update(cluster, plural, ns, obj)
        return self.state.delete(cluster, plural, ns, name, opts.dry_run) or obj


def check_preconditions(obj: Obj, plural: str, opts: DeleteOptions) -> None:
    meta = obj["metadata"]
    if opts.uid and opts.uid != meta.get("uid"):
        raise KubeError(409, "Conflict", f'Operation cannot be fulfilled on {plural} '
                        f'"{meta["name"]}": Precondition failed: UID in precondition: '
                        f"{opts.uid[:60]}, UID in object meta: {meta.get('uid')}")
    if opts.resource_version and opts.resource_version != meta.get("resourceVersion"):
        raise KubeError(409, "Conflict", f'Operation cannot be fulfilled on {plural} '
                        f'"{meta["name"]}": Precondition failed: ResourceVersion in '
                        f"precondition: {opts.resource_version[:40]}, ResourceVersion in "
                        f"object meta: {meta.get('resourceVersion')}")
