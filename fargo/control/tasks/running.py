"""The engine's running containers, by task: what the exit watch, the health checks and the
pods' probes follow. It counts its changes, so those loops, which look several times a second,
redo their per-container bookkeeping only when something began or ended running (with
hundreds of tasks, that bookkeeping was most of an idle server's CPU)."""

from __future__ import annotations


class Running(dict[str, set[str]]):
    """task id -> names of its containers running. Change it only through add, discard and
    forget (they count); read it as a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0  # bumped by every change
        self._pairs: frozenset[tuple[str, str]] = frozenset()
        self._pairs_of = 0  # the version _pairs was made at

    def pairs(self) -> frozenset[tuple[str, str]]:
        """Every (task id, container name) running, made once per version for all readers."""
        if self._pairs_of != self.version:
            # list(): one copy in C, should anything change it while this runs
            self._pairs = frozenset((tid, n) for tid, names in list(self.items())
                                    for n in list(names))
            self._pairs_of = self.version
        return self._pairs

    def add(self, tid: str, name: str) -> None:
        names = self.setdefault(tid, set())
        if name not in names:
            names.add(name)
            self.version += 1

    def discard(self, tid: str, name: str) -> None:
        names = self.get(tid)
        if names is not None and name in names:
            names.discard(name)
            self.version += 1

    def forget(self, tid: str) -> None:
        if self.pop(tid, None) is not None:
            self.version += 1
