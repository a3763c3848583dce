"""The host's load balancers (port/loadbalancer.py's LoadBalancers): one HAProxy each, in a
network namespace of its own, its files under <run_dir>/<id>/.

How a change is applied, so that no established connection is dropped:
- targets come and go through the runtime API: a new one joins forced down and is given
  traffic once it passed `healthy_threshold` checks (as an ELBv2 target leaves `initial`);
  draining is HAProxy's drain state (no new requests, established ones finish; checks go
  on); a removed one is put in maintenance, its sessions shut (ELBv2 closes them at the end
  of the deregistration delay, which control has waited out) and deleted.
- anything else (listeners, rules, health-check settings) is a seamless reload: the servers'
  states are dumped into the state file the new worker loads, the file lists only servers
  HAProxy already runs (new ones join as above afterwards), and the master hands the
  listening sockets to the new worker while the old one finishes its connections.
The configuration on disk is always the whole spec (skeleton plus every server line), so a
later apply sees what changed by comparing it without its server lines.

A spec's security groups are not HAProxy's business: control puts the load balancer's
addresses into them through the Network port (port.loadbalancer.interface_id names its
interfaces), and the firewall filters its traffic as a task's."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import resource
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyroute2.netlink.exceptions import NetlinkError

from ...port.errors import AgentError
from ...port.loadbalancer import LoadBalancerError, LoadBalancerSpec, TargetCheck
from ..netnames import NETNS_DIR
from ..network import HostNetwork
from ..runfiles import atomic_write
from . import runtime
from .config import (
    ID_RE,
    Paths,
    Rendered,
    Server,
    Settings,
    render,
    skeleton,
)
from .netns import Address, LbNetns, netns_key
from .process import Haproxy, in_netns

log = logging.getLogger("fargo.agent.lb")
RECORD = "lb.json"
DELETE_TRIES = 20  # a removed server's last connections may take a moment to close


class HaproxyLoadBalancers:
    """LoadBalancers on this host, made with the same network (prefix, bridges) as its tasks.

    run_dir: where each load balancer's files go (default /run/<prefix>-lb); haproxy: the
    binary; threads: HAProxy's nbthread per load balancer (default: up to 4 CPUs)."""

    def __init__(self, network: HostNetwork, run_dir: Path | None = None, *,
                 haproxy: str = "haproxy", threads: int | None = None) -> None:
        self.network = network
        self.run_dir = run_dir or Path(f"/run/{network.prefix}-lb")
        self.netns = LbNetns(network)
        self.haproxy = Haproxy(haproxy)
        self.settings = Settings(threads=threads or min(4, os.cpu_count() or 1),
                                 maxconn=_maxconn(), user=_haproxy_user())
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    # ------------------------------------------------------------------ the port

    def apply(self, spec: LoadBalancerSpec) -> None:
        full = render(spec, self.paths(spec.id), self.settings)  # refuses a bad spec first
        with self._lock(spec.id):
            paths = self.paths(spec.id)
            try:
                if self.haproxy.master(paths) is None:
                    self._create(spec, paths, full)
                else:
                    self._update(spec, paths, full)
            except LoadBalancerError:
                raise
            except (AgentError, NetlinkError, OSError) as err:
                raise LoadBalancerError(f"load balancer {spec.id}: {err}") from err

    def remove(self, lb_id: str) -> None:
        with self._lock(lb_id):
            self._remove(lb_id)

    def checks(self, lb_id: str) -> list[TargetCheck]:
        paths = self.paths(lb_id)
        if self.haproxy.master(paths) is None:
            raise LoadBalancerError(f"load balancer {lb_id} is not running on this host")
        try:
            return runtime.parse_stat(runtime.command_retrying(paths.stats, "show stat -1 4 -1"))
        except OSError as err:
            raise LoadBalancerError(f"load balancer {lb_id}: its runtime API: {err}") from err

    def running(self) -> list[str]:
        if not self.run_dir.is_dir():
            return []
        return sorted(d.name for d in self.run_dir.iterdir()
                      if ID_RE.match(d.name) and self.haproxy.master(self.paths(d.name)))

    # ------------------------------------------------------------------ housekeeping

    def purge(self) -> None:
        """Every load balancer of this prefix, and whatever a lost record left: processes in
        a `<prefix>-lb-*` netns, the netns, its veths (`fargo purge`)."""
        ids = set()
        if self.run_dir.is_dir():
            ids |= {d.name for d in self.run_dir.iterdir() if ID_RE.match(d.name)}
        head = f"{self.network.prefix}-{netns_key('')}"  # <prefix>-lb-<id>
        with contextlib.suppress(FileNotFoundError):
            ids |= {n[len(head):] for n in os.listdir(NETNS_DIR)
                    if n.startswith(head) and ID_RE.match(n[len(head):])}
        for lb_id in sorted(ids):
            try:
                self.remove(lb_id)
            except Exception:  # noqa: BLE001 - purge goes on with the rest
                log.exception("purging load balancer %s", lb_id)
        with contextlib.suppress(OSError):
            self.run_dir.rmdir()

    def paths(self, lb_id: str) -> Paths:
        if not ID_RE.match(lb_id):
            raise LoadBalancerError(f"load balancer id must match {ID_RE.pattern}: {lb_id!r}")
        return Paths(str(self.run_dir / lb_id))

    def netns_path(self, lb_id: str) -> str:
        return self.netns.netns_path(lb_id)

    # ------------------------------------------------------------------ making one

    def _create(self, spec: LoadBalancerSpec, paths: Paths, full: Rendered) -> None:
        self._remove(spec.id)  # what a dead one left
        try:
            self.run_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.mkdir(paths.dir, 0o700)
            addresses = [Address.of(s, ip) for s, ip in spec.addresses]
            self._write_record(paths, addresses)  # first: remove() finds the veths by it
            _stage(paths, full)
            atomic_write(Path(paths.config), full.text)
            self.haproxy.check(paths.config)
            # It starts without servers: they join through the runtime API, down.
            atomic_write(Path(paths.config), render(spec, paths, self.settings, set()).text)
            self.netns.converge(spec.id, addresses, [])
            self.haproxy.start(paths, self.netns_path(spec.id))
            self._servers(paths, full, {})
            atomic_write(Path(paths.config), full.text)
        except BaseException as err:
            try:
                self._remove(spec.id)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                log.exception("removing what a failed load balancer %s left", spec.id)
            if isinstance(err, LoadBalancerError):
                raise
            if isinstance(err, AgentError | NetlinkError | OSError):
                raise LoadBalancerError(f"load balancer {spec.id}: {err}") from err
            raise

    # ------------------------------------------------------------------ changing one

    def _update(self, spec: LoadBalancerSpec, paths: Paths, full: Rendered) -> None:
        addresses = [Address.of(s, ip) for s, ip in spec.addresses]
        before = self._read_record(paths)
        if before != addresses or not self._veths_present(spec.id, addresses):
            wanted = {a.subnet_id for a in addresses}
            gone = [a.subnet_id for a in before if a.subnet_id not in wanted]
            self._write_record(paths, _union(before, addresses))
            self.netns.converge(spec.id, addresses, gone)
            self._write_record(paths, addresses)
        current = self._state(paths)
        try:
            on_disk = Path(paths.config).read_text()
        except OSError:
            on_disk = ""
        if skeleton(on_disk) != skeleton(full.text):
            self._reload(spec, paths, set(current) & set(full.servers), on_disk)
            current = self._state(paths)
        if not self._servers(paths, full, current):
            # A removed server kept connections past its shutdown: a reload drops it (the old
            # worker lets them finish).
            self._reload(spec, paths, set(full.servers) & set(self._state(paths)), on_disk)
            self._servers(paths, full, self._state(paths))
        atomic_write(Path(paths.config), full.text)
        _sweep_files(paths, full)

    def _reload(self, spec: LoadBalancerSpec, paths: Paths, present: set[str],
                on_disk: str) -> None:
        staged = render(spec, paths, self.settings, present)
        _stage(paths, staged)
        new = Path(paths.config + ".new")
        atomic_write(new, staged.text)
        try:
            self.haproxy.check(str(new))
        finally:
            with contextlib.suppress(FileNotFoundError):
                new.unlink()
        atomic_write(Path(paths.state), runtime.command(paths.stats, "show servers state"))
        atomic_write(Path(paths.config), staged.text)
        try:
            self.haproxy.reload(paths)
        except LoadBalancerError:
            atomic_write(Path(paths.config), on_disk)  # what the running worker serves
            raise

    def _servers(self, paths: Paths, full: Rendered,
                 current: dict[str, runtime.ServerState]) -> bool:
        """Converge the running servers on the spec's; False if a removed one would not go."""
        removed_all = True
        for key in sorted(set(current) - set(full.servers)):
            removed_all &= self._delete(paths, key)
        sticky: set[str] = set()
        for key, server in full.servers.items():
            have = current.get(key)
            if have is None:
                self._add(paths, server)
                if server.sticky:
                    sticky.add(server.backend)
            elif server.draining and not have.draining:
                self._cli(paths, f"set server {key} state drain")
            elif not server.draining and (have.draining or have.maint):
                self._cli(paths, f"set server {key} state ready")
        for backend in sorted(sticky):  # dynamic cookies of servers added at run time
            self._cli(paths, f"enable dynamic-cookie backend {backend}")
        return removed_all

    def _add(self, paths: Paths, server: Server) -> None:
        key = f"{server.backend}/{server.name}"
        # Born in maintenance with weight 0; checks on; out of maintenance (health reset to
        # up), forced down so it needs `rise` passing checks; only then its weight back.
        self._cli(paths, f"add server {key} {server.address} {server.options} weight 0",
                  expect="New server registered.")
        self._cli(paths, f"enable health {key}")
        self._cli(paths, f"set server {key} state ready")
        self._cli(paths, f"set server {key} health down")
        self._cli(paths, f"set server {key} weight 1")
        if server.draining:
            self._cli(paths, f"set server {key} state drain")

    def _delete(self, paths: Paths, key: str) -> bool:
        self._cli(paths, f"set server {key} state maint")
        self._cli(paths, f"shutdown sessions server {key}")
        for _ in range(DELETE_TRIES):
            answer = runtime.command(paths.stats, f"del server {key}").strip()
            if answer == "Server deleted." or answer.startswith("No such server"):
                return True
            time.sleep(0.05)
        log.warning("server %s kept connections; a reload removes it", key)
        return False

    def _cli(self, paths: Paths, line: str, expect: str = "") -> str:
        answer = runtime.command(paths.stats, line).strip()
        if answer != expect:
            raise LoadBalancerError(f"HAProxy refused {line!r}: {answer}")
        return answer

    def _state(self, paths: Paths) -> dict[str, runtime.ServerState]:
        return runtime.parse_servers_state(
            runtime.command_retrying(paths.stats, "show servers state"))

    # ------------------------------------------------------------------ removing one

    def _remove(self, lb_id: str) -> None:
        paths = self.paths(lb_id)
        subnets = [a.subnet_id for a in self._read_record(paths)]
        self.haproxy.stop(paths, self.netns.inode(lb_id))
        if self.netns.exists(lb_id) or subnets:
            self.netns.remove(lb_id, subnets)
        shutil.rmtree(paths.dir, ignore_errors=True)

    # ------------------------------------------------------------------ records

    def _write_record(self, paths: Paths, addresses: list[Address]) -> None:
        atomic_write(Path(paths.dir) / RECORD, json.dumps(
            {"addresses": [[a.subnet_id, a.cidr, a.ip] for a in addresses]}))

    def _read_record(self, paths: Paths) -> list[Address]:
        try:
            raw = json.loads((Path(paths.dir) / RECORD).read_text())
            return [Address(str(s), str(c), str(i)) for s, c, i in raw["addresses"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _veths_present(self, lb_id: str, addresses: list[Address]) -> bool:
        return all(os.path.exists(f"/sys/class/net/{self.netns.host_veth(lb_id, a.subnet_id)}")
                   for a in addresses)

    def _lock(self, lb_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(lb_id, threading.Lock())


def _union(a: list[Address], b: list[Address]) -> list[Address]:
    seen = {x.subnet_id for x in b}
    return b + [x for x in a if x.subnet_id not in seen]


def _stage(paths: Paths, rendered: Rendered) -> None:
    """The configuration's files (fixed-response bodies), named by their content."""
    os.makedirs(paths.files, mode=0o700, exist_ok=True)
    for name, body in rendered.files.items():
        target = Path(paths.files) / name
        if not target.exists():
            _write_bytes(target, body)


def _sweep_files(paths: Paths, rendered: Rendered) -> None:
    with contextlib.suppress(OSError):
        for entry in os.listdir(paths.files):
            if entry not in rendered.files:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(paths.files, entry))


def _write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _maxconn() -> int:
    """What this process's hard nofile limit allows HAProxy (two descriptors a connection,
    and some of its own), up to 20000."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 20000
    return max(256, min(20000, (hard - 500) // 2))


def _haproxy_user() -> str | None:
    """Debian's package makes a haproxy user: the workers drop to it once bound."""
    try:
        pwd.getpwnam("haproxy")
    except KeyError:
        return None
    return "haproxy"


def leftover_processes(network: HostNetwork, lb_id: str) -> list[int]:
    """Processes still in a load balancer's netns (tests check none is left)."""
    path = network.names.netns_path(netns_key(lb_id))
    try:
        return in_netns(os.stat(path).st_ino)
    except OSError:
        return []


if TYPE_CHECKING:  # mypy checks that this is the port's LoadBalancers
    from ...port.loadbalancer import LoadBalancers

    def _is_port(plane: HaproxyLoadBalancers) -> LoadBalancers:
        return plane
