"""What the apiserver knows of each kind besides its schema: its group and version, whether it
is namespaced, how a write treats its status (the status subresource), whether spec changes
bump metadata.generation, its /scale paths, and the kind's own checks and defaults.

One row per kind; the store keys objects by plural, so a plural is unique across groups.
Pure: the checks raise model/kubeerrors.py's errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
# (the new object, the stored one or None on create): raise KubeError (422 Invalid) on a
# refusal. Runs after the generic metadata checks.
Check = Callable[[Obj, Obj | None], None]
Default = Callable[[Obj], None]  # fills in what the apiserver defaults, in place


@dataclass(frozen=True)
class KindRule:
    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    # A status subresource: a write to the object keeps the stored status, a write to
    # .../status keeps everything else (kinds without one take both from the body).
    status: bool = False
    # spec changes raise metadata.generation (kinds with a spec a controller acts on)
    generation: bool = False
    # /scale: the object's replicas live at spec.replicas, its selector at spec.selector
    scale: bool = False
    check: Check | None = None
    default: Default | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


_RULES: dict[str, KindRule] = {}
# The modules (of this package) whose import registers their kinds' rows.
KIND_MODULES: tuple[str, ...] = ("configmap", "secret", "serviceaccount", "batchjobs",
                                 "cronjobs", "daemonsets", "replicaset", "deployment",
                                 "netpolicy", "sgpolicy", "kubeservice", "endpoints",
                                 "ingress", "runtimeclass")
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib
        for name in KIND_MODULES:
            importlib.import_module(f"{__package__}.{name}")


def register(*rules: KindRule) -> None:
    """Kinds' modules add their rows at import (each named in KIND_MODULES): each module
    owns its kinds' checks, and this table only names them."""
    for rule in rules:
        _RULES[rule.plural] = rule


def rule(plural: str) -> KindRule:
    _load()
    return _RULES[plural]


def find(plural: str) -> KindRule | None:
    _load()
    return _RULES.get(plural)


def all_rules() -> list[KindRule]:
    _load()
    return list(_RULES.values())


# The core kinds whose writes have handlers of their own (control/pods.py, kubestate.py) or
# are fargo's alone; their rules still say what they are.
register(
    KindRule("pods", "Pod", status=True),
    KindRule("nodes", "Node", namespaced=False, status=True),
    KindRule("namespaces", "Namespace", namespaced=False, status=True),
    KindRule("events", "Event"),
)
