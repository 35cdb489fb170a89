"""REST routes: parse, one Hub call, encode. Same semantics and errors as the socket."""

from __future__ import annotations

import msgspec
from starlette.requests import Request

from hub import __version__
from hub.core.errors import HubError
from hub.runtime.hub import Hub, Sender
from hub.server.responses import JSON
from schemas.errors import ErrorCode
from schemas.frames import API_VERSION
from schemas.rest import NotifyRequest

CAPABILITIES = ["notify", "broadcast", "traces", "resume", "idempotency", "presence"]
_JSON_TYPES = ("application/json",)


def hub_of(request: Request) -> Hub:
    return request.app.state.hub


def bearer(headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def caller(request: Request) -> Sender:
    return hub_of(request).authenticate(bearer(request.headers),
                                        trusted_local=request.scope["state"].get("trusted_local", False))


async def read_body(request: Request, model: type[msgspec.Struct]):
    """Mutating routes take JSON only (no `text/plain` CSRF), within the body limit."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _JSON_TYPES:
        raise HubError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                       f"send the body as `Content-Type: application/json`, not {media or 'nothing'!r}")
    limit = hub_of(request).settings.limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HubError(ErrorCode.BODY_TOO_LARGE, f"body is {declared} bytes; the limit is {limit}",
                       {"size": int(declared), "limit": limit})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HubError(ErrorCode.BODY_TOO_LARGE, f"body is over the limit of {limit} bytes", {"limit": limit})
    try:
        return msgspec.json.decode(bytes(body), type=model)
    except msgspec.ValidationError as exc:
        raise HubError(ErrorCode.INVALID_REQUEST, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HubError(ErrorCode.BAD_JSON, f"body is not valid JSON: {exc}") from None


async def health(request: Request) -> JSON:
    facts = hub_of(request).health()
    return JSON({"ok": True, "api_version": API_VERSION, "version": __version__, "node": facts["node"],
                 "store": facts["store"], "capabilities": CAPABILITIES, "peers": facts["peers"],
                 "connections": facts["connections"]})


async def list_peers(request: Request) -> JSON:
    caller(request)
    circle = request.query_params.get("circle")
    status = request.query_params.get("status")
    if status is not None and status not in ("online", "busy", "offline"):
        raise HubError(ErrorCode.INVALID_REQUEST, "status is one of online, busy, offline", {"status": status})
    return JSON({"peers": await hub_of(request).list_peers(circle=circle, status=status)})


async def get_peer(request: Request) -> JSON:
    who = caller(request)
    hub = hub_of(request)
    return JSON(await hub.peer_view(hub.find_peer(request.path_params["ref"], who)))


async def delete_peer(request: Request) -> JSON:
    who = caller(request)
    hub = hub_of(request)
    peer = hub.find_peer(request.path_params["ref"], who)
    if who.peer is not None and who.peer.peer_id != peer.peer_id:
        raise HubError(ErrorCode.FORBIDDEN, "a peer may delete only itself; the hub token may delete any peer")
    await hub.delete_peer(peer)
    return JSON({"deleted": peer.peer_id})


async def post_message(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, NotifyRequest)
    key = body.idempotency_key or request.headers.get("idempotency-key")
    result = await hub_of(request).notify(who, body.to, body.text, key)
    return JSON(result, status_code=202)


async def get_trace(request: Request) -> JSON:
    caller(request)
    return JSON(await hub_of(request).trace(request.path_params["trace_id"]))
