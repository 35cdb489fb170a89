"""Who is live, as this node sees it, and every change of a peer's presence: the record made
known, written to the store (only while this node still holds the peer), and told to the
dashboards. The transitions themselves are hub.core.presence's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from hub.core.errors import HubError
from hub.core.peers import OFFLINE, PeerRecord
from hub.core.presence import entered, gone, said
from hub.runtime.connection import Connection
from hub.runtime.events import EventLog
from hub.runtime.registry import PeerRegistry
from hub.store.state import StoreState
from schemas.dashboard import PresenceChanged
from schemas.errors import ErrorCode


class Presences:
    def __init__(self, store: StoreState, registry: PeerRegistry, connections: dict[str, Connection],
                 events: EventLog, node: str, now_ms: Callable[[], int]):
        self._store = store
        self._registry = registry
        self._connections = connections
        self._events = events
        self._node = node
        self._now_ms = now_ms

    # ---- reading ------------------------------------------------------------------------------

    def connected_here(self, peer: PeerRecord) -> bool:
        """The peer's connection is to this node."""
        return peer.peer_id in self._connections

    def is_reachable(self, peer: PeerRecord) -> bool:
        """Connected here, or live on another node of the mesh (that node delivers)."""
        return peer.peer_id in self._connections or (peer.status != OFFLINE and peer.node not in ("", self._node))

    def holds(self, peer: PeerRecord) -> bool:
        """Whether the peer is live here: connected to this node, or an agent session with no
        pane that reads its inbox (its hooks and MCP tools) and whose session has not ended."""
        return peer.peer_id in self._connections or self.reads_inbox(peer)

    @staticmethod
    def reads_inbox(peer: PeerRecord) -> bool:
        """A live agent session with no pane transport: its messages wait in its inbox, and its
        Stop hook and MCP tools read them."""
        return peer.pane is None and bool(peer.session_digest)

    def takes_asks(self, peer: PeerRecord) -> bool:
        """Reachable now, or a live session reading its inbox (whose presence is not offline):
        an ask to it is accepted without queue_if_offline."""
        return self.is_reachable(peer) or (self.reads_inbox(peer) and peer.status != OFFLINE)

    # ---- changing -----------------------------------------------------------------------------

    def set(self, peer: PeerRecord, status: str) -> PeerRecord:
        """What a live peer says of itself: online (idle), busy or awaiting_input."""
        presence = said(status)
        peer = self._registry.current(peer)
        if peer.peer_id not in self._connections and self.reads_inbox(peer):
            peer = self._registry.put(entered(peer, presence, last_seen=self._now_ms(), node=self._node))
        elif peer.peer_id not in self._connections:
            raise HubError(ErrorCode.PEER_OFFLINE, f"{peer.address} has no live connection, so it stays offline",
                           {"peer_id": peer.peer_id, "status_reason": peer.status_reason})
        else:   # a note on its transport stays
            peer = self._registry.put(replace(peer, status=presence.status, last_seen=self._now_ms()))
        self._write(peer)
        return peer

    def went_offline(self, peer: PeerRecord, reason: str) -> PeerRecord:
        """This node's connection of the peer is gone (closed, cut, replaced by nobody)."""
        peer = self._registry.put(entered(self._registry.current(peer), gone(reason), last_seen=self._now_ms()))
        self._write(peer)
        return peer

    def note(self, peer: PeerRecord, reason: str) -> None:
        """Record why an offline peer is offline (a pane transport could not start)."""
        if peer.peer_id in self._connections:
            return
        peer = self._registry.current(peer)
        changed = peer.status != OFFLINE
        peer = self._registry.put(entered(peer, gone(reason)))
        self._store.writer.submit(self._store.presence_cmds(peer, peer.node or self._node), wait=False)
        if changed:
            self.told(peer)

    async def take_offline_held_by(self, node: str) -> list[PeerRecord]:
        """`node`'s lease lapsed: the peers it held are offline (reason `node_lost`), each only if
        the store still says that node holds it (one that reconnected elsewhere is left alone).
        Their inboxes stay; they get them when they connect to any node."""
        lost = [p for p in self._registry.by_id.values() if p.node == node and p.status != OFFLINE]
        if not lost:
            return []
        now = self._now_ms()
        results = await self._store.writer.write(*(
            cmd for p in lost for cmd in self._store.presence_cmds(entered(p, gone("node_lost"), last_seen=now), node)))
        taken = []
        for peer, applied in zip(lost, results):
            if applied == 1:
                peer = self._registry.put(entered(self._registry.current(peer), gone("node_lost"), last_seen=now))
                self.told(peer)
                taken.append(peer)
        return taken

    def _write(self, peer: PeerRecord) -> None:
        """Write the presence of a peer this node holds, and tell the dashboards."""
        self._store.writer.submit(self._store.presence_cmds(peer, self._node), wait=False)
        self.told(peer)

    def told(self, peer: PeerRecord) -> None:
        """The dashboards hear of the peer's presence as it is now."""
        self._events.record(PresenceChanged(peer_id=peer.peer_id, status=peer.status, reason=peer.status_reason,
                                            peer=peer.state(), node=self._node, at=self._now_ms()))
