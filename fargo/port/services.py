"""Services' virtual IPs as the data plane takes them: every ClusterIP port of the host with
the endpoints it may send new connections to, built by control from the store and applied by
the host in one transaction (agent/serviceproxy.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backend:
    """One ready endpoint: a pod's address and the port its container listens on."""

    ip: str
    port: int


@dataclass
class VirtualPort:
    """One VIP.protocol.port. No backends: new connections are refused (as kube-proxy does)."""

    vip: str
    protocol: str  # "tcp", "udp" or "sctp"
    port: int
    backends: list[Backend] = field(default_factory=list)
    affinity: int = 0  # ClientIP stickiness in seconds; 0: each connection chooses afresh
    name: str = ""  # "namespace/service:port" of its cluster, for the ruleset's comments


@dataclass
class ServicesSpec:
    """Everything the host's service table holds; an empty spec leaves no table at all."""

    ports: list[VirtualPort] = field(default_factory=list)
