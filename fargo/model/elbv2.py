"""Elastic Load Balancing (v2) records and their names: load balancers, target groups,
listeners, rules and registered targets, as control keeps them in the store, with the rules
for names, ARNs, DNS names, tags and the service's limits. Pure: ids and the clock are passed
in. Target group health checks and attributes are model/elbv2_groups.py; actions and rule
conditions model/elbv2_rules.py; target health model/elbv2_health.py."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .errors import ApiError
from .names import ACCOUNT

APPLICATION, NETWORK = "application", "network"
PROVISIONING, ACTIVE, FAILED, IMPAIRED = "provisioning", "active", "failed", "active_impaired"
MAX_LOAD_BALANCERS = 50  # per region (AWS's default quota)
MAX_TARGET_GROUPS = 3000
MAX_LISTENERS = 50  # per load balancer
MAX_RULES = 100  # per application load balancer, default rules aside
MAX_TARGETS = 1000  # per load balancer
MAX_REGISTRATIONS = 100  # of one target (IP) across target groups
MAX_SECURITY_GROUPS = 5
MAX_TAGS = 50
MAX_PAGE = 400

# Route 53 hosted zones of the load balancers' DNS names, per region (application, network).
_ZONES = {"us-east-1": ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
          "us-east-2": ("Z3AADJGX6KTTL2", "ZLMOA37VPKANP"),
          "us-west-1": ("Z368ELLRRE2KJ0", "Z24FKFUX50B4VW"),
          "us-west-2": ("Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
          "eu-west-1": ("Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
          "eu-central-1": ("Z215JYRZR1TBD5", "Z3F0SRJ5LGBH90")}


def error(code: str, message: str) -> ApiError:
    return ApiError(message, code=code)


def invalid(message: str) -> ApiError:
    """ELBv2's word for a parameter that breaks a rule of its shape."""
    return ApiError(message, code="ValidationError")


def unsupported(message: str) -> ApiError:
    """What AWS would do and fargo does not: refused by name, never silently ignored."""
    return ApiError(message, code="InvalidConfigurationRequest")


@dataclass
class Tag:
    key: str
    value: str = ""


@dataclass
class Address:
    """The load balancer's address in one of its subnets (from the tasks' address pool)."""

    subnet_id: str
    zone: str
    ip: str


@dataclass
class LoadBalancer:
    arn: str
    name: str
    id: str  # 16 hex digits, the ARN's last part
    kind: str  # application | network
    vpc_id: str
    addresses: list[Address]
    security_groups: list[str]
    created_at: float
    dns_name: str
    scheme: str = "internal"
    state: str = PROVISIONING
    reason: str | None = None  # why it failed, in the data plane's words
    idle_timeout: int = 60  # idle_timeout.timeout_seconds
    deletion_protection: bool = False
    http2: bool = True  # routing.http2.enabled (it matters for HTTPS listeners only)
    tags: list[Tag] = field(default_factory=list)

    @property
    def spec_id(self) -> str:
        """What the data plane names it by (its netns, HAProxy's files): the ARN's id."""
        return self.id


@dataclass
class HealthSettings:
    protocol: str  # HTTP | TCP
    port: str  # "traffic-port" or a port number
    interval: int
    timeout: int
    healthy: int
    unhealthy: int
    path: str | None = None  # HTTP checks only
    matcher: str | None = None  # HTTP checks only: "200", "200,202", "200-299"


@dataclass
class TargetGroup:
    arn: str
    name: str
    id: str
    protocol: str  # HTTP | TCP
    port: int
    vpc_id: str
    health: HealthSettings
    created_at: float
    target_type: str = "ip"
    protocol_version: str | None = "HTTP1"  # HTTP target groups only
    deregistration_delay: int = 300
    stickiness: bool = False
    stickiness_seconds: int = 86400  # stickiness.lb_cookie.duration_seconds
    tags: list[Tag] = field(default_factory=list)

    @property
    def pool_id(self) -> str:
        return "tg-" + self.id


