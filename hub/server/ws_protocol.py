"""uvicorn's sans-io WebSocket protocol with flow control by a high-water mark, kept alive by
one wheel for every connection.

The stock protocol stops reading the socket after every message until the app receives it,
and starts again on every receive: two `epoll_ctl` system calls per incoming frame, a large
share of a small request's cost (bench/RESULTS.md). This one stops reading only when
`HIGH_WATER` messages wait for the app, so a peer that floods is still held back by TCP, and
resumes (as the stock protocol does) once the app has taken them all.

Its keepalive pings come from a `KeepaliveWheel` (hub.server.keepalive) instead of two timers
per connection; uvicorn passes the wheel in through the `ws` factory (`partial(..., keepalive=)`).
"""

from __future__ import annotations

import random
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from hub.server.keepalive import KeepaliveWheel

HIGH_WATER = 32


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, keepalive: KeepaliveWheel | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive

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
