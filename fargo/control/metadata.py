"""What each task reaches inside its own netns, opened when its network is up and closed when
it goes: the endpoint at 169.254.170.2 (task metadata v4 and role credentials; what it serves
comes from here, api/metadata.py renders it and routes the paths), fargo's API at its
VPC's endpoint address, the very app the host's port serves, so SigV4 is checked as there,
and the VPC's DNS resolver at that same address (api/dns.py over control/dns.py's names)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from ..model.dns import View, resolver_address
from ..model.taskrecord import Task
from ..model.vpc import Subnet
from ..port.data import TaskStats
from ..port.protocols import Network, Runtime
from ..store.sqlite import Store
from .clusterdns import ClusterDns
from .dns import DnsFrontend, Names, Served
from .iam import Iam, Key

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
# Makes the HTTP handler of one task's endpoint (api/metadata.py's).
HandlerFactory = Callable[["TaskEndpoints", str], Handler]


@dataclass(frozen=True)
class _Dns:
    frontend: DnsFrontend
    names: Names
    vpc_cidr: Callable[[str], str | None]


class TaskEndpoints:
    def __init__(self, store: Store, network: Network, runtime: Runtime, iam: Iam,
                 subnets: Mapping[str, Subnet], handler: HandlerFactory):
        self.store = store
        self.network = network
        self.runtime = runtime
        self.iam = iam
        self.subnets = subnets
        self.handler = handler
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._api: web.AppRunner | None = None
        self._api_sites: dict[str, web.SockSite] = {}
        self._dns: _Dns | None = None
        self._dns_served: dict[str, Served] = {}
        # A pod's cluster DNS (control/clusterdns.py, set by the server): its address is sent
        # to the same sockets in the pod's netns, and the view knows the pod's cluster.
        self.cluster_dns: ClusterDns | None = None

    def serve_api(self, runner: web.AppRunner) -> None:
        """From now on each task's network also carries fargo's API (runner: the API's, set
        up), at its VPC's endpoint address. Never called with --no-auth: unsigned access
        stays where --host puts it."""
        self._api = runner

    def serve_dns(self, frontend: DnsFrontend, names: Names,
                  vpc_cidr: Callable[[str], str | None]) -> None:
        """From now on each task's network also carries its VPC's resolver (frontend: the
        wire side, names: what it answers; vpc_cidr: a VPC's block by id, None if gone), and
        its private DNS name is in it while its network is up."""
        self._dns = _Dns(frontend, names, vpc_cidr)

    # ---- lifecycle (the task engine's network hooks)
    async def network_ready(self, tid: str) -> None:
        if tid not in self._servers:
            sock = await asyncio.to_thread(self.network.metadata_listener, tid)
            server = web.Server(self.handler(self, tid))
            loop = asyncio.get_running_loop()
            self._servers[tid] = await loop.create_server(server, sock=sock)
        task = self.store.get_task(tid)
        if task is not None and self._dns is not None and tid not in self._dns_served:
            await self._serve_dns(task, self._dns)
        address = task.interface.endpoint if task else ""
        if self._api is None or not address or tid in self._api_sites:
            return
        sock = await asyncio.to_thread(self.network.api_listener, tid, address)
        site = web.SockSite(self._api, sock)
        try:
            await site.start()
        except BaseException:
            sock.close()
            raise
        self._api_sites[tid] = site

    async def _serve_dns(self, task: Task, dns: _Dns) -> None:
        """The task's VPC resolver (its VPC's base + 2, port 53), and its name in it."""
        subnet = self.subnets.get(task.interface.subnet_id)
        cidr = dns.vpc_cidr(subnet.vpc_id) if subnet is not None else None
        if subnet is None or cidr is None:
            return  # its VPC is gone: no address to serve at
        address = resolver_address(cidr)
        cluster = self.cluster_dns
        alias = cluster.address(task) if cluster is not None else None
        udp, tcp = await asyncio.to_thread(self.network.dns_listeners, task.id, address,
                                           (alias,) if alias else ())
        view = cluster.view(task, subnet.vpc_id) if cluster is not None else View(subnet.vpc_id)
        self._dns_served[task.id] = await dns.frontend.serve(view, udp, tcp)
        dns.names.task_up(task.id, subnet.vpc_id, cidr, task.ip, task.interface.private_dns)

    async def network_gone(self, tid: str) -> None:
        server = self._servers.pop(tid, None)
        if server is not None:
            server.close()
        served = self._dns_served.pop(tid, None)
        if self._dns is not None:
            self._dns.names.task_down(tid)
        if served is not None:
            await served.close()
        site = self._api_sites.pop(tid, None)
        if site is not None:
            await site.stop()

    async def close_all(self) -> None:
        for tid in set(self._servers) | set(self._api_sites) | set(self._dns_served):
            await self.network_gone(tid)

    # ---- what the endpoint serves
    def task(self, tid: str) -> Task | None:
        return self.store.get_task(tid)

    def subnet(self, task: Task) -> Subnet:
        return self.subnets[task.interface.subnet_id]

    async def stats(self, tid: str) -> TaskStats:
        return await asyncio.to_thread(self.runtime.stats, tid)

    def role_credentials(self, tid: str, credentials_id: str) -> Key | None:
        """The task role's current credentials, or None when this path is not the task's.
        A rotated key is written to the task's record, so a restart hands out the same."""
        task = self.store.get_task(tid)
        if task is None or not task.role or credentials_id != task.credentials_id:
            return None
        key = self.iam.current_role_credentials(task.role, task.role_key)
        if key.id != task.role_key:
            task = self.store.get_task(tid)  # as fresh as can be: the engine writes it too
            if task is not None:
                task.role_key = key.id
                self.store.put_task(task)
        return key
