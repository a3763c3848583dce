"""fargo's own cost path: GET /fargo/v1/cost?start=EPOCH&end=EPOCH, signed (SigV4, service
"fargo") as `fargo logs` is. Each task's bill within the window, by the same rules as Cost
Explorer's figures (which have no per-task dimension): what `fargo cost` lists per cluster,
service and task."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from ..control.cost import CostExplorer
from ..model.billing import TaskCharge
from ..model.errors import ApiError, InvalidParameterException
from . import awsjson
from .auth import authenticate

PATH = "/fargo/v1/cost"
COST = web.AppKey("cost", CostExplorer)
MAX_WINDOW = 40 * 31 * 86400.0


def _window(query: dict[str, str]) -> tuple[float, float]:
    try:
        start, end = float(query["start"]), float(query["end"])
    except (KeyError, ValueError):
        raise InvalidParameterException("start and end are required: epoch seconds.") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or start >= end:
        raise InvalidParameterException("start must be before end (epoch seconds).")
    if end - start > MAX_WINDOW:
        raise InvalidParameterException("The window may span at most 40 months.")
    return start, end


def _task(c: TaskCharge) -> dict[str, object]:
    m = c.usage
    return {"taskId": m.task_id, "cluster": m.cluster, "service": m.service_name,
            "group": m.group, "family": m.family, "pod": m.pod, "billedService": m.service,
            "cpu": m.cpu, "memory": m.memory, "storageGiB": m.storage_gib, "spot": m.spot,
            "arm": m.arm, "start": m.start, "end": m.end, "seconds": c.seconds,
            "vcpuHours": c.vcpu_hours, "gbHours": c.gb_hours,
            "storageGbHours": c.storage_gb_hours, "cost": c.cost}


async def task_costs(request: web.Request) -> web.Response:
    cost = request.app[COST]
    try:
        authenticate(request, b"", "fargo", "rest")
        start, end = _window(dict(request.query))
    except ApiError as err:
        return awsjson.error_response(err)
    charges = await asyncio.to_thread(cost.task_charges, start, end)
    return web.json_response({"start": start, "end": end, "prices": cost.prices.to_json(),
                              "tasks": [_task(c) for c in charges]})


def install(app: web.Application, cost: CostExplorer) -> None:
    app[COST] = cost
    app.router.add_get(PATH, task_costs)
