"""Service account tokens of every EKS cluster: signed (RS256 JWTs) with a key fargo keeps per
cluster in its store, minted for TokenRequest (`kubectl create token`), projected volumes and
token secrets, and checked when one is presented to the cluster's Kubernetes face, as the
apiserver's service account authenticator does: signature, issuer, audience, expiry, and
the account (and the pod or secret the token is bound to) still being there."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..model import serviceaccount as sa_rules
from ..model.kubeerrors import KubeError, not_found
from ..model.secret import SA_TOKEN, decoded
from .eksauth import KubeUser, Unauthorized
from .kubestate import KubeState, now_rfc3339

KEY_META = "kube-sa-key/"  # + the cluster's key (name/createdAt): its signing key's PEM
_lock = threading.Lock()


@dataclass(frozen=True)
class Signer:
    private: Any
    public: Any
    kid: str
    issuer: str


_signers: dict[str, Signer] = {}  # by cluster key: parsing a PEM costs a millisecond


class ServiceAccountTokens:
    def __init__(self, state: KubeState, cluster_key: Any, region: str):
        """cluster_key: the cluster's name -> its key (Eks.token_key), None when gone."""
        self.state = state
        self.cluster_key = cluster_key
        self.region = region

    def signer(self, cluster: str) -> Signer:
        key = self.cluster_key(cluster)
        if key is None:
            raise not_found("clusters", cluster)
        found = _signers.get(key)
        if found is not None:
            return found
        store = self.state.tables.store
        with _lock:
            pem = store.get_meta(KEY_META + key)
            if pem is None:
                made = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = made.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode()
                store.put_meta(KEY_META + key, pem)
        private = serialization.load_pem_private_key(pem.encode(), password=None)
        public = private.public_key()
        der = public.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        kid = jwt.utils.base64url_encode(hashlib.sha256(der).digest()).decode()
        signer = Signer(private, public, kid, sa_rules.issuer(key, self.region))
        _signers[key] = signer
        return signer

    def _sign(self, cluster: str, claims: dict[str, Any]) -> str:
        s = self.signer(cluster)
        return jwt.encode({**claims, "iss": claims.get("iss") or s.issuer}, s.private,
                          algorithm="RS256", headers={"kid": s.kid})

    def mint(self, cluster: str, ns: str, sa: dict[str, Any], audiences: list[str],
             expiry: int, bound: dict[str, Any] | None = None,
             now: int | None = None) -> tuple[str, int]:
        """A bound token and its expiry (Unix seconds)."""
        at = int(time.time()) if now is None else now
        claims = sa_rules.claims(iss=self.signer(cluster).issuer, ns=ns, sa=sa,
                                 audiences=audiences, now=at, expiry=expiry,
                                 jti=str(uuid.uuid4()), bound=bound)
        return self._sign(cluster, claims), claims["exp"]

    def legacy(self, cluster: str, ns: str, sa: dict[str, Any], secret_name: str) -> str:
        """A token secret's token (no expiry)."""
        return self._sign(cluster, sa_rules.legacy_claims(ns=ns, sa=sa,
                                                          secret_name=secret_name))

    def token_request(self, cluster: str, ns: str, name: str, body: Any) -> dict[str, Any]:
        """POST serviceaccounts/NAME/token: a TokenRequest answered, never stored."""
        audiences, expiry, bound = sa_rules.token_request(body, name)
        sa = self.state.get(cluster, "serviceaccounts", ns, name)
        ref = None
        if bound is not None:
            plural = {"Pod": "pods", "Secret": "secrets"}[bound["kind"]]
            obj = self.state.find(cluster, plural, ns, bound["name"])
            if obj is None:
                raise not_found(plural, bound["name"])
            uid = obj["metadata"].get("uid")
            if bound.get("uid") and bound["uid"] != uid:
                raise KubeError(409, "Conflict", f'the UID in the bound object reference '
                                f'({str(bound["uid"])[:60]}) does not match the UID in record '
                                f"({uid}). The object might have been deleted and then "
                                "recreated")
            ref = {"kind": bound["kind"], "name": bound["name"], "uid": uid}
        token, exp = self.mint(cluster, ns, sa, audiences, expiry, ref)
        spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": expiry,
                                "boundObjectRef": None}
        if ref is not None:
            spec["boundObjectRef"] = {"kind": ref["kind"], "apiVersion": "v1",
                                      "name": ref["name"], "uid": ref["uid"]}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": ns,
                             "creationTimestamp": now_rfc3339()},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": now_rfc3339(exp)}}

    # ---- the authenticator
    def authenticate(self, cluster: str, token: str) -> KubeUser:
        """The account a token speaks for; Unauthorized (for the log) when it does not."""
        s = self.signer(cluster)
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as err:
            raise Unauthorized(f"not a service account token: {err}") from None
        legacy = unverified.get("iss") == "kubernetes/serviceaccount"
        try:
            claims = jwt.decode(
                token, s.public, algorithms=["RS256"],
                issuer=None if legacy else s.issuer,
                audience=None if legacy else list(sa_rules.API_AUDIENCES),
                options={"require": [] if legacy else ["exp", "iat", "nbf", "aud", "sub"],
                         "verify_aud": not legacy}, leeway=60)
        except jwt.PyJWTError as err:
            raise Unauthorized(f"service account token refused: {err}") from None
        return self._legacy_user(cluster, claims, token) if legacy else \
            self._user(cluster, claims)

    def _account(self, cluster: str, ns: str, name: str, uid: str) -> dict[str, Any]:
        sa = self.state.find(cluster, "serviceaccounts", ns, name)
        if sa is None or (uid and sa["metadata"].get("uid") != uid):
            raise Unauthorized(f"service account {ns}/{name} is gone")
        return sa

    def _user(self, cluster: str, claims: dict[str, Any]) -> KubeUser:
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict) or not isinstance(k8s.get("serviceaccount"), dict):
            raise Unauthorized("the token names no service account")
        ns, account = str(k8s.get("namespace", "")), k8s["serviceaccount"]
        sa = self._account(cluster, ns, str(account.get("name", "")),
                           str(account.get("uid", "")))
        extra: dict[str, tuple[str, ...]] = {}
        for kind, plural in (("pod", "pods"), ("secret", "secrets")):
            ref = k8s.get(kind)
            if not isinstance(ref, dict):
                continue
            obj = self.state.find(cluster, plural, ns, str(ref.get("name", "")))
            if obj is None or obj["metadata"].get("uid") != ref.get("uid") or \
                    obj["metadata"].get("deletionTimestamp"):
                raise Unauthorized(f"the {kind} the token was bound to is gone")
            if kind == "pod":
                extra["authentication.kubernetes.io/pod-name"] = (str(ref.get("name")),)
                extra["authentication.kubernetes.io/pod-uid"] = (str(ref.get("uid")),)
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims['jti']}",)
        name, groups = sa_rules.user_of(ns, sa["metadata"]["name"])
        return KubeUser(name, str(sa["metadata"].get("uid", "")), groups, extra)

    def _legacy_user(self, cluster: str, claims: dict[str, Any], token: str) -> KubeUser:
        prefix = "kubernetes.io/serviceaccount/"
        ns = str(claims.get(prefix + "namespace", ""))
        sa = self._account(cluster, ns, str(claims.get(prefix + "service-account.name", "")),
                           str(claims.get(prefix + "service-account.uid", "")))
        secret = self.state.find(cluster, "secrets", ns,
                                 str(claims.get(prefix + "secret.name", "")))
        if secret is None or secret.get("type") != SA_TOKEN or \
                decoded(secret).get("token") != token.encode():
            raise Unauthorized("the token's secret is gone")
        name, groups = sa_rules.user_of(ns, sa["metadata"]["name"])
        return KubeUser(name, str(sa["metadata"].get("uid", "")), groups,
                        {"authentication.kubernetes.io/credential-id": (
                            f"JTI={secret['metadata'].get('uid', '')}",)})


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token is a JWT (three base64url parts), not fargo's own or EKS's."""
    return token.startswith("eyJ") and token.count(".") == 2
