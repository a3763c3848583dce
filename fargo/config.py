"""Server settings, with the embedded defaults a single host runs on."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .model.billing import Prices

DEFAULT_PORT = 4680


@dataclass
class Settings:
    state_dir: Path = field(default_factory=lambda: Path.home() / ".fargo")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # HTTPS port of the EKS clusters' Kubernetes APIs (None: port + 1).
    kube_port: int | None = None
    # The VPC resolver's port for the host, on 127.0.0.1 (None: port + 2, or a free one if
    # that is taken; 0: none).
    dns_port: int | None = None
    region: str = "us-east-1"
    vpc_cidr: str = "10.89.0.0/16"
    # Host capacity: None means read it from the machine.
    cpu_units: int | None = None
    memory_mib: int | None = None
    # 1.0 = refuse what does not fit; 4.0 = let four times the host be promised.
    overcommit: float = 1.0
    embedded_registry: bool = True
    registry_port: int = 5000
    # Names for host objects (bridges, veths, netns, cgroups, runc root); tests use their own.
    prefix: str = "fg"
    # A request body's bytes at most: PutLogEvents' 1,048,576 bytes of messages arrive as more
    # JSON than that (each event's members, escapes), so 4 MiB, not 1.
    max_body: int = 4 * 1024 * 1024
    # False only with --no-auth: every request is then accepted unsigned.
    auth: bool = True
    # How long STOPPED tasks stay describable (AWS: at least an hour).
    stopped_retention: float = 3600.0
    # Ephemeral-storage filesystems of the default size made ahead of the tasks that take them.
    warm_filesystems: int = 2
    # Tasks being started at once; the rest wait in PROVISIONING (see control/tasks.py).
    start_concurrency: int = 6
    # Seconds between passes of the metric sampler (CloudWatch publishes each minute).
    metrics_interval: float = 60.0
    # Fargate's prices for the bill (model/billing.py; `--prices FILE` overrides them).
    prices: Prices = field(default_factory=Prices)
    # The sandbox tier of tasks that name none (model/isolation.py): ECS platform version
    # LATEST or none, pods without a runtimeClassName.
    isolation: str = "runc"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "fargo.db"


def default_endpoint() -> str:
    return os.environ.get("FARGO_ENDPOINT", f"http://127.0.0.1:{DEFAULT_PORT}")
