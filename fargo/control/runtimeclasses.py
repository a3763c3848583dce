"""Each cluster's RuntimeClasses, and the tier a pod runs in (model/runtimeclass.py).

The two built-in classes are made when a cluster's first pod is admitted or scheduled, and
again if deleted (as EKS re-makes what its add-ons own); a user's classes stay as made."""

from __future__ import annotations

from typing import Any

from ..model import runtimeclass as rc
from .kubestate import KubeState

PLURAL = "runtimeclasses"


def ensure(state: KubeState, cluster: str) -> None:
    for name in rc.BUILTIN:
        if state.find(cluster, PLURAL, "", name) is None:
            state.create(cluster, PLURAL, "", rc.builtin(name))


def admit(state: KubeState, cluster: str, pod: dict[str, Any]) -> None:
    """At create: a pod naming a class that does not exist is refused (403), as the
    apiserver's RuntimeClass admission refuses it."""
    ensure(state, cluster)
    name = rc.class_name(pod)
    if name is not None and state.find(cluster, PLURAL, "", name) is None:
        raise rc.not_found(pod, name)


def resolve(state: KubeState, cluster: str, pod: dict[str, Any],
            profile: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """At placement: (the pod's tier, None), the tier None meaning the server's default; or
    (None, why the pod cannot be placed: its class is gone). A pod naming no class takes its
    profile's default class, written into its spec as admission would."""
    ensure(state, cluster)
    name = rc.class_name(pod)
    if name is None:
        name = rc.profile_default(profile)
        if name is None:
            return None, None
        pod.setdefault("spec", {})["runtimeClassName"] = name
    found = state.find(cluster, PLURAL, "", name)
    if found is None:
        return None, f'RuntimeClass "{name}" not found'
    return rc.tier(found), None
