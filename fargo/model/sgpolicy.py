"""SecurityGroupPolicy (vpcresources.k8s.aws/v1beta1): EKS's security groups for pods, as the
VPC resource controller's CRD serves it: its schema (for fieldValidation, OpenAPI and
`kubectl explain`), the checks its structural schema makes, and which policy gives a pod its
security groups.

On EKS a pod that one or more policies select (podSelector on its labels and/or
serviceAccountSelector on its service account's labels, within the policy's namespace) runs
with the union of their groupIds on its interface instead of the cluster's default group;
a policy with neither selector selects nothing. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import kubeobj
from .kubeerrors import invalid
from .kubekinds import KindRule, register
from .selectors import selector_errors, selector_matcher

Obj = dict[str, Any]
GROUP, VERSION, KIND = "vpcresources.k8s.aws", "v1beta1", "SecurityGroupPolicy"
QUALIFIED = f"{KIND}.{GROUP}"  # how a custom resource's errors name its kind
MAX_GROUPS = 16

_DEF = "io.k8s.aws.vpcresources.v1beta1."
_META = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1."
_SELECTOR = {"$ref": _META + "LabelSelector",
             "description": "A label query over pods (podSelector) or their service accounts "
                            "(serviceAccountSelector); null selects nothing."}
# The CRD's openAPIV3Schema in the definitions' own form (model/kubeschema.py merges it).
DEFINITIONS: dict[str, Any] = {
    _DEF + KIND: {
        "description": "Custom Resource Definition for applying security groups to pods",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"$ref": _META + "ObjectMeta"},
            "spec": {"$ref": "#/$defs/" + _DEF + "SecurityGroupPolicySpec"},
        },
        "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION,
                                             "kind": KIND}],
    },
    _DEF + "SecurityGroupPolicySpec": {
        "description": "SecurityGroupPolicySpec defines the desired state of "
                       "SecurityGroupPolicy",
        "type": "object",
        "properties": {
            "podSelector": _SELECTOR,
            "serviceAccountSelector": _SELECTOR,
            "securityGroups": {"$ref": "#/$defs/" + _DEF + "GroupIds"},
        },
    },
    _DEF + "GroupIds": {
        "description": "The security groups applied to the network interface of the pods "
                       "the policy selects.",
        "type": "object",
        "properties": {"groupIds": {"type": "array", "items": {"type": "string"},
                                    "minItems": 1, "maxItems": MAX_GROUPS,
                                    "description": "EC2 security group ids."}},
    },
    _DEF + KIND + "List": {
        "description": "A list of SecurityGroupPolicy.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/" + _DEF + KIND}},
            "metadata": {"$ref": _META + "ListMeta"},
        },
        "x-kubernetes-group-version-kind": [{"group": GROUP, "version": VERSION,
                                             "kind": KIND + "List"}],
    },
}


def _selector(sel: Any, at: str) -> list[tuple[str, str]]:
    errors = selector_errors(sel, at)
    if isinstance(sel, dict):
        errors += kubeobj._label_errors(sel.get("matchLabels"), f"{at}.matchLabels")
    return errors


def spec_errors(spec: Any) -> list[tuple[str, str]]:
    """What the CRD's structural schema refuses (the apiserver's words for it)."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        return [("spec", f'Invalid value: "{type(spec).__name__}": spec in body must be of '
                 'type object')]
    errors = []
    for key in ("podSelector", "serviceAccountSelector"):
        errors += _selector(spec.get(key), f"spec.{key}")
    groups = spec.get("securityGroups")
    ids = groups.get("groupIds") if isinstance(groups, dict) else None
    at = "spec.securityGroups.groupIds"
    if isinstance(ids, list):
        if not ids:
            errors.append((at, f"Invalid value: 0: {at} in body should have at least 1 items"))
        elif len(ids) > MAX_GROUPS:
            errors.append((at, f"Too many: {len(ids)}: must have at most {MAX_GROUPS} items"))
        for i, gid in enumerate(ids):
            if not isinstance(gid, str):
                errors.append((f"{at}[{i}]", f'Invalid value: {json.dumps(gid)[:40]}: '
                               f'{at}[{i}] in body must be of type string'))
    return errors


def check_sgpolicy(obj: Obj, old: Obj | None) -> None:
    errors = spec_errors(obj.get("spec"))
    if errors:
        raise invalid(QUALIFIED, obj["metadata"]["name"], errors)


register(KindRule("securitygrouppolicies", KIND, group=GROUP, version=VERSION,
                  check=check_sgpolicy))


def groups_for(pod: Obj, policies: Iterable[Obj], service_accounts: Iterable[Obj]) -> list[str]:
    """The security groups the policies give a pod ([]: none selects it, the default
    applies), in the order first named."""
    meta = pod.get("metadata") or {}
    ns, labels = meta.get("namespace", ""), meta.get("labels") or {}
    sa_name = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    sa_labels: dict[str, str] | None = None
    for sa in service_accounts:
        if sa["metadata"].get("namespace") == ns and sa["metadata"]["name"] == sa_name:
            sa_labels = sa["metadata"].get("labels") or {}
    out: list[str] = []
    for pol in sorted(policies, key=lambda p: p["metadata"]["name"]):
        if pol["metadata"].get("namespace") != ns or pol["metadata"].get("deletionTimestamp"):
            continue
        spec = pol.get("spec") or {}
        pod_sel, sa_sel = spec.get("podSelector"), spec.get("serviceAccountSelector")
        if pod_sel is None and sa_sel is None:
            continue
        if pod_sel is not None and not selector_matcher(pod_sel)(labels):
            continue
        if sa_sel is not None and (sa_labels is None or not selector_matcher(sa_sel)(sa_labels)):
            continue
        for gid in (spec.get("securityGroups") or {}).get("groupIds") or []:
            if gid not in out:
                out.append(gid)
    return out
