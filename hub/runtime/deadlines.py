"""Deadlines without a polling loop: one task sleeps until the earliest deadline of many.

Asks and tool-permission questions track their deadlines here. `fire(key)` runs for each key
that falls due (one at a time, in deadline order); it may return a later time to be tried
again (the store was down), or None when the key is done.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable

from hub.runtime.periodic import stop_if_cancelled

log = logging.getLogger(__name__)


class DeadlineTimer:
    def __init__(self, now_ms: Callable[[], int], fire: Callable[[str], Awaitable[int | None]], name: str):
        self._now_ms = now_ms
        self._fire = fire
        self._name = name
        self._deadlines: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def track(self, key: str, deadline: int) -> None:
        self._deadlines[key] = deadline
        if not self._heap or deadline < self._heap[0][0]:
            self._wake.set()
        heapq.heappush(self._heap, (deadline, key))

    def forget(self, key: str) -> None:
        """The key closed before its deadline; its heap entry is skipped when it comes up."""
        self._deadlines.pop(key, None)

    async def _run(self) -> None:
        while True:
            now = self._now_ms()
            while self._heap and self._heap[0][0] <= now:
                deadline, key = heapq.heappop(self._heap)
                if self._deadlines.get(key) != deadline:
                    continue  # forgotten, or tracked again with another deadline
                del self._deadlines[key]
                try:
                    retry_at = await self._fire(key)
                except Exception:
                    stop_if_cancelled()
                    log.exception("%s: firing %s failed", self._name, key)
                    retry_at = None
                if retry_at is not None:
                    self.track(key, retry_at)
                now = self._now_ms()
            delay = (self._heap[0][0] - now) / 1000 if self._heap else None
            self._wake.clear()
            try:
                async with asyncio.timeout(delay):   # not wait_for: on 3.11 it can swallow a cancel
                    await self._wake.wait()
            except TimeoutError:
                pass
