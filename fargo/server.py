"""Wiring: one process that holds the store, the reconcilers, the agent and the HTTP faces."""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import signal
from typing import Any

from aiohttp import web

from .agent.host import HostRuntime
from .agent.lb import HaproxyLoadBalancers
from .agent.netplane import HostNetworkPlane
from .agent.ocispec import raise_nofile_limit
from .agent.registry import LocalRegistry
from .api import metadata as metadata_face
from .api.app import Faces, Runner, build_app
from .api.dns import DnsServer, ServedSockets
from .api.ec2 import Ec2Face
from .api.kube import exec as kube_exec
from .api.tls import server_tls
from .config import Settings
from .control.capacity import Capacity, host_resources
from .control.catalog import Catalog
from .control.cloudmap import CloudMap
from .control.clusterdns import ClusterDns
from .control.cost import CostExplorer
from .control.cronjobs import CronJobController
from .control.cwlogs import CloudWatchLogs
from .control.daemonsets import DaemonSetController
from .control.deployments import Deployments
from .control.dns import Names
from .control.ecs import Ecs
from .control.eks import Eks
from .control.elbv2 import Elbv2
from .control.endpoints import EndpointsController
from .control.gc import GarbageCollector
from .control.iam import Iam
from .control.interfaces import TaskInterfaces
from .control.jobs import JobController
from .control.kubecontrol import KubeControllers
from .control.kubelb import LoadBalancerController
from .control.kubeproxy import KubeProxy
from .control.kubeservices import KubeDnsService, ServiceLinks, ServiceWrites
from .control.kubestate import KubeState
from .control.logroutes import LogStarts
from .control.logs import ContainerLogs
from .control.logship import LogShipper
from .control.metadata import TaskEndpoints
from .control.metrics import Metrics
from .control.metricsampler import MetricSampler
from .control.netpolicy import NetworkPolicies
from .control.network import Networks, TaskNet
from .control.objects import Objects
from .control.podmetrics import PodUsage
from .control.pods import Pods
from .control.podstreams import PodStreams
from .control.replicasets import ReplicaSets
from .control.satokens import ServiceAccountTokens
from .control.secrets import Secrets
from .control.serviceaccounts import ServiceAccounts
from .control.services import Services, ServiceScheduler
from .control.services.registries import ServiceRegistries
from .control.services.targets import ServiceTargets
from .control.ssm import Ssm
from .control.tasks import TaskEngine
from .control.tasks.starter import SecretSources
from .control.volumes import TaskVolumes
from .heap import HeapTrimmer, limit_arenas
from .model.dns import resolver_address
from .model.names import ACCOUNT
from .model.taskrecord import ContainerDef, Task
from .model.vpc import default_vpc
from .port.data import ContainerSpec
from .store.kube import KubeTables
from .store.metrics import MetricTables
from .store.services import ServiceTable
from .store.sqlite import Store
from .store.usage import UsageTable

log = logging.getLogger("fargo")


