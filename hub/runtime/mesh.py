"""This node's part in a mesh of hub nodes sharing one store.

It keeps the node's lease, listens on the node bus and hands each message to the service that
owns it (a changed peer to the Hub, a closed ask to the AskService, questions to the
QuestionService, a sign-out to the DashboardAccess), catches up from the store each time the
bus (re)connects, and takes offline the peers of a node whose lease lapsed, whose ask deadlines
then fire here. Their inboxes stay in the store: they get them when they connect to any node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

import orjson

from hub.core.errors import HubError
from hub.core.nodes import LeaseHolder
from hub.core.peers import OFFLINE
from hub.runtime.asks import AskService
from hub.runtime.credentials import OPERATOR_ID
from hub.runtime.dashboard import DashboardAccess
from hub.runtime.hub import Hub
from hub.runtime.periodic import every, stop_if_cancelled
from hub.runtime.questions import QuestionService
from hub.store.bus import BusMessage, NodeBus, this_host
from hub.store.state import StoreState

log = logging.getLogger(__name__)

RETRY_S = 0.5   # the bus connection broke: subscribe again after this long


class NodeNameTaken(RuntimeError):
    """Another live hub node already uses this node name on the store."""


def new_lease_holder() -> LeaseHolder:
    return LeaseHolder(this_host(), os.getpid(), secrets.token_hex(8))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def claim_node_name(bus: NodeBus, holder: LeaseHolder, lease_s: float) -> None:
    """Take the node's lease before serving. A lease left by a process of this host that is
    gone (a hub killed and started again) is taken over at once; a live holder is refused."""
    lease_ms = int(lease_s * 1000)
    other = await bus.claim_lease(holder, lease_ms)
    if other is None:
        return
    if other.host == holder.host and not _process_alive(other.pid):
        await bus.take_lease(holder, lease_ms)
        return
    raise NodeNameTaken(f"another hub node named {bus.node!r} is live on this store (pid {other.pid} on "
                        f"{other.host}); give this hub its own --node name, or, if that node was stopped, "
                        f"start again after its lease ({lease_s:g} s) lapses")


class Mesh:
    def __init__(self, hub: Hub, state: StoreState, asks: AskService, questions: QuestionService,
                 access: DashboardAccess, bus: NodeBus, holder: LeaseHolder, lease_s: float):
        self.hub = hub
        self.state = state   # the shared store's writer
        self.asks = asks
        self.questions = questions
        self.access = access
        self.bus = bus
        self.holder = holder
        self.lease_s = lease_s
        self._tasks: list[asyncio.Task] = []
        self._catching_up: asyncio.Task | None = None
        self._to_refresh: set[str] = set()
        self._refreshing: asyncio.Task | None = None

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="node bus"),
                       asyncio.create_task(every(self.lease_s / 3, self.keep_lease, "node lease"), name="node lease")]

    async def stop(self) -> None:
        for task in [*self._tasks, self._catching_up, self._refreshing]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in self._tasks if t is not None), return_exceptions=True)
        await self.bus.release_lease(self.holder)

    # ---- the bus -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                await self.bus.follow(self._on_message, self.hub.inboxes.pull, self._on_subscribed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # what the bus missed meanwhile is caught up on subscribing
                stop_if_cancelled()
                log.warning("node bus interrupted (%s); subscribing again", exc.__class__.__name__)
            await asyncio.sleep(RETRY_S)

    def _on_subscribed(self) -> None:
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = asyncio.create_task(self._catch_up(), name="node bus catch-up")

    async def _catch_up(self) -> None:
        try:
            await self.hub.reload_peers()
            await self.asks.catch_up()
            await self.questions.catch_up()
        except HubError as exc:  # the store is away: the bus breaks too, and we come back here
            log.warning("catching up with the other nodes failed: %s", exc.message)

    def _on_message(self, message: BusMessage) -> None:
        try:
            if message.kind == "peer":
                self._refresh_soon(message.data.decode())
            elif message.kind == "ask_closed":
                closed = orjson.loads(message.data)
                self.asks.closed_elsewhere(closed["correlation_id"], closed["result"])
            elif message.kind in ("question", "question_decided"):
                self.questions.heard_from_node(message.data)
            elif message.kind == "signout":
                self.access.signed_out_elsewhere(message.data.decode())
            elif message.kind == "tick":
                self.hub.metrics.bus_tick(message.node, (self.hub.now_ms() - int(message.data)) / 1000)
            else:
                log.debug("node bus: unknown message kind %r from %s", message.kind, message.node)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("node bus: unreadable %s message from %s: %s", message.kind, message.node, exc)

    def _refresh_soon(self, peer_id: str) -> None:
        """Read changed peers again, a batch at a time, in one task."""
        self._to_refresh.add(peer_id)
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh(), name="peer refresh")

    async def _refresh(self) -> None:
        while self._to_refresh:
            batch, self._to_refresh = self._to_refresh, set()
            try:
                await self.hub.refresh_peers(batch)
            except HubError as exc:
                log.warning("reading changed peers failed: %s", exc.message)

    # ---- leases ------------------------------------------------------------------------------

    async def keep_lease(self) -> None:
        """Renew this node's lease, then take offline the peers of nodes whose lease lapsed."""
        if not await self.bus.renew_lease(self.holder, int(self.lease_s * 1000)):
            log.error("another process took the lease of node %s; give each hub its own --node name", self.bus.node)
        # how many people watch for questions here, so that another node knows one can answer;
        # and a tick, by which the other nodes measure the bus's lag
        self.state.writer.submit([self.questions.people.publish_cmd(),
                                  *self.state.publish_cmd("tick", str(self.hub.now_ms()))], wait=False)
        holders = {p.node for p in self.hub.peers.values() if p.status != OFFLINE and p.node not in ("", self.hub.node)}
        if not holders:
            return
        live = await self.bus.live_nodes(sorted(holders))
        for node in sorted(holders - live):
            taken = await self.hub.presence.take_offline_held_by(node)
            if taken:
                adopted = await self.asks.adopt([p.peer_id for p in taken])
                await self.asks.mend_closings([*self.hub.peers, OPERATOR_ID])
                log.warning("hub node %s is gone (lease lapsed): %d of its peers are offline here, %d asks "
                            "adopted", node, len(taken), adopted)
