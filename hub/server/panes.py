"""REST routes for tmux panes: orphans, link and unlink, a pane's output, keys, doctor, rehook.

Each route parses, makes one `PaneService` call and encodes; the service talks to the bridges.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request

from hub.core.panes import DEFAULT_OUTPUT_LINES, MAX_OUTPUT_LINES
from hub.runtime.panes import PaneService, require_self_or_person
from hub.server.responses import JSON
from hub.server.rest import caller, has_body, hub_of, int_param, read_body
from hub.server.services import services
from schemas.rest import KeysRequest, LinkRequest, RehookRequest


def panes_of(request: Request) -> PaneService:
    return services(request).panes


def _peer(request: Request):
    who = caller(request)
    return who, hub_of(request).find_peer(request.path_params["ref"], who)


async def orphans(request: Request) -> JSON:
    caller(request)
    return JSON(await panes_of(request).orphans())


def pane_id_of(request: Request) -> str:
    """The pane id as written in the path: `%12` percent-encoded (`%2512`), as is (`%12`, which
    most HTTP clients send unencoded) or bare (`12`)."""
    segments = request.scope.get("raw_path", b"").decode("latin-1").split("/")
    raw = segments[2] if len(segments) == 4 else request.path_params["pane_id"]
    pane_id = unquote(raw) if raw[:3].upper() == "%25" else raw
    return "%" + pane_id if pane_id.isdigit() else pane_id


async def link(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, LinkRequest)
    linked = await panes_of(request).link(who, pane_id_of(request), body.backend, name=body.name,
                                          circle=body.circle, bridge_name=body.bridge)
    return JSON(linked, status_code=201)


async def unlink(request: Request) -> JSON:
    who, peer = _peer(request)
    return JSON(await panes_of(request).unlink(who, peer))


async def output(request: Request) -> JSON:
    who, peer = _peer(request)
    require_self_or_person(who, peer, "read its pane")
    lines = int_param(request, "lines", DEFAULT_OUTPUT_LINES, 1, MAX_OUTPUT_LINES)
    return JSON(await panes_of(request).output(who, peer, lines))


async def keys(request: Request) -> JSON:
    who, peer = _peer(request)
    body = await read_body(request, KeysRequest)
    return JSON(await panes_of(request).keys(who, peer, body.keys))


async def doctor(request: Request) -> JSON:
    who, peer = _peer(request)
    require_self_or_person(who, peer, "read its health report")
    return JSON(await panes_of(request).doctor(peer))


async def rehook(request: Request) -> JSON:
    who, peer = _peer(request)
    body = await read_body(request, RehookRequest) if await has_body(request) else RehookRequest()
    return JSON(await panes_of(request).rehook(who, peer, body.apply))

