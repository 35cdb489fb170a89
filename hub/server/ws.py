"""The WebSocket endpoint `/ws`: hello first, then notify, ask, ack, answer, ask_blocking, decide,
receipt, presence, ping and bye frames (and, from pane bridges, bridge_result).

A bad frame gets an `error` frame (echoing the client's id as `ref`) and the connection lives
on. Notifies are submitted in frame order without waiting for each other; `accepted` follows
once each is durable. At most `MAX_UNACCEPTED` may wait at once per connection, after which
the hub stops reading the socket until some are written (TCP backpressure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import Struct
from starlette.websockets import WebSocket

from hub.core.asks import ANSWERED
from hub.core.errors import HubError
from hub.core.peers import BRIDGE, PeerRecord
from hub.runtime.asks import AskService, ack_body, answer_body
from hub.runtime.attachments import AttachmentService
from hub.runtime.connection import Connection
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.runtime.panes import PaneService
from hub.runtime.questions import QuestionService
from hub.server.rest import bearer
from hub.server.services import services
from hub.server.ws_protocol import FRAMES, HubWebSocketProtocol
from schemas.codec import FrameError, decode_client_frame, encode, error_frame
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.frames import (
    Accepted,
    Ack,
    Answer,
    Ask,
    AskBlocking,
    BridgeResult,
    Bye,
    Decide,
    DecisionFrame,
    Hello,
    Notify,
    Ping,
    Pong,
    Presence,
    Receipt,
)
from schemas.rest import AskAccepted, Closed, DecisionView, MessageAccepted

F = TypeVar("F", bound=Struct)

log = logging.getLogger(__name__)

MAX_UNACCEPTED = 256


class Sink:
    """The runtime's FrameSink for one socket: frames go straight to the connection's protocol
    (hub.server.ws_protocol, found in the scope's extensions), the close through ASGI."""

    __slots__ = ("_send", "drop", "when_writable", "writable", "write")

    def __init__(self, websocket: WebSocket):
        protocol: HubWebSocketProtocol = websocket.scope["extensions"][FRAMES]["protocol"]
        self._send = websocket.send
        self.write = protocol.write_texts
        self.writable = protocol.takes_more
        self.when_writable = protocol.when_writable
        self.drop = protocol.drop

    async def close(self, code: int, reason: str) -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = services(websocket).hub
    settings = hub.settings
    trusted_local = websocket.scope["state"].get("trusted_local", False)
    holds_hub_token = trusted_local or hub.credentials.is_hub_token(bearer(websocket.headers))
    await websocket.accept()
    client = websocket.client
    conn = Connection(Sink(websocket), settings.limits.outbox_frames,
                      label=f"{client.host}:{client.port}" if client else "unix")
    panes: PaneService = services(websocket).panes
    if not await _admit(websocket, hub, panes, conn, holds_hub_token):
        return
    replay = asyncio.create_task(_replay(hub, conn), name=f"replay {conn.label}")
    held: set[asyncio.Task] = set()  # tool-permission questions this connection waits on
    serving = asyncio.create_task(_serve(websocket, hub, conn, held), name=f"serve {conn.label}")
    conn.on_abort = serving.cancel  # the hub cut this connection: stop reading it
    try:
        await asyncio.wait({serving})
    finally:
        serving.cancel()
        replay.cancel()
        for task in held:
            task.cancel()
        panes.bridge_left(conn)
        reason = "disconnected"
        if serving.done() and not serving.cancelled() and serving.exception() is None:
            reason = serving.result()
        elif serving.done() and not serving.cancelled():
            log.error("connection %s failed", conn.label, exc_info=serving.exception())
        await hub.disconnect(conn, conn.close_reason or reason)


async def _admit(websocket: WebSocket, hub: Hub, panes: PaneService, conn: Connection, holds_hub_token: bool) -> bool:
    """Read the hello and answer it: `welcome` queued and the outbox started (True), or the
    socket closed with the reason (False). Its own function, so that the hello and the
    welcome are not kept for the whole life of the connection."""
    settings = hub.settings
    hello = await _read_hello(websocket, settings.hello_timeout_s, settings.limits.max_frame_bytes)
    if hello is None:
        return False
    try:
        welcome = await hub.connect(conn, name=hello.name, circle=hello.circle, role=hello.role, token=hello.token,
                                    resume=hello.resume, holds_hub_token=holds_hub_token)
    except HubError as exc:
        await close_with(websocket, exc.code, exc.message, exc.details)
        return False
    conn.label = f"{hello.name}@{hello.circle}"
    conn.push(encode(welcome))
    conn.start()
    if hello.role == BRIDGE:
        panes.bridge_joined(hub.peers[welcome.peer_id], conn)
    return True


async def _replay(hub: Hub, conn: Connection) -> None:
    try:
        await hub.inboxes.replay(conn)
    except HubError as exc:
        log.warning("replay for %s stopped: %s", conn.label, exc.message)
        conn.abort(exc.code, exc.message)


async def _read_hello(websocket: WebSocket, timeout_s: float, max_bytes: int) -> Hello | None:
    return await read_first_frame(websocket, timeout_s, max_bytes, decode_client_frame, Hello, ErrorCode.HELLO_REQUIRED)


async def read_first_frame(websocket: WebSocket, timeout_s: float, max_bytes: int,
                           decode: Callable[[str | bytes, int], Struct], expected: type[F],
                           required: ErrorCode) -> F | None:
    """The frame a socket must open with (`hello` on /ws, `subscribe` on /dashboard/ws), or
    None after closing the socket with `required` (or the frame's own error code)."""
    name = expected.__struct_config__.tag
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout_s)
    except TimeoutError:
        await close_with(websocket, required, f"no {name} within {timeout_s:g}s")
        return None
    if message["type"] == "websocket.disconnect":
        return None
    try:
        frame = decode(frame_data(message), max_bytes)
    except FrameError as exc:
        await close_with(websocket, exc.code if exc.code is not ErrorCode.UNKNOWN_TYPE else required,
                         exc.message, exc.details, close_code=ERROR_TABLE[required].close_code)
        return None
    if not isinstance(frame, expected):
        await close_with(websocket, required, f"the first frame must be {name}", ref=getattr(frame, "id", None))
        return None
    return frame


