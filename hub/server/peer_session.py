"""The frames of one peer's socket after its hello, handled as they arrive.

The WebSocket protocol calls `PeerSession.received` for each message (no task and no queue per
connection). Most frames are handled there and then: a notify, ask, ack or answer is submitted
at once, so submission order is frame order, and `accepted` (or an `error`) follows once it is
durable. A frame that must wait (its attachments are looked up, the sender's address is
learned from the mesh, or `MAX_UNACCEPTED` operations already wait for the store) becomes a
step of its own; the frames behind it wait in the session's backlog, in order, and the socket
is not read while the backlog holds `HIGH_WATER` frames (TCP backpressure).

A bad frame gets an `error` frame (echoing the client's id as `ref`) and the connection lives
on. Tool-permission questions are held in tasks of the connection, cancelled when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

import msgspec

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
from hub.server.ws_protocol import HIGH_WATER, HubWebSocketProtocol
from schemas.codec import FrameError, decode_client_frame, encode, error_frame
from schemas.errors import ErrorCode
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

log = logging.getLogger(__name__)

MAX_UNACCEPTED = 256   # operations of one connection waiting for the store at once

Operation = Notify | Ask | Ack | Answer


class PeerSession:
    __slots__ = ("_asks", "_attachments", "_backlog", "_held", "_max_bytes", "_panes", "_protocol", "_questions",
                 "_room_free", "_waiting", "conn", "ended", "hub", "unanswered")

    def __init__(self, hub: Hub, conn: Connection, protocol: HubWebSocketProtocol, *, asks: AskService,
                 questions: QuestionService, panes: PaneService, attachments: AttachmentService):
        self.hub, self.conn, self._protocol = hub, conn, protocol
        self._asks, self._questions, self._panes, self._attachments = asks, questions, panes, attachments
        self._max_bytes = hub.settings.limits.max_frame_bytes
        self._backlog: list[str | bytes] = []         # frames behind one that waits (rarely any)
        self._waiting = False                          # a step holds the frames behind it
        self._held: set[asyncio.Task] = set()          # that step, and questions waiting for a decision
        self._room_free: asyncio.Future[None] | None = None
        self.unanswered = 0
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()   # why it ended

    # ---- from the protocol -------------------------------------------------------------------

    def received(self, data: str | bytes) -> None:
        if self.ended.done():
            return
        if self._waiting or self._backlog:
            self._backlog.append(data)
            if len(self._backlog) >= HIGH_WATER:
                self._protocol.hold_reading()
            return
        self._handle(data)

    def lost(self) -> None:
        self.end("disconnected")

    def end(self, reason: str) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)
        self._backlog.clear()

    def stop(self) -> None:
        """The connection is over: what it still holds (a step, questions) is cancelled."""
        self.end("closed")
        for task in self._held:
            task.cancel()

    def answered(self) -> None:
        """One operation of this connection was answered: room for another."""
        self.unanswered -= 1
        if self._room_free is not None and not self._room_free.done():
            self._room_free.set_result(None)

    # ---- one frame ---------------------------------------------------------------------------

    def _handle(self, data: str | bytes) -> None:
        hub, conn = self.hub, self.conn
        peer = hub.peers.get(conn.peer_id or "")
        if peer is None:
            self.end("deleted")
            return
        frame: Any = None
        try:
            frame = decode_client_frame(data, self._max_bytes)
            if isinstance(frame, (Notify, Ask, Ack, Answer)):
                if frame.attachments or self.unanswered >= MAX_UNACCEPTED:
                    self._wait_for(self._submit_later(peer, frame), frame.id)
                else:
                    try:
                        self._submit(peer, frame, None)
                    except HubError as exc:   # perhaps an address this node has not learned yet
                        self._wait_for(self._again_if_learned(peer, frame, None, exc), frame.id)
            elif isinstance(frame, Receipt):
                hub.inboxes.receipt(peer, conn, frame.message_id, frame.status, frame.reason)
            elif isinstance(frame, Ping):
                conn.push(encode(Pong(ref=frame.id)))
            elif isinstance(frame, Presence):
                hub.presence.set(peer, frame.status)
            elif isinstance(frame, AskBlocking):
                self._hold(_hold_question(self._questions, conn, Sender(peer), frame))
            elif isinstance(frame, Decide):
                self._hold(_decide(self._questions, conn, Sender(peer), frame))
            elif isinstance(frame, BridgeResult):
                if peer.role == BRIDGE:
                    self._panes.result(frame.call_id, frame.ok, frame.result,
                                       msgspec.to_builtins(frame.error) if frame.error is not None else None)
            elif isinstance(frame, Bye):
                self.end(frame.reason)
            elif isinstance(frame, Hello):
                raise HubError(ErrorCode.ALREADY_WELCOMED, "this connection already said hello")
        except FrameError as exc:
            conn.push(error_frame(exc.code, exc.message, exc.ref, exc.details))
        except HubError as exc:
            conn.push(error_frame(exc.code, exc.message, getattr(frame, "id", None), exc.details))

    def _submit(self, peer: PeerRecord, frame: Operation, carried: list[dict] | None) -> None:
        """Submit the operation now (raises its HubError); `accepted` follows once it is durable."""
        pending: asyncio.Future[MessageAccepted] | asyncio.Future[AskAccepted] | asyncio.Future[Closed]
        sender = Sender(peer)
        if isinstance(frame, Notify):
            pending = self.hub.notify(sender, frame.to, frame.text, idempotency_key=frame.idempotency_key,
                                      attachments=carried)
        elif isinstance(frame, Ask):
            question = msgspec.to_builtins(frame.question) if frame.question is not None else None
            pending = self._asks.ask(sender, frame.to, frame.text, timeout_s=frame.timeout_s,
                                     queue_if_offline=frame.queue_if_offline, question=question,
                                     idempotency_key=frame.idempotency_key, attachments=carried)
        elif isinstance(frame, Ack):
            state, body = ack_body(frame.text, carried)
            pending = self._asks.close(sender, frame.correlation_id, state, body, frame.idempotency_key)
        else:
            pending = self._asks.close(sender, frame.correlation_id, ANSWERED,
                                       answer_body(frame.option_id, frame.text, frame.outcome, carried),
                                       frame.idempotency_key)
        self.unanswered += 1
        pending.add_done_callback(_Answer(self, frame.id))

    # ---- frames that wait --------------------------------------------------------------------

    def _wait_for(self, work: Coroutine[Any, Any, None], ref: str | None) -> None:
        """Run `work` as a step; the frames behind it wait until it is done."""
        self._waiting = True
        self._hold(self._step(work, ref))

    async def _step(self, work: Awaitable[None], ref: str | None) -> None:
        try:
            await work
        except HubError as exc:
            self.conn.push(error_frame(exc.code, exc.message, ref, exc.details))
        except Exception:
            log.exception("connection %s failed", self.conn.label)
            self.end("disconnected")
            return
        self._waiting = False
        while self._backlog and not self._waiting and not self.ended.done():
            self._handle(self._backlog.pop(0))
        if len(self._backlog) < HIGH_WATER:
            self._protocol.release_reading()

    async def _submit_later(self, peer: PeerRecord, frame: Operation) -> None:
        carried = await self._attachments.resolve(Sender(peer), frame.attachments) if frame.attachments else None
        await self._room()
        try:
            self._submit(peer, frame, carried)
        except HubError as exc:
            await self._again_if_learned(peer, frame, carried, exc)

    async def _again_if_learned(self, peer: PeerRecord, frame: Operation, carried: list[dict] | None,
                                refused: HubError) -> None:
        async def again() -> None:
            await self._room()
            self._submit(peer, frame, carried)
        await self.hub.again_if_learned(Sender(peer), refused, frame.to if isinstance(frame, (Notify, Ask)) else [],
                                        again)

    async def _room(self) -> None:
        while self.unanswered >= MAX_UNACCEPTED:
            self._room_free = asyncio.get_running_loop().create_future()
            await self._room_free

    def _hold(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._held.add(task)
        task.add_done_callback(self._held.discard)


class _Answer:
    """The callback that answers one operation (slotted: no closure cells per frame)."""
    __slots__ = ("ref", "session")

    def __init__(self, session: PeerSession, ref: str | None):
        self.session, self.ref = session, ref

    def __call__(self, fut: asyncio.Future[Any]) -> None:
        self.session.answered()
        conn = self.session.conn
        exc = fut.exception()
        if exc is None:
            conn.push(encode(accepted_frame(self.ref, fut.result())))
        elif isinstance(exc, HubError):
            conn.push(error_frame(exc.code, exc.message, self.ref, exc.details))
        else:
            log.error("operation %s failed", self.ref, exc_info=exc)
            conn.push(error_frame(ErrorCode.INTERNAL, "the hub failed to accept this frame", self.ref))


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
