"""Sandbox tiers: which kernel a task's containers talk to, and what each tier cannot give.

`runc` runs a task's containers on the host kernel, behind a user namespace, seccomp and
cgroups. `gvisor` runs all containers of one task in one gVisor sandbox (runsc): an
application kernel of the task's own, as one microVM per task would be.

What other modules use:
- `RUNC`, `GVISOR`, `TIERS`.
- `ECS_PLATFORMS`: the Fargate platform version an ECS user names → the tier; `platform_of`
  renders a task's tier back as the version DescribeTasks shows.
- `HANDLERS`: a RuntimeClass handler → the tier.
- `refusal(tier, task_memory_mib, containers)`: why a task cannot run in that tier (None: it
  can); `sandbox_memory_mib(...)`: the limit the sandbox as a whole gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RUNC, GVISOR = "runc", "gvisor"
TIERS = (RUNC, GVISOR)

# "LATEST" (or none) is the server's default tier, resolved when the task is made.
ECS_PLATFORMS = {"1.4.0": RUNC, "1.4.0-gvisor": GVISOR}
HANDLERS = {"runc": RUNC, "runsc": GVISOR}


def platform_of(tier: str) -> str:
    return "1.4.0-gvisor" if tier == GVISOR else "1.4.0"


def tier_of_platform(version: str | None, default: str) -> str:
    """The tier a platform version names; LATEST or none: the server's default."""
    if not version or version == "LATEST":
        return default
    return ECS_PLATFORMS[version]


@dataclass(frozen=True)
class ContainerLimits:
    """What the tier rule needs of one container: its name and hard memory limit."""

    name: str
    memory_mib: int | None = None


def refusal(tier: str, task_memory_mib: int, containers: Sequence[ContainerLimits]) -> str | None:
    """gVisor runs every container of a task in one kernel, so it can limit the sandbox as a
    whole but not one container apart from the others: a container's hard memory limit below
    the task's is kept only when that container is the task's only one."""
    if tier != GVISOR or len(containers) < 2:
        return None
    limited = [c.name for c in containers
               if c.memory_mib is not None and c.memory_mib < task_memory_mib]
    if not limited:
        return None
    return (f"the gvisor sandbox cannot limit one container's memory apart from the others "
            f"(one kernel runs them all): container {limited[0]} is below the task's "
            f"{task_memory_mib} MiB; drop its limit or use runc (platform version 1.4.0)")


def sandbox_memory_mib(task_memory_mib: int, containers: Sequence[ContainerLimits]) -> int:
    """The limit of the sandbox as a whole: the task's, or its only container's if lower."""
    if len(containers) == 1 and containers[0].memory_mib is not None:
        return min(task_memory_mib, containers[0].memory_mib)
    return task_memory_mib