def frame_data(message: Mapping[str, Any]) -> str | bytes:
    """The payload of a received WebSocket message, text or binary."""
    text = message.get("text")
    if isinstance(text, str):
        return text
    data = message.get("bytes")
    return data if isinstance(data, bytes) else b""


async def close_with(websocket: WebSocket, code: ErrorCode, message: str, details: dict | None = None,
                      ref: str | None = None, close_code: int | None = None) -> None:
    try:
        await websocket.send_text(error_frame(code, message, ref, details).decode())
        await websocket.close(close_code or ERROR_TABLE[code].close_code or 1008, code.value)
    except Exception:  # the client left first
        pass


async def _serve(websocket: WebSocket, hub: Hub, conn: Connection, held: set[asyncio.Task]) -> str:
    """The receive loop; returns why it ended."""
    asks: AskService = services(websocket).asks
    questions: QuestionService = services(websocket).questions
    panes: PaneService = services(websocket).panes
    attachments: AttachmentService = services(websocket).attachments
    max_bytes = hub.settings.limits.max_frame_bytes
    room = asyncio.Semaphore(MAX_UNACCEPTED)
    receive = websocket.receive
    while not conn.closed:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return "disconnected"
        data = frame_data(message)
        peer = hub.peers.get(conn.peer_id or "")
        if peer is None:
            return "deleted"
        try:
            frame = decode_client_frame(data, max_bytes)
            if isinstance(frame, Notify):
                carried = await attachments.resolve(Sender(peer), frame.attachments) if frame.attachments else None
                await room.acquire()
                try:
                    _start_notify(hub, conn, Sender(peer), frame, room, carried)
                except HubError as exc:
                    await hub.again_if_learned(Sender(peer), exc, frame.to,
                                               _starts_notify(hub, conn, peer, frame, room, carried))
            elif isinstance(frame, (Ask, Ack, Answer)):
                carried = await attachments.resolve(Sender(peer), frame.attachments) if frame.attachments else None
                await room.acquire()
                try:
                    _start_ask_operation(asks, conn, Sender(peer), frame, room, carried)
                except HubError as exc:
                    await hub.again_if_learned(Sender(peer), exc, frame.to if isinstance(frame, Ask) else [],
                                               _starts_ask_operation(asks, conn, peer, frame, room, carried))
            elif isinstance(frame, Receipt):
                hub.inboxes.receipt(peer, conn, frame.message_id, frame.status, frame.reason)
            elif isinstance(frame, Ping):
                conn.push(encode(Pong(ref=frame.id)))
            elif isinstance(frame, Presence):
                hub.presence.set(peer, frame.status)
            elif isinstance(frame, AskBlocking):
                _hold(held, _hold_question(questions, conn, Sender(peer), frame))
            elif isinstance(frame, Decide):
                _hold(held, _decide(questions, conn, Sender(peer), frame))
            elif isinstance(frame, BridgeResult):
                if peer.role == BRIDGE:
                    panes.result(frame.call_id, frame.ok, frame.result,
                                 msgspec.to_builtins(frame.error) if frame.error is not None else None)
            elif isinstance(frame, Bye):
                return frame.reason
            elif isinstance(frame, Hello):
                raise HubError(ErrorCode.ALREADY_WELCOMED, "this connection already said hello")
        except FrameError as exc:
            conn.push(error_frame(exc.code, exc.message, exc.ref, exc.details))
        except HubError as exc:
            conn.push(error_frame(exc.code, exc.message, getattr(frame, "id", None), exc.details))
    return conn.close_reason or "closed"


