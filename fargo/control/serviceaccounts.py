"""Service accounts of every EKS cluster as the apiserver and kube-controller-manager keep
them: the ServiceAccount admission of each new pod, the `default` account and the
kube-root-ca.crt ConfigMap in every namespace, and token secrets' tokens (the tokens
controller)."""

from __future__ import annotations

import base64
import logging
import secrets as random
from typing import Any

from ..model import serviceaccount as sa_rules
from ..model.secret import SA_NAME, SA_TOKEN, SA_UID
from .kubecontrol import Controller
from .kubestate import Change, KubeState
from .satokens import ServiceAccountTokens

log = logging.getLogger("fargo.serviceaccounts")


def admit(state: KubeState, cluster: str, ns: str, pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the ServiceAccount admission leaves it; 403 when its account is missing."""
    sa = state.find(cluster, "serviceaccounts", ns, sa_rules.account_name(pod))
    if sa is None:
        raise sa_rules.missing_account(pod, ns)
    suffix = "".join(random.choice(sa_rules.NAME_ALPHABET) for _ in range(5))
    return sa_rules.admit(pod, sa, suffix)


def namespace_made(state: KubeState, cluster: str, ns: str) -> None:
    """What a new namespace holds at once (before any pod can be made in it): its default
    account (the controller below makes it too, for namespaces made before)."""
    if state.find(cluster, "serviceaccounts", ns, sa_rules.DEFAULT) is None:
        state.create(cluster, "serviceaccounts", ns, sa_rules.default_account())


class ServiceAccounts(Controller):
    """Each active namespace holds `default` and kube-root-ca.crt (as made: put back when
    deleted or changed); each token secret holds its account's token, the CA and the
    namespace, and goes with its account."""
    name = "serviceaccounts"

    def __init__(self, state: KubeState, tokens: ServiceAccountTokens, ca_pem: str):
        self.state = state
        self.tokens = tokens
        self.ca_pem = ca_pem

    def interested(self, change: Change) -> bool:
        return change.resource in ("namespaces", "serviceaccounts", "secrets") or (
            change.resource == "configmaps" and change.obj.get("metadata", {}).get("name")
            == sa_rules.ROOT_CA)

    def reconcile(self, cluster: str) -> None:
        for ns in self.state.list(cluster, "namespaces"):
            if (ns.get("status") or {}).get("phase") == "Terminating":
                continue
            name = ns["metadata"]["name"]
            namespace_made(self.state, cluster, name)
            if self.ca_pem:
                self._root_ca(cluster, name)
        for secret in self.state.list(cluster, "secrets"):
            if secret.get("type") == SA_TOKEN and not secret["metadata"].get("deletionTimestamp"):
                self._token_secret(cluster, secret)

    def _root_ca(self, cluster: str, ns: str) -> None:
        want = sa_rules.root_ca(self.ca_pem)
        cm = self.state.find(cluster, "configmaps", ns, sa_rules.ROOT_CA)
        if cm is None:
            self.state.create(cluster, "configmaps", ns, want)
        elif cm.get("data") != want["data"] or cm.get("binaryData"):
            cm["data"] = want["data"]
            cm.pop("binaryData", None)
            self.state.update(cluster, "configmaps", ns, cm)

    def _token_secret(self, cluster: str, secret: dict[str, Any]) -> None:
        meta = secret["metadata"]
        ns = meta["namespace"]
        annotations = meta.get("annotations") or {}
        sa = self.state.find(cluster, "serviceaccounts", ns, annotations.get(SA_NAME, ""))
        if sa is None or annotations.get(SA_UID, sa["metadata"].get("uid")) != \
                sa["metadata"].get("uid"):
            # Its account is gone (or was made again): the token can never be used.
            self.state.delete(cluster, "secrets", ns, meta["name"])
            return
        data = secret.get("data") or {}
        if data.get("token") and data.get("namespace") and SA_UID in annotations and (
                data.get("ca.crt") or not self.ca_pem):
            return
        token = self.tokens.legacy(cluster, ns, sa, meta["name"])
        data = dict(data)
        data["token"] = base64.b64encode(token.encode()).decode()
        data["namespace"] = base64.b64encode(ns.encode()).decode()
        if self.ca_pem:
            data["ca.crt"] = base64.b64encode(self.ca_pem.encode()).decode()
        secret["data"] = data
        meta.setdefault("annotations", {})[SA_UID] = sa["metadata"].get("uid", "")
        self.state.update(cluster, "secrets", ns, secret)
