"""The node bus: how hub nodes sharing one store tell each other what changed.

Two pub/sub channels. `rw:bus` is heard by every node: "<kind> <node> <data>", where kind is
`peer` (a peer's record changed: read it again), `ask_closed`, `question`, `question_decided`
or `signout`. `rw:wake:<node>` is heard by one node: "<peer id> <seq> <message id>", a delivery
queued for a peer it holds a connection for (the store's enqueue scripts publish it). Pub/sub keeps
nothing, so after every (re)subscription the listener is told to catch up from the store: the
store is the truth, the bus only says where to look and when.

A node's lease (`rw:lease:<node>`, "<host> <pid> <instance>" with an expiry) says it is alive;
the other nodes take its peers offline once it lapses.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from hub.core.nodes import LeaseHolder
from hub.store import keys
from hub.store.connect import STORE_DOWN, StoreClient, maps_store_errors
from hub.store.link import Listener
from hub.store.state import as_text

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Wake:
    """What a wake names: the seq and the message of the delivery just queued."""
    seq: int
    message_id: str


@dataclass(frozen=True, slots=True)
class BusMessage:
    kind: str
    node: str
    data: bytes


def parse_bus_message(raw: bytes) -> BusMessage | None:
    kind, _, rest = raw.partition(b" ")
    node, _, data = rest.partition(b" ")
    if not kind or not node:
        return None
    return BusMessage(kind.decode(errors="replace"), node.decode(errors="replace"), data)


def this_host() -> str:
    return socket.gethostname()


@maps_store_errors
class NodeBus:
    def __init__(self, client: StoreClient, subscriber: Listener, node: str):
        self.client = client          # short commands (leases), with reply deadlines
        self.subscriber = subscriber  # hears the bus and this node's wake channel
        self.node = node

    async def follow(self, on_message: Callable[[BusMessage], None], on_wake: Callable[[str, Wake | None], None],
                     on_subscribed: Callable[[], None]) -> None:
        """Hand every message to its callback, after `on_subscribed` (the catch-up); returns or
        raises when the connection ends (the caller subscribes again)."""
        wake = keys.wake_channel(self.node).encode()

        def heard(channel: bytes, data: bytes) -> None:
            if channel == wake:
                peer_id, seq, message_id = [*as_text(data).split(" "), "", ""][:3]
                on_wake(peer_id, Wake(int(seq), message_id) if seq.isdigit() and message_id else None)
                return
            parsed = parse_bus_message(data)
            if parsed is not None and parsed.node != self.node:
                on_message(parsed)

        await self.subscriber.listen([keys.BUS, keys.wake_channel(self.node)], heard, on_subscribed)

    # ---- leases ------------------------------------------------------------------------------

    async def claim_lease(self, holder: LeaseHolder, lease_ms: int) -> LeaseHolder | None:
        """Take this node's lease; returns the live holder instead when another one has it."""
        if await self.client.set(keys.node_lease(self.node), holder.encode(), nx=True, px=lease_ms):
            return None
        return LeaseHolder.decode(await self.client.get(keys.node_lease(self.node)))

    async def take_lease(self, holder: LeaseHolder, lease_ms: int) -> None:
        await self.client.set(keys.node_lease(self.node), holder.encode(), px=lease_ms)

    async def renew_lease(self, holder: LeaseHolder, lease_ms: int) -> bool:
        """Renew if the lease is still ours (or lapsed: then take it again). False when another
        holder has it."""
        current = await self.client.get(keys.node_lease(self.node))
        if current is not None and as_text(current) != holder.encode():
            return False
        await self.client.set(keys.node_lease(self.node), holder.encode(), px=lease_ms)
        return True

    async def release_lease(self, holder: LeaseHolder) -> None:
        try:
            current = await self.client.get(keys.node_lease(self.node))
            if current is not None and as_text(current) == holder.encode():
                await self.client.delete(keys.node_lease(self.node))
        except STORE_DOWN as exc:
            log.info("lease of %s not released: %s", self.node, exc)

    async def live_nodes(self, nodes: list[str]) -> set[str]:
        """Which of `nodes` hold a lease now."""
        if not nodes:
            return set()
        pipe = self.client.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(keys.node_lease(node))
        found = await pipe.execute()
        return {node for node, exists in zip(nodes, found) if exists}
