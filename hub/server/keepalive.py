"""One timer for every WebSocket's keepalive.

uvicorn's protocol pings each connection on a timer of its own and arms a second timer for the
pong: two timers and a cancel per connection per interval, and every ping and pong wakes the
event loop on its own. With thousands of quiet peers that is most of what an idle hub does
(bench/RESULTS.md, section idle-cost). Here the connections sit in the slots of a wheel that
turns once per interval: each tick pings the connections of one slot, in one loop turn, and
cuts those whose previous ping (one interval ago) was not answered. A dead peer is cut between
one and two intervals after its last pong, as with uvicorn's timers when the pong timeout equals
the interval (how the hub configures it: both are `--heartbeat`).

Each tick also makes the ping its connections send: one random 4-byte payload and its frame
(`ping_payload`, `ping_frame`), written as they are, instead of a frame built per connection.
A pong is matched to the payload its own connection sent, so sharing it is safe.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import Protocol

log = logging.getLogger(__name__)

SLOTS = 10


class Pinged(Protocol):
    """A connection the wheel keeps alive."""

    def keepalive_due(self) -> bool:
        """Ping now, or give up on a peer that did not answer the last ping; False when the
        connection is done with (the wheel forgets it)."""
        ...


class KeepaliveWheel:
    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._slots: list[set[Pinged]] = [set() for _ in range(SLOTS)]
        self._slot_of: dict[Pinged, int] = {}
        self._turn = 0
        self._timer: asyncio.TimerHandle | None = None
        self.ping_payload = b""
        self.ping_frame = b""     # a server's ping: FIN + opcode 9, unmasked, the payload
        self.ticked_at = 0.0      # loop time of this tick
        self._new_ping()

    def add(self, connection: Pinged) -> None:
        """Keep `connection` alive from now on: its first ping comes about one interval later."""
        slot = (self._turn - 1) % SLOTS   # the slot the wheel reaches last
        self._slots[slot].add(connection)
        self._slot_of[connection] = slot
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s / SLOTS, self._tick)

    def discard(self, connection: Pinged) -> None:
        slot = self._slot_of.pop(connection, None)
        if slot is not None:
            self._slots[slot].discard(connection)
        if not self._slot_of and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __len__(self) -> int:
        return len(self._slot_of)

    def _new_ping(self) -> None:
        self.ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_frame = b"\x89\x04" + self.ping_payload

    def _tick(self) -> None:
        self._turn = (self._turn + 1) % SLOTS
        self._new_ping()
        self.ticked_at = asyncio.get_running_loop().time()
        for connection in list(self._slots[self._turn]):
            try:
                alive = connection.keepalive_due()
            except Exception:   # one broken connection must not stop the wheel for the others
                log.exception("keepalive of a connection failed; it is no longer pinged")
                alive = False
            if not alive:
                self.discard(connection)
        self._timer = None
        if self._slot_of:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s / SLOTS, self._tick)
