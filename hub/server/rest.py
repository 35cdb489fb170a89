"""REST routes: parse, one Hub call, encode. Same semantics and errors as the socket."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.types import Message

from hub.core.asks import ANSWERED
from hub.core.errors import HubError
from hub.core.peers import STATUSES
from hub.runtime.asks import AskService, ack_body, answer_body
from hub.runtime.attachments import AttachmentService
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.server.responses import JSON
from hub.server.services import services
from schemas.codec import FrameError, check_json_value, too_deep
from schemas.errors import ErrorCode
from schemas.local import ACT_AS_HEADER
from schemas.rest import (
    AckRequest,
    AnswerRequest,
    AskAccepted,
    AskRequest,
    MessageAccepted,
    NodeList,
    NotifyRequest,
    PeerCreated,
    PeerCreateRequest,
    PeerDeleted,
    PeerList,
    WaitRequest,
    Whoami,
)

CAPABILITIES = ["notify", "broadcast", "traces", "resume", "idempotency", "presence", "ask", "questions",
                "approvals", "policies", "schedules", "jobs", "attachments", "sessions", "dashboard"]
_JSON_TYPES = ("application/json",)


def hub_of(request: Request) -> Hub:
    return services(request).hub


def bearer(headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def client_left(request: Request) -> None:
    """Returns once the client has gone (its connection closed), for routes that hold a request."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def caller(request: Request) -> Sender:
    """Who is calling. The hub token (or the Unix socket) acts as the operator, or as the peer
    named in `X-Repowire-Peer` (how an agent's MCP server and hooks act as their agent);
    a peer token acts as its peer."""
    hub = hub_of(request)
    state = request.scope["state"]
    token = bearer(request.headers)
    trusted_local = state.get("trusted_local", False)
    # a signed-in dashboard (its session cookie, see hub.server.dashboard) is the person at the hub
    sender = hub.credentials.authenticate(token, trusted_local=trusted_local or (token is None and state.get("person_session", False)))
    acting = request.headers.get(ACT_AS_HEADER)
    if not acting:
        return sender
    if sender.peer is not None or not (trusted_local or hub.credentials.is_hub_token(token)):
        raise HubError(ErrorCode.FORBIDDEN, "only the hub token may act as a peer (X-Repowire-Peer)")
    return Sender(hub.find_peer(acting))


