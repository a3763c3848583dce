"""The names the VPC resolver answers, gathered from every part of fargo.

`Names` is the one registry: running tasks' private DNS names (and their PTRs) come in
through the task endpoints' hooks (control/metadata.py); other parts either put names of their
own (`put(name, addresses, ttl, vpc_id)` / `remove(name)`: load balancers' DNSNames) or add a
`RecordSource` that is asked at each query (Cloud Map, whose answers are drawn per query by
its routing policy). `resolve(view, qname, qtype)` answers one question, by model/dns.py's
rules; api/dns.py speaks the wire format and serves it on the sockets opened for it (each
task's netns at its VPC's base + 2, and the host's loopback).

Everything is in memory and read under one lock: a query never touches the store."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..model import dns
from ..model.dns import AAAA, A, Answer, Ptr, Record, View, Zone


class RecordSource(Protocol):
    """A part of fargo that answers names of its own, asked at each query."""

    def zones(self, view: View) -> Sequence[Zone]:
        """The zones it holds with authority in this view (below them, what it does not
        know does not exist)."""
        ...

    def records_at(self, view: View, name: str) -> Sequence[Record] | None:
        """The records at a name (a key of model/dns.name_key), as this view sees them;
        [] when the name exists without records, None when it knows no such name."""
        ...


class Served(Protocol):
    """Sockets a DNS frontend is serving; closed when the task's network goes."""

    async def close(self) -> None: ...


class DnsFrontend(Protocol):
    """The wire side (api/dns.py): serves resolve() on listening sockets."""

    def serve(self, view: View, udp: object, tcp: object) -> Awaitable[Served]: ...


@dataclass(frozen=True)
class _Static:
    vpc_id: str | None
    records: tuple[Record, ...]


@dataclass(frozen=True)
class _TaskName:
    vpc_id: str
    ip: str
    name: str


class Names:
    """The resolver's registry. Thread-safe: the API's handlers, the engine's hooks and the
    resolver's queries all call it."""

    def __init__(self, region: str):
        self.region = region
        self.internal = dns.internal_domain(region)
        self._lock = threading.Lock()
        self._static: dict[str, _Static] = {}
        self._sources: list[RecordSource] = []
        self._tasks: dict[str, _TaskName] = {}  # task id -> its name
        self._by_ip: dict[str, _TaskName] = {}
        self._vpc_blocks: dict[str, str] = {}  # VPC id -> CIDR, of VPCs that had tasks

    # ---- what other parts of fargo register
    def put(self, name: str, addresses: Iterable[str], ttl: int = dns.DEFAULT_TTL,
            vpc_id: str | None = None) -> None:
        """Answer `name` with these IPv4 (A) and IPv6 (AAAA) addresses, replacing what it
        had; vpc_id None: in every VPC and on the host. ValueError for a name or address no
        resolver could serve."""
        key = dns.name_key(name)
        if key is None:
            raise ValueError(f"not a DNS name: {name[:300]!r}")
        if not 0 <= ttl <= 2 ** 31 - 1:
            raise ValueError(f"TTL out of range: {ttl}")
        records: list[Record] = []
        for text in addresses:
            ip = ipaddress.ip_address(text)
            records.append(Record(key, ttl, A(str(ip)) if ip.version == 4 else AAAA(str(ip))))
        with self._lock:
            self._static[key] = _Static(vpc_id, tuple(records))

    def remove(self, name: str) -> bool:
        """Whether the name was there."""
        key = dns.name_key(name)
        with self._lock:
            return key is not None and self._static.pop(key, None) is not None

    def add_source(self, source: RecordSource) -> None:
        with self._lock:
            self._sources.append(source)

    # ---- running tasks (the task endpoints' hooks)
    def task_up(self, tid: str, vpc_id: str, vpc_cidr: str, ip: str, name: str) -> None:
        entry = _TaskName(vpc_id, ip, dns.name_key(name) or dns.private_name(ip, self.region))
        with self._lock:
            self._tasks[tid] = entry
            self._by_ip[ip] = entry
            self._vpc_blocks[vpc_id] = vpc_cidr

    def task_down(self, tid: str) -> None:
        with self._lock:
            entry = self._tasks.pop(tid, None)
            if entry is not None and self._by_ip.get(entry.ip) is entry:
                del self._by_ip[entry.ip]

    # ---- queries
    def resolve(self, view: View, qname: str, qtype: str) -> Answer:
        with self._lock:
            sources = list(self._sources)
            zones = self._zones(view)
        for source in sources:
            zones += source.zones(view)

        def lookup(name: str) -> Sequence[Record] | None:
            return self._records_at(view, name, sources)

        return dns.answer(qname, qtype, zones, lookup)

    def _zones(self, view: View) -> list[Zone]:
        zones = [Zone(self.internal)]
        zones += [Zone(dns.reverse_zone(cidr)) for vpc_id, cidr in self._vpc_blocks.items()
                  if view.sees(vpc_id)]
        return zones

    def _records_at(self, view: View, name: str,
                    sources: Sequence[RecordSource]) -> Sequence[Record] | None:
        found: list[Record] | None = None
        with self._lock:
            static = self._static.get(name)
            if static is not None and view.sees(static.vpc_id):
                found = list(static.records)
            task = self._task_at(view, name)
            if task is not None:
                found = (found or []) + [task]
        for source in sources:
            more = source.records_at(view, name)
            if more is not None:
                found = (found or []) + list(more)
        return found

    def _task_at(self, view: View, name: str) -> Record | None:
        ip = dns.ip_of_private_name(name, self.region)
        if ip is not None:
            entry = self._by_ip.get(ip)
            if entry is not None and entry.name == name and view.sees(entry.vpc_id):
                return Record(name, dns.DEFAULT_TTL, A(ip))
            return None
        ip = dns.ip_of_reverse(name)
        if ip is not None:
            entry = self._by_ip.get(ip)
            if entry is not None and view.sees(entry.vpc_id):
                return Record(name, dns.DEFAULT_TTL, Ptr(entry.name))
        return None