@dataclass
class Weighted:
    arn: str  # a target group's
    weight: int = 1


@dataclass
class FixedResponse:
    status: str  # "200", "404", ...
    content_type: str | None = None
    body: str | None = None


@dataclass
class RedirectTo:
    status: str  # HTTP_301 | HTTP_302
    protocol: str = "#{protocol}"
    port: str = "#{port}"
    host: str = "#{host}"
    path: str = "/#{path}"
    query: str = "#{query}"


@dataclass
class Action:
    kind: str  # forward | fixed-response | redirect
    order: int = 1
    targets: list[Weighted] = field(default_factory=list)  # forward
    fixed: FixedResponse | None = None
    redirect: RedirectTo | None = None

    def target_groups(self) -> list[str]:
        return [t.arn for t in self.targets]


@dataclass
class QueryPair:
    value: str
    key: str | None = None


@dataclass
class Condition:
    kind: str  # the Field: path-pattern | host-header | http-header | query-string |
    #            http-request-method | source-ip
    values: list[str] = field(default_factory=list)
    header: str | None = None  # http-header's name
    pairs: list[QueryPair] = field(default_factory=list)  # query-string


@dataclass
class Listener:
    arn: str
    lb_arn: str
    id: str
    port: int
    protocol: str  # HTTP | TCP
    actions: list[Action]  # the default actions
    rule_arn: str  # the default rule's
    created_at: float
    tags: list[Tag] = field(default_factory=list)
    rule_tags: list[Tag] = field(default_factory=list)  # the default rule's


@dataclass
class Rule:
    arn: str
    listener_arn: str
    id: str
    priority: int
    conditions: list[Condition]
    actions: list[Action]
    created_at: float
    tags: list[Tag] = field(default_factory=list)


@dataclass
class Target:
    """A registered target: an IP and port of the target group's VPC."""

    tg_arn: str
    ip: str
    port: int
    zone: str
    registered_at: float
    draining_since: float | None = None  # deregistered: drains until the delay is over


# ---- names, ARNs and DNS names
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def check_name(name: object, what: str) -> str:
    """A load balancer's or target group's name: 1-32 letters, digits and hyphens, neither
    first nor last a hyphen (and a load balancer's not beginning with "internal-")."""
    if not isinstance(name, str) or not name:
        raise invalid(f"{what} name cannot be empty")
    if len(name) > 32:
        raise invalid(f"{what} name cannot be longer than '32' characters")
    if not _NAME.match(name):
        raise invalid(f"{what} name '{name[:64]}' can only contain characters that are "
                      "alphanumeric characters or hyphens(-), and must not begin or end with a "
                      "hyphen")
    if what == "LoadBalancer" and name.lower().startswith("internal-"):
        raise invalid(f"LoadBalancer name '{name}' cannot begin with 'internal-'")
    return name


def _prefix(region: str) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:"


def short_kind(kind: str) -> str:
    return "app" if kind == APPLICATION else "net"


def lb_arn(region: str, kind: str, name: str, lb_id: str) -> str:
    return f"{_prefix(region)}loadbalancer/{short_kind(kind)}/{name}/{lb_id}"


def tg_arn(region: str, name: str, tg_id: str) -> str:
    return f"{_prefix(region)}targetgroup/{name}/{tg_id}"


def listener_arn(lb: LoadBalancer, region: str, listener_id: str) -> str:
    return f"{_prefix(region)}listener/{short_kind(lb.kind)}/{lb.name}/{lb.id}/{listener_id}"


def rule_arn(listener: Listener, region: str, rule_id: str) -> str:
    head, _, tail = listener.arn.partition(":listener/")
    return f"{head}:listener-rule/{tail}/{rule_id}"