class Server:
    def __init__(self, settings: Settings):
        self.settings = settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path)
        self.vpc = default_vpc(settings.region, settings.vpc_cidr)
        cpu, mem = host_resources()
        self.capacity = Capacity(settings.cpu_units or cpu, settings.memory_mib or mem,
                                 settings.overcommit)
        self.network = HostNetworkPlane(prefix=settings.prefix)
        self.runtime = HostRuntime(settings.state_dir, self.network, prefix=settings.prefix)
        self.catalog = Catalog(self.store)
        self.heap = HeapTrimmer()  # freed C heap back to the system after bursts
        self.iam = Iam(self.store)
        self.secrets = Secrets(self.store)
        self.ssm = Ssm(self.store)
        self.networks = Networks(self.store, self.vpc, self.network, self._task_nets)
        self.enis = TaskInterfaces(self.store.active_tasks, self.networks)  # EC2's ENIs
        self.endpoints = TaskEndpoints(self.store, self.network, self.runtime, self.iam,
                                       self.networks.subnets, metadata_face.handler)
        self.engine = TaskEngine(self.store, runtime=self.runtime, images=self.runtime,
                                 network=self.network, vpc=self.vpc, capacity=self.capacity,
                                 retention=settings.stopped_retention,
                                 credentials=self.secrets.registry_credentials,
                                 hooks=self.endpoints, networks=self.networks,
                                 start_concurrency=settings.start_concurrency,
                                 api_in_tasks=settings.auth, isolation=settings.isolation)
        # ELBv2: load balancers on the host's data plane, their addresses from the tasks' pool.
        self.lbs = HaproxyLoadBalancers(self.network.network)  # one HAProxy per load balancer
        self.elbv2 = Elbv2(self.store, self.networks, self.engine.placement, self.lbs,
                           settings.region)
        self.logs = ContainerLogs(self.store, self.runtime)
        self.cwlogs = CloudWatchLogs(self.store)  # CloudWatch Logs: the API's and the shippers'
        self.ecs = Ecs(self.catalog, self.engine)
        self.engine.starter.sources = SecretSources(self.secrets, self.ssm)  # tasks' secrets
        # The VPC resolver: each task's netns at its VPC's base + 2, the host on loopback.
        self.names = Names(settings.region)
        self.dns = DnsServer(self.names)
        self.endpoints.serve_dns(self.dns, self.names, self._vpc_cidr)
        self.elbv2.reconciler.names = self.names  # load balancers' DNSNames
        # Cloud Map: its private DNS namespaces are zones of their VPC's resolver.
        self.cloudmap = CloudMap(self.store, settings.region,
                                 lambda: [v.id for v in self.networks.vpc_items()])
        self.names.add_source(self.cloudmap)
        self.engine.containers.resolver = self._resolver_of
        self._host_dns: ServedSockets | None = None
        service_table = ServiceTable(self.store)
        targets = ServiceTargets(self.elbv2)  # services' tasks in target groups
        registries = ServiceRegistries(self.cloudmap)  # ... and in Cloud Map services
        self.scheduler = ServiceScheduler(service_table, self.catalog, self.engine,
                                          targets=targets, registries=registries)
        self.services = Services(self.catalog, self.engine, service_table, targets=targets,
                                 registries=registries,
                                 poke=self.scheduler.poke)
        self.engine.book.listeners.append(self.scheduler.task_changed)
        # CloudWatch metrics: one sampler reads every running task through the port.
        self.metrics = Metrics(MetricTables(self.store), ACCOUNT)
        self.sampler = MetricSampler(self.store, self.runtime, self.metrics, service_table,
                                     interval=settings.metrics_interval)
        self.elbv2.in_use_by = self.services.using
        # EKS: clusters, Fargate profiles and each cluster's Kubernetes objects.
        self.kube_tables = KubeTables(self.store)
        self.kube_state = KubeState(self.kube_tables)
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        # kubectl sends its bearer token only over TLS: the Kubernetes faces get an HTTPS port.
        self.kube_port = settings.kube_port or settings.port + 1
        self.tls, ca_data = server_tls(settings.state_dir, [host, "127.0.0.1"])
        self.eks = Eks(self.kube_tables, self.kube_state, self.networks.subnets, self.vpc.id,
                       f"https://{host}:{self.kube_port}", ca_data=ca_data)
        self.pods = Pods(self.kube_tables, self.kube_state, self.engine, self.eks,
                         settings.region)
        self.eks.pods = self.pods
        self.pods.usage = PodUsage(self.kube_state, self.store, self.runtime, self.sampler)
        self.pod_streams = PodStreams(self.kube_state, self.runtime, self.network)
        # Service account tokens (signed per cluster) and the volumes of tasks and pods: made
        # with the sandbox, a pod's filled from its objects before its containers, kept fresh.
        self.sa_tokens = ServiceAccountTokens(self.kube_state, self.eks.token_key,
                                              settings.region)
        self.volumes = TaskVolumes(self.kube_state, self.runtime, self.engine.book,
                                   self.sa_tokens, self.store.active_pod_tasks)
        self.engine.starter.volumes = self.volumes
        self.engine.containers.extras = self._container_extras
        self.service_links = ServiceLinks(self.kube_state)
        # Each cluster's DNS (cluster.local) in the resolver, for its own pods only; a pod's
        # netns sends the cluster DNS address (base + 10 of its service range) there.
        self.cluster_dns = ClusterDns(self.kube_state, self._service_cidr, settings.region)
        self.names.add_source(self.cluster_dns)
        self.endpoints.cluster_dns = self.cluster_dns
        # Kubernetes kinds without writes of their own, and the controllers of each cluster.
        self.objects = Objects(self.kube_state)
        # NetworkPolicies in the kernel, beside the security groups (a packet passes both).
        self.netpolicies = NetworkPolicies(self.kube_state, self.kube_tables, self.network,
                                           lambda: [s.id for s in self.networks.all_subnets()])
        # The AWS Load Balancer Controller: ALBs for Ingresses, NLBs for LoadBalancer Services.
        self.kube_lbs = LoadBalancerController(self.kube_state, self.elbv2,
                                               self.kube_tables.get_cluster)
        self.pods.before_stop.append(self.kube_lbs.before_stop)
        # Its pod readiness gate, in namespaces labelled for it.
        self.pods.mutators.append(self.kube_lbs.inject_gates)
        # kube-proxy: every cluster's ClusterIPs in the host's table; a stopping pod leaves
        # them before its SIGTERM.
        self.kube_proxy = KubeProxy(self.kube_state, self.network)
        self.pods.before_stop.append(self.kube_proxy.before_stop)
        self.kube_controllers = KubeControllers(self.kube_state, self.kube_tables, [
            GarbageCollector(self.kube_state, self.objects, {
                "pods": lambda c, _, ns, name: self.pods.delete(c, ns, name, None)}),
            JobController(self.kube_state, self.objects, self.pods),
            CronJobController(self.kube_state, self.objects),
            DaemonSetController(self.kube_state, self.objects),
            EndpointsController(self.kube_state, self.objects),
            KubeDnsService(ServiceWrites(self.kube_state, self.objects)),
            Deployments(self.kube_state, self.objects),
            ReplicaSets(self.kube_state, self.objects, self.pods),
            ServiceAccounts(self.kube_state, self.sa_tokens,
                            base64.b64decode(ca_data).decode() if ca_data else ""),
            self.netpolicies,
            self.kube_lbs,
            self.kube_proxy,
        ])
        # Containers' output into CloudWatch Logs: routes readied at each start, one shipper.
        self.logship = LogShipper(self.cwlogs, self.runtime, self.store)
        self.engine.book.listeners.append(self.logship.task_changed)
        self.engine.retention.hold = self.logship.pending  # nothing forgotten before shipped
        self.engine.retention.gone = self.logship.forgotten
        self.engine.starter.logs = LogStarts(self.cwlogs, self.engine.book, self.kube_state)
        # The bill: each stopped task's usage kept (metered before retention forgets it).
        self.cost = CostExplorer(self.store, UsageTable(self.store), settings.prices)
        self.engine.book.listeners.append(self.cost.task_changed)
        self.engine.retention.meter = self.cost.meter_tasks
        self.registry: LocalRegistry | None = None
        self._runner: web.AppRunner | None = None
        self._task_runner: web.AppRunner | None = None  # the API inside tasks' networks

    def _task_nets(self) -> list[TaskNet]:
        """The active tasks' addresses and groups: what the firewall must hold for them."""
        return [TaskNet(t.id, t.ip, t.interface.subnet_id, tuple(t.interface.groups))
                for t in self.store.active_tasks()] + self.elbv2.task_nets()

    def _vpc_cidr(self, vpc_id: str) -> str | None:
        return next((v.cidr for v in self.networks.vpc_items() if v.id == vpc_id), None)

    def _service_cidr(self, cluster: str) -> str | None:
        doc = self.kube_tables.get_cluster(cluster)
        return ((doc or {}).get("kubernetesNetworkConfig") or {}).get("serviceIpv4Cidr")

    def _container_extras(self, task: Task, cdef: ContainerDef, config: dict[str, Any],
                          spec: ContainerSpec) -> ContainerSpec:
        """The volumes' mounts and variables, then a pod's resolv.conf and hosts file."""
        spec = self.volumes.extras(task, cdef, config, spec)
        spec = self.service_links.container_spec(task, spec)  # WEB_SERVICE_HOST...
        return self.cluster_dns.container_spec(task, spec, self._resolver_of(task))

    def _resolver_of(self, task: Task) -> str | None:
        """The task's VPC resolver, for its resolv.conf (None: its VPC is gone)."""
        subnet = self.networks.subnets.get(task.interface.subnet_id)
        cidr = self._vpc_cidr(subnet.vpc_id) if subnet is not None else None
        return resolver_address(cidr) if cidr else None

    def faces(self) -> Faces:
        return Faces(cloudmap=self.cloudmap,
                     settings=self.settings, iam=self.iam, ecs=self.ecs, services=self.services,
                     ec2=Ec2Face(self.vpc, self.networks, self.enis), secrets=self.secrets, ssm=self.ssm,
                     logs=self.logs, eks=self.eks, kube_state=self.kube_state, pods=self.pods,
                     objects=self.objects,
                     elbv2=self.elbv2, cost=self.cost, metrics=self.metrics,
                     sampler=self.sampler, cwlogs=self.cwlogs)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # no orphaned registry when, say, the port is taken
            raise

    async def _start(self) -> None:
        nofile = raise_nofile_limit()
        if nofile < 65535:
            log.warning("containers get nofile %d, not 65535: this process's hard limit is %d "
                        "and it lacks CAP_SYS_RESOURCE to raise it", nofile, nofile)
        if self.settings.embedded_registry:
            self.registry = LocalRegistry(self.settings.state_dir / "registry",
                                          port=self.settings.registry_port)
            await asyncio.to_thread(self.registry.start)
        mounted = await asyncio.to_thread(self.runtime.prepare)
        if mounted:
            log.info("runtime files in memory: tmpfs at %s", ", ".join(map(str, mounted)))
        # The whole firewall from the store before tasks are re-adopted: restarts converge.
        await asyncio.to_thread(self.networks.start, self._task_nets())
        self.netpolicies.converge()  # the policies too, before any task is (re)started
        self.kube_proxy.sync_all()  # and the ClusterIPs (a table no cluster needs goes)
        await self.elbv2.start()  # the load balancers the store knows, re-applied
        # The API app before the tasks are adopted: their networks carry it (signed only).
        app = build_app(self.faces())
        kube_exec.install(app, self.pod_streams)  # kubectl exec, attach and port-forward
        self._runner = Runner(app)  # fargo's limits and error shapes
        await self._runner.setup()
        if self.settings.auth:
            self.iam.ensure_root_key()  # before the port opens: clients may ask at once
            self._task_runner = Runner(build_app(self.faces(), for_tasks=True))
            await self._task_runner.setup()
            self.endpoints.serve_api(self._task_runner)
        self.logship.start()  # before retention's first look at what it may forget
        await self.engine.start()
        self.volumes.start()  # after the engine has re-adopted the tasks whose files it keeps
        await self.scheduler.start()  # after the engine has re-adopted the tasks it counts
        self.runtime.warm(self.settings.warm_filesystems)
        self.pods.start()
        self.kube_controllers.start()
        await self.sampler.start()  # after the engine has re-adopted the tasks it reads
        self.cost.start()  # meters what stopped while the server was down, then keeps up
        self.cwlogs.start()  # the retention sweep (and what a crash left half deleted)
        self.heap.start()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        await web.TCPSite(self._runner, self.settings.host, self.kube_port,
                          ssl_context=self.tls).start()
        dns_port = self.settings.dns_port
        if dns_port != 0:
            self._host_dns = await self.dns.serve_host(
                self.settings.port + 2 if dns_port is None else dns_port,
                strict=dns_port is not None)
        # What start-up built lives as long as the server: keep it out of every collection.
        gc.freeze()
        cap = self.capacity
        print(f"fargo listening on http://{self.settings.host}:{self.settings.port} "
              f"(state in {self.settings.state_dir})", flush=True)
        print(f"capacity: {cap.cpu_total} CPU units ({cap.cpu_total / 1024:g} vCPU), "
              f"{cap.mem_total} MiB memory (overcommit x{self.settings.overcommit:g})", flush=True)
        print("default VPC " + self.vpc.id + " " + self.vpc.cidr + ", subnets: "
              + ", ".join(f"{s.id} ({s.zone}, {s.cidr})" for s in self.vpc.subnets), flush=True)
        print(f"Kubernetes API of EKS clusters on https://{self.settings.host}:{self.kube_port}"
              f"/eks/CLUSTER (CA in {self.settings.state_dir / 'tls' / 'ca.pem'})", flush=True)
        if self._host_dns:
            print(f"VPC DNS resolver for the host on 127.0.0.1:{self._host_dns.port} (UDP and "
                  f"TCP): dig @127.0.0.1 -p {self._host_dns.port} NAME; tasks ask it at their "
                  "VPC's base + 2", flush=True)
        if self.registry:
            print(f"local registry (ECR) at {self.registry.address}", flush=True)
        if self.settings.auth:
            print("requests must be signed (SigV4); get the access key with: fargo credentials "
                  f"--state-dir {self.settings.state_dir}", flush=True)
        else:
            warning = ("WARNING: --no-auth: fargo accepts every request unsigned, from anyone "
                       f"who can reach {self.settings.host}:{self.settings.port}. Use it only for "
                       "throwaway local work.")
            bar = "!" * min(len(warning), 100)
            print(f"{bar}\n{warning}\n{bar}", flush=True)

    async def stop(self) -> None:
        """Tasks keep running; the next start re-adopts them."""
        await self.pods.close()
        await self.kube_controllers.close()
        await self.volumes.close()
        await self.cost.close()
        await self.cwlogs.close()
        await self.heap.close()
        await self.scheduler.close()
        await self.sampler.close()
        await self.elbv2.close()  # load balancers keep serving; the next start re-adopts
        await self.logship.close()
        await self.engine.close()
        await self.endpoints.close_all()
        if self._host_dns:
            await self._host_dns.close()
        for runner in (self._task_runner, self._runner):
            if runner:
                await runner.cleanup()
        if self.registry:
            await asyncio.to_thread(self.registry.stop)
        self.runtime.close()
        self.store.close()


# The cyclic GC's thresholds: gen0 at 20,000 allocations (not 700), and gen1/gen2 after 20
# of the younger (not 10). A request's objects then die before a collection sees them rather
# than being promoted, so full collections, which walk every task's records, stay rare: with
# 1,000 tasks running each took ~110 ms with the GIL held, 3-4 per 300 DescribeTasks(100)
# (their p50 4.1-6.2 ms against 3.3-3.8 with 100 tasks; with these, none in that window and
# 3.8 against 3.2). A gen0 collection costs ~1 ms then; the garbage waiting is a few MB.
GC_THRESHOLDS = (20_000, 20, 20)


async def serve(settings: Settings) -> None:
    limit_arenas()  # before the server's threads exist
    gc.set_threshold(*GC_THRESHOLDS)
    server = Server(settings)
    await server.start()  # which freezes what start-up built
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("fargo stopping; running tasks keep running", flush=True)
    await server.stop()
