"""REST routes for jobs: parse, one JobService call, encode."""

from __future__ import annotations

from starlette.requests import Request

from hub.core.errors import HubError
from hub.runtime.jobs import LIST_MAX, JobService
from hub.server.responses import JSON
from hub.server.rest import caller, int_param, read_body
from hub.server.services import services
from schemas.errors import ErrorCode
from schemas.rest import JobRequest

VIEWS = ("full", "summary")


def jobs_of(request: Request) -> JobService:
    return services(request).jobs


async def create(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, JobRequest)
    return JSON(await jobs_of(request).create(who, body), status_code=201)


async def list_jobs(request: Request) -> JSON:
    who = caller(request)
    chosen = request.query_params.get("view", "full")
    if chosen not in VIEWS:
        raise HubError(ErrorCode.INVALID_REQUEST, "view is `full` (the default) or `summary`",
                       {"view": chosen[:40], "views": list(VIEWS)})
    limit = int_param(request, "limit", LIST_MAX, 1, LIST_MAX)
    return JSON(await jobs_of(request).listing(who, summary=chosen == "summary",
                                            peer_ref=request.query_params.get("peer") or None, limit=limit))


async def status(request: Request) -> JSON:
    who = caller(request)
    return JSON(await jobs_of(request).get(who, request.path_params["job_id"]))


async def cancel(request: Request) -> JSON:
    who = caller(request)
    return JSON(await jobs_of(request).cancel(who, request.path_params["job_id"]))
