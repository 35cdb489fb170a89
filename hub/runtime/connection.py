"""One client connection as the runtime sees it: a bounded outbox drained by one writer task.

The edge gives a `FrameSink` (send text, close); the runtime never touches Starlette. A frame
that would overflow the outbox closes the connection as a slow consumer instead of growing
memory or stalling anyone else; what it had not confirmed stays in its inbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from hub.core.delivery import InFlight
from schemas.errors import ERROR_TABLE, ErrorCode

log = logging.getLogger(__name__)


class FrameSink(Protocol):
    async def send_text(self, data: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...
    def drop(self) -> None:
        """Cut the transport at once (a peer that does not read cannot receive a close frame)."""


class Connection:
    def __init__(self, sink: FrameSink, outbox_limit: int, label: str = ""):
        self.sink = sink
        self.outbox_limit = outbox_limit
        self.label = label
        self.peer_id: str | None = None
        self.replaying = False           # while True, live deliveries wait in the inbox
        self.pull_again = False          # a wake came while replaying: read the inbox once more
        self.last_pushed_seq = 0
        self.inflight: dict[str, InFlight] = {}  # message_id -> the delivery pushed and not yet confirmed
        self.closed = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._outbox: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task | None = None
        self.on_abort: Callable[[], object] | None = None  # the edge stops reading this socket

    def start(self) -> None:
        self._task = asyncio.create_task(self._drain(), name=f"outbox {self.label}")

    def push(self, frame: bytes) -> bool:
        """Queue a frame; False (and the connection is being closed) when the outbox is full."""
        if self.closed:
            return False
        if len(self._outbox) >= self.outbox_limit:
            self.abort(ErrorCode.SLOW_CONSUMER, f"outbox passed {self.outbox_limit} frames")
            return False
        self._outbox.append(frame)
        self._drained.clear()
        self._ready.set()
        return True

    async def wait_below(self, frames: int) -> None:
        while not self.closed and len(self._outbox) > frames:
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
        self._ready.set()
        self._drained.set()
        if self.on_abort is not None:
            self.on_abort()

    async def _drain(self) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._outbox and not self.closed:   # (no local keeps the last frame while idle)
                    await self.sink.send_text(self._outbox.popleft().decode())
                    if len(self._outbox) <= self.outbox_limit // 2:
                        self._drained.set()
                self._drained.set()
                if self.closed:
                    break
        except Exception as exc:  # the socket went away under us
            log.debug("outbox of %s stopped: %s", self.label, exc)
            self.closed = True
            self._drained.set()
            return
        try:
            await self.sink.close(self.close_code or 1000, self.close_reason)
        except Exception:
            pass

    async def stop(self, close_grace_s: float = 2.0) -> None:
        """Stop the writer. An aborted connection gets `close_grace_s` to send its close frame;
        if the peer does not take it (it stopped reading), the transport is dropped."""
        if self._task is not None:
            if not self.closed:
                self.closed = True
                self._ready.set()
            elif self.close_code is not None and not self._task.done():
                await asyncio.wait({self._task}, timeout=close_grace_s)
                if not self._task.done():
                    self.sink.drop()
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
