"""uvicorn's sans-io WebSocket protocol with flow control by a high-water mark.

The stock protocol stops reading the socket after every message until the app receives it,
and starts again on every receive: two `epoll_ctl` system calls per incoming frame, a large
share of a small request's cost (bench/RESULTS.md). This one stops reading only when
`HIGH_WATER` messages wait for the app, so a peer that floods is still held back by TCP, and
resumes (as the stock protocol does) once the app has taken them all.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

HIGH_WATER = 32


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
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
