"""One client connection as the runtime sees it: a bounded outbox, written to the socket in
one piece per turn of the event loop.

The edge gives a `FrameSink` (write frames now, tell when the transport takes more, close);
the runtime never touches Starlette. Frames pushed during one turn of the loop (the `accepted`
answers of one store batch, a replay page) leave in one write, one system call, instead of one
each. While the transport is above its high-water mark (the peer reads slowly) frames wait in
the outbox; a frame that would overflow it closes the connection as a slow consumer instead of
growing memory or stalling anyone else; what it had not confirmed stays in its inbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from hub.core.delivery import InFlight
from schemas.errors import ERROR_TABLE, ErrorCode

log = logging.getLogger(__name__)

WRITE_CHUNK_BYTES = 64 * 1024   # one write's share of the outbox: the transport's buffer passes
                                # its high-water mark by at most this (and one frame)


class FrameSink(Protocol):
    def write(self, frames: Sequence[bytes]) -> bool:
        """Hand text frames (UTF-8 JSON) to the transport, in order, now; False once the
        socket is closing or gone (the frames are dropped)."""
    def writable(self) -> bool:
        """The transport's buffer is below its high-water mark: it takes more now."""
    def when_writable(self, callback: Callable[[], object]) -> None:
        """Call `callback` once, when the transport's buffer drains (or the socket is lost)."""
    async def close(self, code: int, reason: str) -> None: ...
    def drop(self) -> None:
        """Cut the transport at once (a peer that does not read cannot receive a close frame)."""


class Connection:
    __slots__ = ("_closing", "_drained", "_flush_due", "_loop", "_outbox", "_started", "close_code", "close_reason",
                 "closed", "inflight", "label", "last_pushed_seq", "on_abort", "outbox_limit", "peer_id",
                 "pull_again", "replaying", "reread_all", "sink")

    def __init__(self, sink: FrameSink, outbox_limit: int, label: str = ""):
        self.sink = sink
        self.outbox_limit = outbox_limit
        self.label = label
        self.peer_id: str | None = None
        self.replaying = False           # while True, live deliveries wait in the inbox
        self.pull_again = False          # a wake came while replaying: read the inbox once more
        self.reread_all = False          # the store gave a seq again (see Inboxes.pull): read from the start
        self.last_pushed_seq = 0
        self.inflight: dict[str, InFlight] = {}  # message_id -> the delivery pushed and not yet confirmed
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.on_abort: Callable[[], object] | None = None  # the edge stops reading this socket
        self._outbox: list[bytes] = []   # (a list: an empty deque costs 600 bytes more per connection)
        self._started = False            # frames may leave (the welcome is the first)
        self._flush_due = False          # a flush is scheduled for the end of this loop turn
        self._drained: asyncio.Event | None = None   # made for the first wait_below
        self._closing: asyncio.Task | None = None    # the close frame of an aborted connection
        # kept: on Python 3.11 each get_running_loop() is a getpid() system call, twice a notify
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Frames pushed so far, and from now on, go out."""
        self._started = True
        self._schedule_flush()

    def push(self, frame: bytes) -> bool:
        """Queue a frame; False (and the connection is being closed) when the outbox is full."""
        if self.closed:
            return False
        if len(self._outbox) >= self.outbox_limit:
            self.abort(ErrorCode.SLOW_CONSUMER, f"outbox passed {self.outbox_limit} frames")
            return False
        self._outbox.append(frame)
        if not self._flush_due:
            self._schedule_flush()
        return True

    async def wait_below(self, frames: int) -> None:
        while not self.closed and len(self._outbox) > frames:
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            await self._drained.wait()

    def abort(self, code: ErrorCode, detail: str) -> None:
        """Close with the code's close code; frames not yet written are dropped."""
        if self.closed:
            return
        self.closed = True
        self.close_code = ERROR_TABLE[code].close_code or 1011
        self.close_reason = code.value
        log.info("closing %s: %s (%s)", self.label, code.value, detail)
        self._outbox.clear()
        self._wake_waiters()
        self._closing = self._loop.create_task(self._send_close(), name=f"close {self.label}")
        if self.on_abort is not None:
            self.on_abort()

    def _schedule_flush(self) -> None:
        if self._started and self._outbox:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what the outbox holds, as far as the transport takes it."""
        self._flush_due = False
        while self._outbox and not self.closed:
            if not self.sink.writable():
                self._flush_due = True   # the sink calls back once it drains
                self.sink.when_writable(self._flush)
                break
            outbox, taken, size = self._outbox, 0, 0
            while taken < len(outbox) and size < WRITE_CHUNK_BYTES:
                size += len(outbox[taken])
                taken += 1
            frames, self._outbox = (outbox, []) if taken == len(outbox) else (outbox[:taken], outbox[taken:])
            if not self.sink.write(frames):   # the socket went away under us
                self.closed = True
                self._outbox = []
        if self._drained is not None and (self.closed or len(self._outbox) <= self.outbox_limit // 2):
            self._drained.set()

    def _wake_waiters(self) -> None:
        if self._drained is not None:
            self._drained.set()

    async def _send_close(self) -> None:
        try:
            await self.sink.close(self.close_code or 1000, self.close_reason)
        except Exception:  # the peer left first
            pass

    async def stop(self, close_grace_s: float = 2.0) -> None:
        """Stop writing. An aborted connection gets `close_grace_s` to send its close frame;
        if the peer does not take it (it stopped reading), the transport is dropped."""
        if not self.closed:
            self.closed = True
            self._outbox.clear()
            self._wake_waiters()
        closing = self._closing
        if closing is not None and not closing.done():
            await asyncio.wait({closing}, timeout=close_grace_s)
            if not closing.done():
                self.sink.drop()
                closing.cancel()
