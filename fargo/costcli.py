"""`fargo cost`: what the server's tasks cost over a window, as rich tables. The figures by
service and usage type come from Cost Explorer (GetCostAndUsage, as `aws ce` would ask);
Cost Explorer has no per-task dimension, so each task's line comes from fargo's own signed
path /fargo/v1/cost, by the same rules."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

HOURLY_LIMIT = 14 * 86400.0  # Cost Explorer's hourly data reaches this far back
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class CostError(Exception):
    """What the command prints before exiting 1."""


def parse_since(text: str, now: float) -> float:
    """'24h', '90m', '7d', '2w', or a date/time (2024-05-01, 2024-05-01T12:00:00Z)."""
    m = _SINCE.match(text)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CostError(f"--since {text!r}: give a duration (24h, 90m, 7d) or a date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


@dataclass(frozen=True)
class Window:
    """The window both sources are asked for: whole hours (HOURLY) when Cost Explorer keeps
    hours that far back, else whole UTC days (DAILY)."""

    start: float
    end: float
    granularity: str

    @classmethod
    def around(cls, since: float, now: float) -> Window:
        if since >= now:
            raise CostError("--since must be in the past")
        step, granularity = (3600, "HOURLY") if now - since <= HOURLY_LIMIT else \
            (86400, "DAILY")
        start = since - since % step
        end = now - now % step + step
        return cls(start, end, granularity)

    def stamp(self, ts: float) -> str:
        form = "%Y-%m-%dT%H:%M:%SZ" if self.granularity == "HOURLY" else "%Y-%m-%d"
        return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(form)


def _ce_totals(endpoint: str, window: Window) -> dict[tuple[str, str, str], list[float]]:
    """(service, usage type, unit) -> [cost, usage quantity] over the window, from Cost
    Explorer."""
    import boto3
    import botocore.exceptions
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session()
    config = None if session.get_credentials() else Config(signature_version=UNSIGNED)
    client = session.client("ce", endpoint_url=endpoint, config=config,
                            region_name=session.region_name or "us-east-1")
    ask: dict[str, Any] = {
        "TimePeriod": {"Start": window.stamp(window.start), "End": window.stamp(window.end)},
        "Granularity": window.granularity, "Metrics": ["UnblendedCost", "UsageQuantity"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"},
                    {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]}
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    try:
        while True:
            out = client.get_cost_and_usage(**ask)
            for period in out["ResultsByTime"]:
                for group in period["Groups"]:
                    service, usage_type = group["Keys"]
                    cost, used = group["Metrics"]["UnblendedCost"], \
                        group["Metrics"]["UsageQuantity"]
                    key = (service, usage_type, used["Unit"])
                    sums[key][0] += float(cost["Amount"])
                    sums[key][1] += float(used["Amount"])
            if not out.get("NextPageToken"):
                return dict(sums)
            ask["NextPageToken"] = out["NextPageToken"]
    except botocore.exceptions.ClientError as err:
        raise CostError(f"Cost Explorer: {err.response['Error'].get('Message', err)}") from None
    except botocore.exceptions.EndpointConnectionError:
        raise CostError(f"no fargo server answers at {endpoint}") from None


def _task_lines(endpoint: str, window: Window) -> dict[str, Any]:
    from .cli import _signed_headers

    url = f"{endpoint.rstrip('/')}/fargo/v1/cost?start={window.start:.0f}&end={window.end:.0f}"
    try:
        resp = requests.get(url, headers=_signed_headers(url), timeout=30)
    except requests.ConnectionError:
        raise CostError(f"no fargo server answers at {endpoint}") from None
    try:
        answer: dict[str, Any] = resp.json()
    except ValueError:
        raise CostError(resp.text[:300]) from None
    if resp.status_code != 200:
        raise CostError(str(answer.get("message", resp.text))[:300])
    return answer


def _hours(v: float) -> str:
    return f"{v:.4f}"


def _usd(v: float) -> str:
    return f"${v:.6f}"


def task_table(tasks: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, show_footer=True, title_justify="left")
    for name, justify in (("Cluster", "left"), ("Service", "left"), ("Task", "left"),
                          ("vCPU-hours", "right"), ("GB-hours", "right"),
                          ("Storage GB-hours", "right"), ("Cost (USD)", "right")):
        table.add_column(name, justify=justify, no_wrap=name == "Task")  # type: ignore[arg-type]
    by_cluster: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tasks:
        by_cluster[t["cluster"]].append(t)
    sums = [0.0, 0.0, 0.0, 0.0]
    for cluster in sorted(by_cluster):
        rows = sorted(by_cluster[cluster], key=lambda t: (_service_of(t), t["start"]))
        cluster_sums = [0.0, 0.0, 0.0, 0.0]
        last_service = None
        for i, t in enumerate(rows):
            figures = [t["vcpuHours"], t["gbHours"], t["storageGbHours"], t["cost"]]
            cluster_sums = [a + b for a, b in zip(cluster_sums, figures, strict=True)]
            service = _service_of(t)
            kind = " (Spot)" if t["spot"] else ""
            kind += " (ARM)" if t["arm"] else ""
            table.add_row(cluster if i == 0 else "", service if service != last_service else "",
                          t["taskId"] + kind, *map(_hours, figures[:3]), _usd(figures[3]))
            last_service = service
        table.add_row("", "", f"[bold]{cluster} total[/bold]", *map(_hours, cluster_sums[:3]),
                      f"[bold]{_usd(cluster_sums[3])}[/bold]", end_section=True)
        sums = [a + b for a, b in zip(sums, cluster_sums, strict=True)]
    for col, value in zip(table.columns, ["Total", "", f"{len(tasks)} tasks",
                                          *map(_hours, sums[:3]), _usd(sums[3])], strict=True):
        col.footer = value
    return table


def _service_of(t: dict[str, Any]) -> str:
    if t.get("pod"):
        return f"pod {t['pod'].split('/')[0]}"  # an EKS pod's namespace
    return t["service"] or "-"


def usage_table(sums: dict[tuple[str, str, str], list[float]], title: str) -> Table:
    table = Table(title=title, show_footer=True, title_justify="left")
    table.add_column("Service", footer="Total")
    table.add_column("Usage type")
    table.add_column("Usage", justify="right")
    table.add_column("Cost (USD)", justify="right",
                     footer=_usd(sum(v[0] for v in sums.values())))
    for (service, usage_type, unit), (cost, quantity) in sorted(sums.items()):
        table.add_row(service, usage_type, f"{_hours(quantity)} {unit}", _usd(cost))
    return table


def run(endpoint: str, since: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    window = Window.around(parse_since(since, now), now)
    lines = _task_lines(endpoint, window)
    sums = _ce_totals(endpoint, window)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    span = f"{window.stamp(window.start)} to {window.stamp(window.end)}"
    console.print(task_table(lines["tasks"], f"Fargate cost per task, {span}"))
    console.print(usage_table(sums, f"By usage type (Cost Explorer), {span}"))
