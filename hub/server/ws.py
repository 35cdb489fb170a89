"""The WebSocket endpoint `/ws`: hello first, answered with `welcome`; then the socket's frames
(notify, ask, ack, answer, ask_blocking, decide, receipt, presence, ping, bye and, from pane
bridges, bridge_result) go to its PeerSession (hub.server.peer_session) as they arrive.
Also the helpers the dashboard's socket shares: the first frame, a close with an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from msgspec import Struct
from starlette.websockets import WebSocket

from hub.core.errors import HubError
from hub.core.peers import BRIDGE
from hub.runtime.connection import Connection
from hub.runtime.hub import Hub
from hub.runtime.panes import PaneService
from hub.server.peer_session import PeerSession
from hub.server.rest import bearer
from hub.server.services import services
from hub.server.ws_protocol import FRAMES, HubWebSocketProtocol
from schemas.codec import FrameError, decode_client_frame, encode, error_frame
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.frames import Hello

F = TypeVar("F", bound=Struct)

log = logging.getLogger(__name__)


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
    protocol: HubWebSocketProtocol = websocket.scope["extensions"][FRAMES]["protocol"]
    session = PeerSession(hub, conn, protocol, asks=services(websocket).asks, questions=services(websocket).questions,
                          panes=panes, attachments=services(websocket).attachments)
    conn.on_abort = session.stop   # the hub cut this connection: stop reading it
    websocket.scope["headers"].clear()   # read at admission and not again (2 KB a connection)
    try:
        protocol.take_messages(session.received, session.lost)
        await session.ended
    finally:
        ended = session.ended
        reason = ended.result() if ended.done() and not ended.cancelled() else "disconnected"
        protocol.stop_taking_messages()
        session.stop()
        replay.cancel()
        panes.bridge_left(conn)
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
