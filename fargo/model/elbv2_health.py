"""Target health as DescribeTargetHealth states it: the state and reason code AWS gives a
registered target, from what fargo knows of it (registered, in use by a listener, draining)
and from the data plane's last health check (HAProxy's status and check result). Pure."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL, HEALTHY, UNHEALTHY = "initial", "healthy", "unhealthy"
UNUSED, DRAINING = "unused", "draining"
_TIMEOUTS = ("L4TOUT", "L6TOUT", "L7TOUT")


@dataclass(frozen=True)
class Health:
    state: str
    reason: str | None = None
    description: str | None = None


NOT_REGISTERED = Health(UNUSED, "Target.NotRegistered", "Target is not registered to the "
                        "target group")
NOT_IN_USE = Health(UNUSED, "Target.NotInUse", "Target group is not configured to receive "
                    "traffic from the load balancer")
DEREGISTERING = Health(DRAINING, "Target.DeregistrationInProgress",
                       "Target deregistration is in progress")
REGISTERING = Health(INITIAL, "Elb.RegistrationInProgress", "Target registration is in "
                     "progress")
CHECKING = Health(INITIAL, "Elb.InitialHealthChecking", "Initial health checks in progress")


def target_health(*, in_use: bool, draining: bool, status: str | None,
                  check: str | None = None, code: int | None = None) -> Health:
    """status: HAProxy's view of the target (UP, DOWN, INIT, DRAIN, MAINT) or None when the
    data plane does not report it yet; check: HAProxy's last check status (L7OK, L7STS,
    L4TOUT, L4CON, ...); code: the HTTP status that check got."""
    if draining:
        return DEREGISTERING
    if not in_use:
        return NOT_IN_USE
    if status is None:
        return REGISTERING
    if status == "UP":
        return Health(HEALTHY)
    if status == "INIT" or (status == "DOWN" and check in (None, "", "INI")):
        return CHECKING
    if status == "DRAIN":
        return DEREGISTERING
    if status == "MAINT":
        return NOT_IN_USE
    if check == "L7STS":
        shown = f"[{code}]" if code is not None else "[]"
        return Health(UNHEALTHY, "Target.ResponseCodeMismatch",
                      f"Health checks failed with these codes: {shown}")
    if check in _TIMEOUTS:
        return Health(UNHEALTHY, "Target.Timeout", "Request timed out")
    return Health(UNHEALTHY, "Target.FailedHealthChecks", "Health checks failed")
