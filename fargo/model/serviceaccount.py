"""The v1 ServiceAccount (pure): the kind's rule, the `default` account every namespace holds,
the ServiceAccount admission the apiserver runs on each new pod (the kube-api-access
projected volume, imagePullSecrets), and service account tokens' claims as the apiserver's
TokenRequest mints them (signed by control/satokens.py)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from .kubeerrors import KubeError, invalid
from .kubekinds import KindRule, register

DEFAULT = "default"
API_ACCESS_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS_VOLUME = "kube-api-access"
ROOT_CA = "kube-root-ca.crt"  # the ConfigMap of the cluster's CA in every namespace
API_AUDIENCES = ("https://kubernetes.default.svc",)  # what EKS's apiserver takes
API_ACCESS_EXPIRY = 3607  # kubelet's refresh is what matters; the apiserver's own figure
DEFAULT_EXPIRY = 3600
MIN_EXPIRY = 600
MAX_EXPIRY = 1 << 32
BIND_KINDS = ("Pod", "Secret")
SA_GROUP = "system:serviceaccounts"
# The alphabet apimachinery's name generator draws from (no vowels, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _ref_errors(refs: Any, field: str) -> list[tuple[str, str]]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [(field, "Invalid value: must be a list")]
    return [(f"{field}[{i}].name", "Required value") for i, r in enumerate(refs)
            if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"]]


def check_serviceaccount(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    errors = _ref_errors(obj.get("secrets"), "secrets")
    errors += _ref_errors(obj.get("imagePullSecrets"), "imagePullSecrets")
    auto = obj.get("automountServiceAccountToken")
    if auto is not None and not isinstance(auto, bool):
        errors.append(("automountServiceAccountToken", "Invalid value: must be a boolean"))
    if errors:
        raise invalid("ServiceAccount", obj["metadata"]["name"], errors)


register(KindRule("serviceaccounts", "ServiceAccount", check=check_serviceaccount))


def default_account() -> dict[str, Any]:
    """The `default` ServiceAccount made with each namespace."""
    return {"metadata": {"name": DEFAULT}}


def root_ca(ca_pem: str) -> dict[str, Any]:
    """The kube-root-ca.crt ConfigMap every namespace holds (the projected volume's ca.crt)."""
    return {"metadata": {"name": ROOT_CA, "annotations": {
        "kubernetes.io/description": "Contains a CA bundle that can be used to verify the "
                                     "kube-apiserver when using internal endpoints such as the "
                                     "internal service IP or kubernetes.default.svc. No other "
                                     "usage is guaranteed across distributions of Kubernetes "
                                     "clusters."}},
            "data": {"ca.crt": ca_pem}}


# ---- admission
def account_name(pod: dict[str, Any]) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT)


def missing_account(pod: dict[str, Any], ns: str) -> KubeError:
    name = account_name(pod)
    return KubeError(403, "Forbidden", f'pods "{(pod.get("metadata") or {}).get("name", "")}" '
                     f"is forbidden: error looking up service account {ns}/{name}: "
                     f'serviceaccount "{name}" not found',
                     {"name": (pod.get("metadata") or {}).get("name", ""), "kind": "pods"})


def automounts(pod: dict[str, Any], sa: dict[str, Any]) -> bool:
    """The pod's own word, else its account's, else yes."""
    own = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if isinstance(own, bool):
        return own
    theirs = sa.get("automountServiceAccountToken")
    return theirs if isinstance(theirs, bool) else True


