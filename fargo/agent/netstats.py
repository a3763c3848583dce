"""Tasks' interface counters, read from the host side of their veths: /proc/net/dev of the
host's netns lists every veth in one file, so a pass over all tasks reads it once (kept for
up to a second) instead of a few sysfs files per task, and no task netns is entered. What
the host's end receives is what the task sent: the counters are swapped."""

from __future__ import annotations

import threading
import time

from ..port.data import NetworkStats

PROC_NET_DEV = "/proc/net/dev"
MAX_AGE_S = 1.0
FRESH_S = 0.05  # a veth missing from a table this young is not there


def parse_net_dev(text: str) -> dict[str, tuple[int, ...]]:
    """Interface name -> its 16 counters (8 received, 8 sent), from /proc/net/dev's text."""
    out: dict[str, tuple[int, ...]] = {}
    for line in text.splitlines()[2:]:  # two header lines
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values = tuple(int(v) for v in rest.split())
        except ValueError:
            continue
        if len(values) >= 16:
            out[name.strip()] = values
    return out


def task_side(values: tuple[int, ...]) -> NetworkStats:
    """The host veth's counters as the task sees them (host rx = task tx)."""
    rx_b, rx_p, rx_e, rx_d = values[0:4]
    tx_b, tx_p, tx_e, tx_d = values[8:12]
    return NetworkStats(rx_bytes=tx_b, rx_packets=tx_p, rx_errors=tx_e, rx_dropped=tx_d,
                        tx_bytes=rx_b, tx_packets=rx_p, tx_errors=rx_e, tx_dropped=rx_d)


class NetCounters:
    def __init__(self, path: str = PROC_NET_DEV, max_age: float = MAX_AGE_S) -> None:
        self.path = path
        self.max_age = max_age
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._table: dict[str, tuple[int, ...]] = {}

    def of(self, host_veth: str) -> NetworkStats | None:
        """The task's counters behind this host veth; None: no such interface."""
        with self._lock:
            age = time.monotonic() - self._read_at
            values = self._table.get(host_veth) if age <= self.max_age else None
            if values is None and age > FRESH_S:  # old, or made before this veth was
                self._read()
                values = self._table.get(host_veth)
        return task_side(values) if values is not None else None

    def _read(self) -> None:
        try:
            with open(self.path) as f:
                self._table = parse_net_dev(f.read())
        except OSError:
            self._table = {}
        self._read_at = time.monotonic()