def _hold(held: set[asyncio.Task], work) -> None:
    """Run `work` in a task this connection owns: cancelled when the connection ends."""
    task = asyncio.create_task(work)
    held.add(task)
    task.add_done_callback(held.discard)


async def _hold_question(questions: QuestionService, conn: Connection, sender: Sender, frame: AskBlocking) -> None:
    """`accepted` once the question is written, then one `decision` frame (same `ref`)."""
    try:
        opened = await questions.open(sender, frame)
    except HubError as exc:
        conn.push(error_frame(exc.code, exc.message, frame.id, exc.details))
        return
    conn.push(encode(Accepted(ref=frame.id, message_id=opened.correlation_id, correlation_id=opened.correlation_id,
                              deadline=opened.deadline, state="queued" if not opened.decision.done() else "delivered")))
    try:
        decision = await asyncio.shield(opened.decision)
    except asyncio.CancelledError:
        questions.waiter_lost(opened.correlation_id, opened.decision, "client_disconnected")
        raise
    conn.push(encode(decision_frame(frame.id, decision)))


async def _decide(questions: QuestionService, conn: Connection, sender: Sender, frame: Decide) -> None:
    try:
        view = await questions.answer(sender, frame.correlation_id, decision=frame.decision, option_id=frame.option_id,
                                      reason=frame.reason, expected_hash=frame.content_hash,
                                      scope=frame.scope, prefix=frame.prefix)
    except HubError as exc:
        conn.push(error_frame(exc.code, exc.message, frame.id, exc.details))
        return
    conn.push(encode(decision_frame(frame.id, view)))


def _starts_notify(hub: Hub, conn: Connection, peer: PeerRecord, frame: Notify, room: asyncio.Semaphore,
                   carried: list[dict] | None) -> Callable[[], Awaitable[None]]:
    """The notify's second start, for Hub.again_if_learned: room for one more unanswered frame,
    then submitted at once (frame order is submission order)."""
    async def start() -> None:
        await room.acquire()
        _start_notify(hub, conn, Sender(peer), frame, room, carried)
    return start


