"""REST routes for scheduled messages: parse, one ScheduleService call, encode."""

from __future__ import annotations

from starlette.requests import Request

from hub.runtime.schedules import ScheduleService
from hub.server.responses import JSON
from hub.server.rest import caller, read_body
from hub.server.services import services
from schemas.rest import ScheduleDeleted, ScheduleList, ScheduleRequest


def schedules_of(request: Request) -> ScheduleService:
    return services(request).schedules


async def create(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, ScheduleRequest)
    return JSON(await schedules_of(request).create(who, body), status_code=201)


async def list_schedules(request: Request) -> JSON:
    who = caller(request)
    return JSON(ScheduleList(schedules=await schedules_of(request).list(who, request.query_params.get("peer") or None)))


async def get(request: Request) -> JSON:
    who = caller(request)
    return JSON(await schedules_of(request).get(who, request.path_params["schedule_id"]))


async def delete(request: Request) -> JSON:
    who = caller(request)
    schedule_id = request.path_params["schedule_id"]
    await schedules_of(request).delete(who, schedule_id)
    return JSON(ScheduleDeleted(deleted=schedule_id))


async def pause(request: Request) -> JSON:
    who = caller(request)
    return JSON(await schedules_of(request).pause(who, request.path_params["schedule_id"]))


async def resume(request: Request) -> JSON:
    who = caller(request)
    return JSON(await schedules_of(request).resume(who, request.path_params["schedule_id"]))
