"""fargo's admin path for Fargate Spot interruptions: POST /fargo/v1/spot/interruptions with
{"tasks": [id or ARN, ...]}, signed (SigV4, service "fargo") with a user's key; task role
credentials may not. The answer lists the tasks interrupted and, as ECS's batch calls do,
a failure for each task that was not."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..control import spot
from ..control.tasks import TaskEngine
from ..model.errors import ApiError, InvalidParameterException
from . import awsjson, body
from .auth import authenticate, permit
from .body import BodyError
from .ecs_render import task_json

PATH = "/fargo/v1/spot/interruptions"
ENGINE = web.AppKey("spot_engine", TaskEngine)
MAX_TASKS = 100


def _refs(payload: Any) -> list[str]:
    if not isinstance(payload, dict) or set(payload) - {"tasks"}:
        raise InvalidParameterException('The body must be {"tasks": [task id or ARN, ...]}.')
    refs = payload.get("tasks")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise InvalidParameterException("tasks must be a list of 1 to 100 task ids or ARNs.")
    if len(refs) > MAX_TASKS:
        raise InvalidParameterException(f"At most {MAX_TASKS} tasks can be interrupted at "
                                        "once.")
    return refs


async def interrupt(request: web.Request) -> web.Response:
    try:
        sent = await body.read(request)
        authenticate(request, sent, "fargo", "rest")
        permit(request, "InterruptSpotTasks", "json")
        refs = _refs(awsjson.loads(body.decoded(request, sent) or b"{}",
                                   "SerializationException"))
    except ApiError as err:
        return awsjson.error_response(err)
    except BodyError as err:
        return awsjson.error_response(ApiError(err.message, code="SerializationException"))
    engine = request.app[ENGINE]
    tasks, failures = [], []
    for ref in dict.fromkeys(refs):  # each task once, in the order given
        try:
            tasks.append(task_json(spot.interrupt(engine, ref)))
        except ApiError as err:
            failures.append({"arn": ref[:1600], "reason": err.message})
    return web.json_response({"tasks": tasks, "failures": failures},
                             dumps=lambda v: awsjson.dumps(v).decode())


def install(app: web.Application, engine: TaskEngine) -> None:
    app[ENGINE] = engine
    app.router.add_post(PATH, interrupt)