_ARN_FORMS = {
    "loadbalancer": re.compile(r"^arn:aws:elasticloadbalancing:[a-z0-9-]{1,32}:\d{12}:"
                               r"loadbalancer/(app|net)/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"),
    "targetgroup": re.compile(r"^arn:aws:elasticloadbalancing:[a-z0-9-]{1,32}:\d{12}:"
                              r"targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"),
    "listener": re.compile(r"^arn:aws:elasticloadbalancing:[a-z0-9-]{1,32}:\d{12}:"
                           r"listener/(app|net)/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}/[0-9a-f]{16}$"),
    "listener-rule": re.compile(r"^arn:aws:elasticloadbalancing:[a-z0-9-]{1,32}:\d{12}:"
                                r"listener-rule/(app|net)/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}/"
                                r"[0-9a-f]{16}/[0-9a-f]{16}$"),
}
_ARN_WHAT = {"loadbalancer": "load balancer", "targetgroup": "target group",
             "listener": "listener", "listener-rule": "rule"}


def check_arn(value: object, kind: str) -> str:
    """An ARN of that kind (loadbalancer, targetgroup, listener, listener-rule), or the
    ValidationError AWS gives a malformed one."""
    if not isinstance(value, str) or not _ARN_FORMS[kind].match(value):
        shown = value[:200] if isinstance(value, str) else type(value).__name__
        raise invalid(f"'{shown}' is not a valid {_ARN_WHAT[kind]} ARN")
    return value


def arn_kind(value: str) -> str | None:
    """Which of the four kinds an ARN is, or None."""
    for kind, form in _ARN_FORMS.items():
        if form.match(value):
            return kind
    return None


def dns_name(kind: str, name: str, lb_id: str, region: str) -> str:
    """internal-NAME-DIGITS.REGION.elb.amazonaws.com for an internal application load
    balancer; NAME-HEX.elb.REGION.amazonaws.com for a network one."""
    if kind == APPLICATION:
        digits = str(int(lb_id, 16) % 10 ** 10).zfill(10)
        return f"internal-{name}-{digits}.{region}.elb.amazonaws.com"
    return f"{name}-{lb_id}.elb.{region}.amazonaws.com"


def hosted_zone(kind: str, region: str) -> str:
    app, net = _ZONES.get(region, _ZONES["us-east-1"])
    return app if kind == APPLICATION else net


def new_id_ok(value: str) -> bool:
    return bool(_HEX16.match(value))


# ---- tags
def _tag_text(text: str) -> bool:
    """Letters, separators, digits and _ . : / = + - @ (the shape's \\p{L}\\p{Z}\\p{N})."""
    for ch in text:
        if ch in "_.:/=+-@":
            continue
        if unicodedata.category(ch)[0] not in "LZN":
            return False
    return True


def check_tags(given: list[Tag], existing: list[Tag] | None = None) -> list[Tag]:
    """Tags added to a resource's: keys 1-128, values up to 256 characters, no key twice in
    one request, no "aws:" prefix, at most 50 in all. Returns the merged tags."""
    seen: set[str] = set()
    for tag in given:
        if tag.key in seen:
            raise error("DuplicateTagKeys", f"Tag key '{tag.key[:128]}' is duplicated")
        seen.add(tag.key)
        if not 1 <= len(tag.key) <= 128 or not _tag_text(tag.key):
            raise invalid(f"Tag key '{tag.key[:128]}' must be 1-128 letters, digits, spaces "
                          "and _ . : / = + - @")
        if len(tag.value) > 256 or not _tag_text(tag.value):
            raise invalid(f"Tag value of '{tag.key[:128]}' must be up to 256 letters, digits, "
                          "spaces and _ . : / = + - @")
        if tag.key.lower().startswith("aws:"):
            raise invalid(f"Tag key '{tag.key[:128]}' cannot start with 'aws:'")
    merged = {t.key: t.value for t in existing or []}
    merged.update({t.key: t.value for t in given})
    if len(merged) > MAX_TAGS:
        raise error("TooManyTags", f"A resource can have at most {MAX_TAGS} tags")
    return [Tag(k, v) for k, v in merged.items()]


def without_tags(existing: list[Tag], keys: list[str]) -> list[Tag]:
    gone = set(keys)
    return [t for t in existing if t.key not in gone]
