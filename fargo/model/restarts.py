"""A pod's restartPolicy inside its sandbox: which exits bring a container back, and when."""

from __future__ import annotations

from .taskrecord import RestartPolicy

BACKOFF = 0.5  # seconds before the first re-creation; doubles per restart
BACKOFF_MAX = 20.0


def restart_wanted(policy: RestartPolicy, name: str, code: int | None) -> bool:
    """Always restarts app containers on any exit; init containers (and OnFailure) only on
    failure; Never never. A lost exit code counts as a failure."""
    if policy.policy == "Never":
        return False
    if policy.policy == "OnFailure" or name in policy.init:
        return code != 0
    return True


def backoff(count: int) -> float:
    # The exponent is capped: past it the cap applies anyway, and 2**1024 overflows a float.
    return min(BACKOFF * 2 ** min(max(count - 1, 0), 32), BACKOFF_MAX)
