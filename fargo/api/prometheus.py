"""GET /metrics on the host's port: the metric sampler's latest pass in Prometheus' text
exposition format (prometheus-client, a collector of our own over the pass: nothing is
counted twice, no per-scrape reads of the tasks). Per task: CPU seconds, memory in use and
its limit, network and storage bytes, labelled cluster, service, family and task_id (and
container, for the per-container CPU and memory); per server: tasks by cluster and status,
and what sampling costs.

Unauthenticated, as /fargo/health is: Prometheus does not sign SigV4, and what is shown
(names, ids, counters) holds no secret. The host's port listens where --host says (loopback
by default); the tasks' own endpoint (build_app(for_tasks=True)) does not serve it."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..control.metricsampler import MetricSampler, cluster_name, service_name

SAMPLER = web.AppKey("metric_sampler", MetricSampler)
REGISTRY = web.AppKey("prometheus_registry", CollectorRegistry)
TASK_LABELS = ["cluster", "service", "family", "task_id"]


class SamplerCollector(Collector):
    def __init__(self, sampler: MetricSampler):
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        report = self.sampler.latest

        per_task = TASK_LABELS
        per_container = [*TASK_LABELS, "container"]
        cpu = CounterMetricFamily("fargo_task_cpu_seconds", "CPU time the task's processes "
                                  "used.", labels=per_task)
        reserved = GaugeMetricFamily("fargo_task_cpu_reserved_units", "CPU units the task "
                                     "reserved (1024 a vCPU).", labels=per_task)
        memory = GaugeMetricFamily("fargo_task_memory_bytes", "Memory the task uses (its "
                                   "cgroup's, less inactive page cache).", labels=per_task)
        limit = GaugeMetricFamily("fargo_task_memory_limit_bytes", "The task's memory limit.",
                                  labels=per_task)
        rx = CounterMetricFamily("fargo_task_network_receive_bytes", "Bytes the task's "
                                 "interface received.", labels=per_task)
        tx = CounterMetricFamily("fargo_task_network_transmit_bytes", "Bytes the task's "
                                 "interface sent.", labels=per_task)
        read = CounterMetricFamily("fargo_task_storage_read_bytes", "Bytes the task's "
                                   "processes read from block devices.", labels=per_task)
        write = CounterMetricFamily("fargo_task_storage_write_bytes", "Bytes the task's "
                                    "processes wrote to block devices.", labels=per_task)
        ccpu = CounterMetricFamily("fargo_container_cpu_seconds", "CPU time the container's "
                                   "processes used.", labels=per_container)
        cmem = GaugeMetricFamily("fargo_container_memory_bytes", "Memory the container's "
                                 "cgroup uses.", labels=per_container)
        for s in report.samples:
            t, st = s.task, s.stats
            labels = [cluster_name(t), service_name(t) or "", t.family, t.id]
            reserved.add_metric(labels, float(t.cpu))
            memory.add_metric(labels, float(s.figures.reading.memory_bytes or 0))
            for fam, value in ((cpu, st.cpu_usage_ns / 1e9 if st.cpu_usage_ns is not None
                                else None),
                               (limit, st.memory_limit_bytes),
                               (rx, st.network.rx_bytes if st.network else None),
                               (tx, st.network.tx_bytes if st.network else None),
                               (read, st.storage_read_bytes), (write, st.storage_write_bytes)):
                if value is not None:
                    fam.add_metric(labels, float(value))
            for name, c in st.containers.items():
                if c.cpu_usage_ns is not None:
                    ccpu.add_metric([*labels, name], c.cpu_usage_ns / 1e9)
                if c.memory_usage_bytes is not None:
                    cmem.add_metric([*labels, name], float(c.memory_usage_bytes))
        yield from (cpu, reserved, memory, limit, rx, tx, read, write, ccpu, cmem)
        tasks = GaugeMetricFamily("fargo_tasks", "Tasks the server holds, by last status "
                                  "(STOPPED ones not counted).", labels=["cluster", "status"])
        for (cluster, status), n in sorted(report.statuses.items()):
            tasks.add_metric([cluster, status], float(n))
        yield tasks
        yield GaugeMetricFamily("fargo_metrics_sampled_tasks",
                                "Tasks the latest sampling pass read.", value=report.tasks)
        yield GaugeMetricFamily("fargo_metrics_sample_duration_seconds",
                                "Wall-clock time of the latest sampling pass.",
                                value=report.seconds)
        yield GaugeMetricFamily("fargo_metrics_last_sample_timestamp_seconds",
                                "When the latest sampling pass ran (0: none yet).",
                                value=report.at)
        phases = GaugeMetricFamily("fargo_metrics_sample_cpu_seconds", "CPU time of the "
                                   "latest sampling pass, by phase.", labels=["phase"])
        phases.add_metric(["read"], report.read_cpu_seconds)
        phases.add_metric(["record"], report.cpu_seconds - report.read_cpu_seconds)
        yield phases
        yield CounterMetricFamily("fargo_metrics_sampler_cpu_seconds",
                                  "CPU time every sampling pass took, since the server "
                                  "started.", value=self.sampler.cpu_seconds_total)


async def scrape(request: web.Request) -> web.Response:
    data = generate_latest(request.app[REGISTRY])
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, sampler: MetricSampler) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SamplerCollector(sampler))
    app[SAMPLER] = sampler
    app[REGISTRY] = registry
    app.router.add_get("/metrics", scrape)