def api_access_source() -> dict[str, Any]:
    """The projected volume the admission mounts: a bound token, the cluster's CA and the
    pod's namespace."""
    return {"projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": API_ACCESS_EXPIRY, "path": "token"}},
        {"configMap": {"name": ROOT_CA, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def admit(pod: dict[str, Any], sa: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The pod as the ServiceAccount admission leaves it (a copy): its account named, the
    account's imagePullSecrets when it has none, and (unless automount is off) the
    kube-api-access volume mounted in each container that has nothing at its path yet.
    suffix: five characters of NAME_ALPHABET, drawn by the caller."""
    pod = copy.deepcopy(pod)
    spec = pod.setdefault("spec", {})
    name = account_name(pod)
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
        spec["imagePullSecrets"] = [{"name": r["name"]} for r in sa["imagePullSecrets"]]
    if not automounts(pod, sa):
        return pod
    volumes = spec.get("volumes") or []
    existing = next((v["name"] for v in volumes if isinstance(v, dict) and str(
        v.get("name", "")).startswith(API_ACCESS_VOLUME + "-")), None)
    volume = existing or f"{API_ACCESS_VOLUME}-{suffix}"
    needed = False
    for group in ("initContainers", "containers"):
        for c in spec.get(group) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") or []
            if any(isinstance(m, dict) and m.get("mountPath") == API_ACCESS_PATH
                   for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": volume, "readOnly": True,
                                           "mountPath": API_ACCESS_PATH}]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, {"name": volume, **api_access_source()}]
    return pod


# ---- tokens
def issuer(cluster_key: str, region: str) -> str:
    """The cluster's service account issuer, shaped as EKS's OIDC issuer (a cluster made
    again under the same name gets another)."""
    digest = hashlib.sha256(cluster_key.encode()).hexdigest()[:32].upper()
    return f"https://oidc.eks.{region}.amazonaws.com/id/{digest}"


def subject(ns: str, name: str) -> str:
    return f"system:serviceaccount:{ns}:{name}"


def claims(*, iss: str, ns: str, sa: dict[str, Any], audiences: list[str], now: int,
           expiry: int, jti: str, bound: dict[str, Any] | None = None) -> dict[str, Any]:
    """A bound token's claims, as the apiserver's TokenRequest writes them. bound: the pod
    or secret the token lives no longer than ({"kind", "name", "uid"})."""
    meta = sa["metadata"]
    k8s: dict[str, Any] = {"namespace": ns,
                           "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")}}
    if bound is not None:
        k8s[str(bound["kind"]).lower()] = {"name": bound["name"], "uid": bound.get("uid", "")}
    return {"aud": list(audiences), "exp": now + expiry, "iat": now, "nbf": now, "iss": iss,
            "jti": jti, "kubernetes.io": k8s, "sub": subject(ns, meta["name"])}


def legacy_claims(*, ns: str, sa: dict[str, Any], secret_name: str) -> dict[str, Any]:
    """A token secret's token (kubernetes.io/service-account-token): no expiry, valid while
    the secret and its account stand."""
    meta = sa["metadata"]
    return {"iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": ns,
            "kubernetes.io/serviceaccount/secret.name": secret_name,
            "kubernetes.io/serviceaccount/service-account.name": meta["name"],
            "kubernetes.io/serviceaccount/service-account.uid": meta.get("uid", ""),
            "sub": subject(ns, meta["name"])}


def token_request(body: Any, name: str) -> tuple[list[str], int, dict[str, Any] | None]:
    """A TokenRequest's (audiences, expirationSeconds, boundObjectRef), checked as the
    apiserver checks it; defaults filled."""
    if not isinstance(body, dict) or body.get("kind", "TokenRequest") != "TokenRequest":
        raise KubeError(400, "BadRequest", "the body must be a TokenRequest")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise KubeError(400, "BadRequest", "spec must be an object")
    errors: list[tuple[str, str]] = []
    audiences = spec.get("audiences") or list(API_AUDIENCES)
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        errors.append(("spec.audiences", "Invalid value: must be a list of strings"))
    expiry = spec.get("expirationSeconds", DEFAULT_EXPIRY)
    if expiry is None:
        expiry = DEFAULT_EXPIRY
    if not isinstance(expiry, int) or isinstance(expiry, bool):
        errors.append(("spec.expirationSeconds", "Invalid value: must be an integer"))
    elif expiry < MIN_EXPIRY:
        errors.append(("spec.expirationSeconds", f"Invalid value: {expiry}: may not specify a "
                       "duration less than 10 minutes"))
    elif expiry > MAX_EXPIRY:
        errors.append(("spec.expirationSeconds", f"Invalid value: {expiry}: may not specify a "
                       "duration larger than 2^32 seconds"))
    bound = spec.get("boundObjectRef")
    if bound is not None:
        if not isinstance(bound, dict):
            errors.append(("spec.boundObjectRef", "Invalid value: must be an object"))
        else:
            if bound.get("kind") not in BIND_KINDS:
                errors.append(("spec.boundObjectRef.kind", f"Unsupported value: "
                               f"{str(bound.get('kind'))[:40]!r}: supported values: "
                               + ", ".join(f'"{k}"' for k in BIND_KINDS)))
            if bound.get("apiVersion", "v1") != "v1":
                errors.append(("spec.boundObjectRef.apiVersion", "Unsupported value: "
                               f"{str(bound.get('apiVersion'))[:40]!r}: supported values: "
                               '"v1"'))
            if not isinstance(bound.get("name"), str) or not bound["name"]:
                errors.append(("spec.boundObjectRef.name", "Required value"))
    if errors:
        raise invalid("TokenRequest", name, errors)
    return list(audiences), int(expiry), bound


def user_of(ns: str, name: str) -> tuple[str, tuple[str, ...]]:
    """The user and groups a service account's token speaks for."""
    return subject(ns, name), (SA_GROUP, f"{SA_GROUP}:{ns}", "system:authenticated")