def _starts_ask_operation(asks: AskService, conn: Connection, peer: PeerRecord, frame: Ask | Ack | Answer,
                          room: asyncio.Semaphore, carried: list[dict] | None) -> Callable[[], Awaitable[None]]:
    async def start() -> None:
        await room.acquire()
        _start_ask_operation(asks, conn, Sender(peer), frame, room, carried)
    return start


def _start_notify(hub: Hub, conn: Connection, sender: Sender, frame: Notify, room: asyncio.Semaphore,
                  carried: list[dict] | None) -> None:
    try:
        pending = hub.notify(sender, frame.to, frame.text, idempotency_key=frame.idempotency_key, attachments=carried)
    except HubError:
        room.release()
        raise
    _answer_when_done(conn, frame.id, pending, room)


def _start_ask_operation(asks: AskService, conn: Connection, sender: Sender, frame: Ask | Ack | Answer,
                         room: asyncio.Semaphore, carried: list[dict] | None) -> None:
    """Asks, acks and answers in frame order (see AskService.ask and .close)."""
    pending: asyncio.Future[AskAccepted] | asyncio.Future[Closed]
    try:
        if isinstance(frame, Ask):
            question = msgspec.to_builtins(frame.question) if frame.question is not None else None
            pending = asks.ask(sender, frame.to, frame.text, timeout_s=frame.timeout_s,
                               queue_if_offline=frame.queue_if_offline, question=question,
                               idempotency_key=frame.idempotency_key, attachments=carried)
        elif isinstance(frame, Ack):
            state, body = ack_body(frame.text, carried)
            pending = asks.close(sender, frame.correlation_id, state, body, frame.idempotency_key)
        else:
            pending = asks.close(sender, frame.correlation_id, ANSWERED,
                                 answer_body(frame.option_id, frame.text, frame.outcome, carried),
                                 frame.idempotency_key)
    except HubError:
        room.release()
        raise
    _answer_when_done(conn, frame.id, pending, room)


def decision_frame(ref: str | None, view: DecisionView) -> DecisionFrame:
    """The `decision` frame for a question's decision, to the socket whose frame `ref` names."""
    return DecisionFrame(ref=ref, **msgspec.structs.asdict(view))


def accepted_frame(ref: str | None, result: MessageAccepted | AskAccepted | Closed) -> Accepted:
    """The `accepted` frame for an operation's result (the REST route answers the result itself)."""
    if isinstance(result, MessageAccepted):
        return Accepted(ref=ref, message_id=result.message_id, state=result.state, recipients=result.recipients,
                        replayed=result.replayed)
    if isinstance(result, AskAccepted):
        return Accepted(ref=ref, message_id=result.message_id, state=result.state, replayed=result.replayed,
                        correlation_id=result.correlation_id, deadline=result.deadline, group_id=result.group_id,
                        children=result.children)
    return Accepted(ref=ref, message_id=result.message_id, state=result.state, replayed=result.replayed,
                    correlation_id=result.correlation_id, ask_state=result.ask_state)


def _answer_when_done(conn: Connection, ref: str | None,
                      pending: asyncio.Future[MessageAccepted] | asyncio.Future[AskAccepted] | asyncio.Future[Closed],
                      room: asyncio.Semaphore) -> None:
    """When the operation is durable, answer `accepted` (or an `error`) echoing the frame id."""
    pending.add_done_callback(_Answer(conn, ref, room))


class _Answer:
    """The callback that answers one operation (slotted: no closure cells per frame)."""
    __slots__ = ("conn", "ref", "room")

    def __init__(self, conn: Connection, ref: str | None, room: asyncio.Semaphore):
        self.conn, self.ref, self.room = conn, ref, room

    def __call__(self, fut: asyncio.Future[Any]) -> None:
        self.room.release()
        exc = fut.exception()
        if exc is None:
            self.conn.push(encode(accepted_frame(self.ref, fut.result())))
        elif isinstance(exc, HubError):
            self.conn.push(error_frame(exc.code, exc.message, self.ref, exc.details))
        else:
            log.error("operation %s failed", self.ref, exc_info=exc)
            self.conn.push(error_frame(ErrorCode.INTERNAL, "the hub failed to accept this frame", self.ref))
