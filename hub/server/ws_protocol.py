"""uvicorn's sans-io WebSocket protocol with flow control by a high-water mark, kept alive by
one wheel for every connection.

The stock protocol stops reading the socket after every message until the app receives it,
and starts again on every receive: two `epoll_ctl` system calls per incoming frame, a large
share of a small request's cost (bench/RESULTS.md). This one stops reading only when
`HIGH_WATER` messages wait for the app, so a peer that floods is still held back by TCP, and
resumes (as the stock protocol does) once the app has taken them all.

Its keepalive pings come from a `KeepaliveWheel` (hub.server.keepalive) instead of two timers
per connection; uvicorn passes the wheel in through the `ws` factory (`partial(..., keepalive=)`).

It also writes the hub's outgoing frames without ASGI's one-message-per-await `send`: the app
finds the protocol in the scope's extension `FRAMES` and hands it every frame one connection
has ready in a loop turn (`write_texts`), framed here (RFC 6455 5.2: a server's frames are not
masked; no extension is negotiated, compression being off) and written in one `transport.write`.
Closing still goes through ASGI.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from hub.server.keepalive import KeepaliveWheel

HIGH_WATER = 32
FRAMES = "repowire.frames"   # the scope extension: {"protocol": this connection's protocol}

_TEXT_FIN = 0x81              # FIN + opcode 1 (text)
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def text_frame_header(size: int) -> bytes:
    """The header of one unmasked, unfragmented text frame of `size` bytes (RFC 6455 5.2)."""
    if size < 126:
        return _SHORT.pack(_TEXT_FIN, size)
    if size < 65536:
        return _MEDIUM.pack(_TEXT_FIN, 126, size)
    return _LONG.pack(_TEXT_FIN, 127, size)


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, keepalive: KeepaliveWheel | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive
        self.writable_callback: Callable[[], object] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:   # the app runs: let it write frames directly
            self.scope["extensions"][FRAMES] = {"protocol": self}

    # ---- frames from the app, without ASGI -------------------------------------------------

    def write_texts(self, frames: Sequence[bytes]) -> bool:
        """Write text frames (UTF-8) in one system call; False once the connection is closing
        or gone (nothing is written)."""
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN or self.transport.is_closing():
            return False
        if self.conn.extensions:   # never with compression off; kept correct regardless
            for frame in frames:
                self.conn.send_text(frame)
            self.transport.write(b"".join(self.conn.data_to_send()))
            return True
        parts: list[bytes] = []
        for frame in frames:
            parts.append(text_frame_header(len(frame)))
            parts.append(frame)
        self.transport.write(b"".join(parts))
        return True

    def takes_more(self) -> bool:
        """Below the transport's high-water mark (or gone, which `write_texts` answers)."""
        return self.writable.is_set()

    def when_writable(self, callback: Callable[[], object]) -> None:
        self.writable_callback = callback

    def resume_writing(self) -> None:
        super().resume_writing()
        self._call_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._call_writable()

    def _call_writable(self) -> None:
        callback, self.writable_callback = self.writable_callback, None
        if callback is not None:
            callback()

    def drop(self) -> None:
        """Cut the transport at once (for a peer that stopped reading)."""
        self.transport.abort()

    # ---- keepalive, by the wheel -----------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.keepalive is None:
            super().start_keepalive()
        elif self.ping_interval:
            self.keepalive.add(self)

    def stop_keepalive(self) -> None:
        if self.keepalive is not None:
            self.keepalive.discard(self)
        super().stop_keepalive()

    def keepalive_due(self) -> bool:
        """The wheel's turn for this connection: give up on a peer that has not answered the
        ping sent one interval ago, or send the next. (The stock `handle_pong` clears the ping
        it answers; with no pong timer it arms nothing.)"""
        if self.close_sent or self.transport.is_closing():
            return False
        if self.pending_ping_payload is not None:
            self.keepalive_timeout()
            return False
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    # ---- flow control ----------------------------------------------------------------------

    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        self.read_paused = True  # the stock method pauses unless it believes it already has
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()
