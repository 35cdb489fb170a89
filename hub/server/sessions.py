"""REST routes for agent sessions (their hooks and MCP tools): start a session, say its
presence, take its queued messages (at once, or waiting for the first). Each parses, makes one `SessionService` call, encodes."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from hub.core.peers import PeerRecord
from hub.runtime.credentials import Sender
from hub.runtime.panes import require_self_or_person
from hub.runtime.sessions import SessionService
from hub.server.responses import JSON
from hub.server.rest import caller, client_left, hub_of, read_body
from hub.server.services import services
from schemas.rest import InboxTaken, InboxTakeRequest, InboxWaitRequest, PresenceRequest, SessionStartRequest


def sessions_of(request: Request) -> SessionService:
    return services(request).sessions


async def start(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, SessionStartRequest)
    joined = await sessions_of(request).start(
        who, backend=body.backend, cwd=body.cwd, agent_pid=body.agent_pid, ancestors=body.ancestors,
        pane_id=body.pane_id, bridge_name=body.bridge, tmux_session=body.tmux_session, name=body.name,
        circle=body.circle)
    return JSON(joined)


def own_peer(request: Request, doing: str) -> tuple[Sender, PeerRecord]:
    """(the caller, the peer the path names), when the caller is that peer or a person."""
    who = caller(request)
    peer = hub_of(request).find_peer(request.path_params["ref"], who)
    require_self_or_person(who, peer, doing)
    return who, peer


async def presence(request: Request) -> JSON:
    who, peer = own_peer(request, "change its presence")
    body = await read_body(request, PresenceRequest)
    return JSON(await sessions_of(request).presence(who, peer, body.status, body.reason))


async def take_inbox(request: Request) -> JSON:
    who, peer = own_peer(request, "take its messages")
    body = await read_body(request, InboxTakeRequest)
    return JSON(await sessions_of(request).take_inbox(who, peer, body.limit))


async def wait_inbox(request: Request) -> JSON:
    """Wait (reading only) for the inbox to hold something, then take it, unless the caller left
    meanwhile: a message is taken only for a caller still there to receive it."""
    who, peer = own_peer(request, "take its messages")
    body = await read_body(request, InboxWaitRequest)
    sessions = sessions_of(request)
    waiting = asyncio.ensure_future(sessions.wait_for_inbox(who, peer, body.timeout_s))
    left = asyncio.ensure_future(client_left(request))
    try:
        await asyncio.wait({waiting, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if not waiting.done():
        waiting.cancel()
        return JSON(InboxTaken(deliveries=[], remaining=0))   # nobody to answer: nothing taken
    waiting.result()
    return JSON(await sessions.take_inbox(who, peer, body.limit))