async def next_body_message(request: Request, idle_s: float) -> Message:
    """The next piece of a request body, within `idle_s` (a stalled client is `request_timeout`)."""
    try:
        async with asyncio.timeout(idle_s):
            message = await request.receive()
    except TimeoutError:
        raise HubError(ErrorCode.REQUEST_TIMEOUT, f"no part of the request body arrived for {idle_s:g} s",
                       {"body_idle_timeout_s": idle_s}) from None
    if message["type"] != "http.request":
        raise HubError(ErrorCode.INVALID_REQUEST, "the client left before the request body ended")
    return message


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
    idle_s = hub_of(request).settings.limits.body_idle_timeout_s
    more = True
    while more:
        message = await next_body_message(request, idle_s)
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit:
            raise HubError(ErrorCode.BODY_TOO_LARGE, f"body is over the limit of {limit} bytes", {"limit": limit})
    try:
        decoded = msgspec.json.decode(bytes(body), type=model)
        check_json_value(decoded)
    except msgspec.ValidationError as exc:
        raise HubError(ErrorCode.INVALID_REQUEST, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise HubError(ErrorCode.BAD_JSON, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        deep = too_deep()
        raise HubError(deep.code, deep.message, deep.details) from None
    except FrameError as exc:
        raise HubError(exc.code, exc.message, exc.details) from None
    return decoded


async def health(request: Request) -> JSON:
    return JSON(hub_of(request).health(list(CAPABILITIES)))


async def list_peers(request: Request) -> JSON:
    caller(request)
    circle = request.query_params.get("circle")
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise HubError(ErrorCode.INVALID_REQUEST, f"status is one of {', '.join(STATUSES)}", {"status": status})
    return JSON(PeerList(peers=await hub_of(request).list_peers(
        circle=circle, status=status, open_asks=asks_of(request).open_inbound_counts)))


async def create_peer(request: Request) -> JSON:
    who = caller(request)
    if not who.is_person:
        raise HubError(ErrorCode.FORBIDDEN, "only a person (the hub token) may register peers by name; an agent "
                       "joins through its session hooks or a `hello` frame")
    body = await read_body(request, PeerCreateRequest)
    hub = hub_of(request)
    peer, token, created = await hub.lifecycle.register_peer(body.name, body.circle)
    return JSON(PeerCreated(created=created, peer=await hub.peer_view(peer), token=token),
                status_code=201 if created else 200)


async def whoami(request: Request) -> JSON:
    who = caller(request)
    if who.peer is None:
        return JSON(Whoami(operator=True))
    return JSON(Whoami(operator=False, peer=await hub_of(request).peer_view(who.peer)))


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
    await hub.lifecycle.delete_peer(peer)
    return JSON(PeerDeleted(deleted=peer.peer_id))


async def carried(request: Request, who: Sender, attachment_ids: list[str]) -> list[dict] | None:
    """The briefs of the attachments a message carries (each must be the sender's own)."""
    if not attachment_ids:
        return None
    service: AttachmentService = services(request).attachments
    return await service.resolve(who, attachment_ids)


async def list_nodes(request: Request) -> JSON:
    caller(request)
    return JSON(NodeList(nodes=await hub_of(request).nodes()))


async def post_message(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, NotifyRequest)
    key = body.idempotency_key or request.headers.get("idempotency-key")
    attached = await carried(request, who, body.attachments)
    hub = hub_of(request)

    async def submit() -> MessageAccepted:
        return await hub.notify(who, body.to, body.text, idempotency_key=key, attachments=attached)
    return JSON(await hub.learning(who, body.to, submit), status_code=202)


async def get_trace(request: Request) -> JSON:
    who = caller(request)
    return JSON(await hub_of(request).trace(request.path_params["trace_id"], who))


# ---- asks ------------------------------------------------------------------------------------

def asks_of(request: Request) -> AskService:
    return services(request).asks


async def post_ask(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, AskRequest)
    question = msgspec.to_builtins(body.question) if body.question is not None else None
    key = body.idempotency_key or request.headers.get("idempotency-key")
    attached = await carried(request, who, body.attachments)

    async def submit() -> AskAccepted:
        return await asks_of(request).ask(who, body.to, body.text, timeout_s=body.timeout_s,
                                          queue_if_offline=body.queue_if_offline, question=question,
                                          idempotency_key=key, attachments=attached)
    return JSON(await hub_of(request).learning(who, body.to, submit), status_code=202)


async def post_ack(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, AckRequest)
    key = body.idempotency_key or request.headers.get("idempotency-key")
    state, closing = ack_body(body.text, await carried(request, who, body.attachments))
    return JSON(await asks_of(request).close(who, body.correlation_id, state, closing, key))


async def post_answer(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, AnswerRequest)
    key = body.idempotency_key or request.headers.get("idempotency-key")
    closing = answer_body(body.option_id, body.text, body.outcome, await carried(request, who, body.attachments))
    return JSON(await asks_of(request).close(who, body.correlation_id, ANSWERED, closing, key))


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise HubError(ErrorCode.INVALID_REQUEST, f"{name} is a whole number from {low} to {high}", {name: raw})
    return int(raw)


async def pending_asks(request: Request) -> JSON:
    who = caller(request)
    direction = request.query_params.get("direction", "both")
    if direction not in ("inbound", "outbound", "both"):
        raise HubError(ErrorCode.INVALID_REQUEST, "direction is inbound, outbound or both", {"direction": direction})
    ref = request.query_params.get("peer")
    peer = hub_of(request).find_peer(ref, who) if ref else who.peer
    limit = int_param(request, "limit", 50, 1, 500)
    offset = int_param(request, "offset", 0, 0, 1_000_000)
    return JSON(await asks_of(request).pending(who, peer, direction, offset, limit))


async def get_ask(request: Request) -> JSON:
    who = caller(request)
    return JSON(await asks_of(request).get(who, request.path_params["correlation_id"]))


async def wait_ask(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, WaitRequest) if await has_body(request) else WaitRequest()
    return JSON(await asks_of(request).wait(who, request.path_params["correlation_id"], body.timeout_s))


async def has_body(request: Request) -> bool:
    return request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
