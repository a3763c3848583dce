"""Who an EKS token speaks for, in Kubernetes' terms, as EKS decides it: the token's
signature checked against fargo's keys (model/ekstoken.py), then the identity mapped to a
Kubernetes user and groups. The cluster's creator is an admin (group system:masters, as
EKS's bootstrapClusterCreatorAdminPermissions makes it); anyone else needs an entry in the
`aws-auth` ConfigMap of kube-system (mapRoles, mapUsers, mapAccounts, in aws-iam-
authenticator's YAML) unless the cluster's authenticationMode is API. No mapping: refused.

fargo enforces no RBAC: a mapped user may do anything; the groups are recorded for
`kubectl auth whoami` (SelfSubjectReview)."""

from __future__ import annotations

import datetime
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from ..model import ekstoken
from ..model.ekstoken import Identity, TokenError
from .iam import Iam

log = logging.getLogger("fargo.kube.auth")
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
AWS_AUTH = ("kube-system", "aws-auth")  # namespace, name
_TEMPLATE = re.compile(r"\{\{([A-Za-z0-9]*)\}\}")


class Unauthorized(Exception):
    """The token is refused (401); the message is for the server's log only."""


@dataclass(frozen=True)
class KubeUser:
    username: str
    uid: str
    groups: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def user_info(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 UserInfo."""
        return {"username": self.username, "uid": self.uid, "groups": list(self.groups),
                "extra": {k: list(v) for k, v in self.extra.items()}}


@dataclass(frozen=True)
class Entry:
    """One mapRoles/mapUsers item: the ARN it matches (canonical), the username template
    (None: the caller's ARN) and the groups."""
    arn: str
    username: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True)
class AwsAuth:
    roles: tuple[Entry, ...] = ()
    users: tuple[Entry, ...] = ()
    accounts: frozenset[str] = frozenset()


class _Plain(yaml.SafeLoader):
    """No aliases: a few bytes of them expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted in aws-auth")
        return super().compose_node(parent, index)


def _entries(text: str, key: str, what: str) -> tuple[Entry, ...]:
    try:
        items = yaml.load(text, Loader=_Plain)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise ValueError(f"{what} is not YAML: {str(err)[:200]}") from None
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValueError(f"{what} is not a YAML list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            raise ValueError(f"{what}[{i}] has no {key}")
        username = item.get("username")
        groups = item.get("groups") or []
        if username is not None and not isinstance(username, str):
            raise ValueError(f"{what}[{i}].username is not a string")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"{what}[{i}].groups is not a list of strings")
        out.append(Entry(ekstoken.canonical(item[key].strip()), username or None,
                         tuple(groups)))
    return tuple(out)


def read_aws_auth(data: Mapping[str, Any]) -> AwsAuth:
    """The ConfigMap's data; ValueError names what is malformed (EKS then maps nobody by
    it, and so does fargo)."""
    accounts = data.get("mapAccounts")
    found: list[str] = []
    if isinstance(accounts, str) and accounts.strip():
        try:
            listed = yaml.load(accounts, Loader=_Plain)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as err:
            raise ValueError(f"mapAccounts is not YAML: {str(err)[:200]}") from None
        if not isinstance(listed, list):
            raise ValueError("mapAccounts is not a YAML list")
        found = [str(a) for a in listed]
    return AwsAuth(roles=_entries(str(data.get("mapRoles") or ""), "rolearn", "mapRoles"),
                   users=_entries(str(data.get("mapUsers") or ""), "userarn", "mapUsers"),
                   accounts=frozenset(found))


def _render(template: str, who: Identity) -> str:
    """aws-iam-authenticator's username templates; one fargo cannot fill (EC2 node names)
    makes the entry map nobody."""
    session = who.session or ""
    values = {"AccountID": who.account, "SessionName": session.replace("@", "-"),
              "SessionNameRaw": session, "AccessKeyID": who.access_key}

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in values or (m.group(1).startswith("Session") and not session):
            raise ValueError(f"username template {m.group(0)} cannot be filled for "
                             f"{who.arn[:200]}")
        return values[m.group(1)]

    return _TEMPLATE.sub(fill, template)


def _user(who: Identity, username: str, groups: tuple[str, ...]) -> KubeUser:
    extra = {"arn": (who.arn,), "canonicalArn": (who.canonical_arn,),
             "principalId": (who.user_id,), "accessKeyId": (who.access_key,)}
    if who.session:
        extra["sessionName"] = (who.session,)
    ordered = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
    return KubeUser(username, f"aws-iam-authenticator:{who.account}:{who.user_id}", ordered,
                    extra)


def map_identity(who: Identity, *, creator: str | None, creator_admin: bool,
                 aws_auth: AwsAuth | None) -> KubeUser | None:
    """The Kubernetes user an identity is, or None (refused). creator: the ARN that made
    the cluster; aws_auth: None when the cluster does not read the ConfigMap (API mode)
    or it has none."""
    mine = ekstoken.canonical(who.arn)
    if creator_admin and creator is not None and ekstoken.canonical(creator) == mine:
        return _user(who, who.arn, (MASTERS,))
    if aws_auth is None:
        return None
    entries = aws_auth.roles if who.session is not None else aws_auth.users
    for entry in entries:
        if entry.arn == mine:
            try:
                name = _render(entry.username, who) if entry.username else who.arn
            except ValueError as err:
                log.info("aws-auth: %s", err)
                return None
            return _user(who, name, entry.groups)
    if who.account in aws_auth.accounts:
        return _user(who, who.arn, ())
    return None


class Clusters(Protocol):
    """What the mapping asks of control/eks.py."""

    def token_key(self, name: str) -> str | None: ...

    def access(self, name: str) -> tuple[str | None, bool, str]: ...


class Objects(Protocol):
    """What it asks of control/kubestate.py."""

    def find(self, cluster: str, resource: str, ns: str, name: str) -> dict[str, Any] | None: ...


class EksAuth:
    def __init__(self, iam: Iam, clusters: Clusters, objects: Objects, region: str):
        self.iam = iam
        self.clusters = clusters
        self.objects = objects
        self.region = region

    def authenticate(self, cluster: str, token: str, *, own_host: Any = None,
                     now: datetime.datetime | None = None) -> KubeUser:
        """The user an EKS token is on this cluster; Unauthorized says why not.
        own_host(host): whether the URL was presigned for this server's own endpoint."""
        now = now or datetime.datetime.now(datetime.UTC)
        try:
            p = ekstoken.parse(token)
            ekstoken.check(p, now=now, region=self.region,
                           own_host=bool(own_host and own_host(p.host)))
        except TokenError as err:
            raise Unauthorized(str(err)) from None
        if self.clusters.token_key(cluster) is None:
            raise Unauthorized(f"no cluster {cluster[:100]}")
        key = self.iam.lookup(p.key_id)
        if key is None:
            raise Unauthorized(f"unknown access key {p.key_id[:40]}")
        if key.token is not None:
            if p.session_token is None or not hmac.compare_digest(p.session_token, key.token):
                raise Unauthorized(f"session token of {key.id} missing or wrong")
            if key.expires is not None and key.expires < now.timestamp():
                raise Unauthorized(f"credentials {key.id} expired")
        elif p.session_token is not None:
            raise Unauthorized(f"{key.id} is a long-lived key: it has no session token")
        try:
            ekstoken.verify_signature(p, cluster, key.secret)
        except TokenError as err:
            raise Unauthorized(str(err)) from None
        who = ekstoken.identity(key.principal, key.id)
        creator, creator_admin, mode = self.clusters.access(cluster)
        aws_auth = None if mode == "API" else self._aws_auth(cluster)
        user = map_identity(who, creator=creator, creator_admin=creator_admin,
                            aws_auth=aws_auth)
        if user is None:
            raise Unauthorized(f"{who.arn[:200]} is not mapped on cluster {cluster[:100]} "
                               "(not its creator, not in aws-auth)")
        return user

    def _aws_auth(self, cluster: str) -> AwsAuth | None:
        doc = self.objects.find(cluster, "configmaps", *AWS_AUTH)
        if doc is None:
            return None
        try:
            return read_aws_auth(doc.get("data") or {})
        except ValueError as err:
            log.warning("cluster %s: kube-system/aws-auth maps nobody: %s", cluster, err)
            return None
