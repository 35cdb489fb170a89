"""The peers' lifecycle: registering one by name, an agent session that joins without a pane,
linking a peer to a tmux pane (with an undo), its credentials (the pane transport's token, the
session's), unlinking, ending a session, and deleting. Each change is written to the store
first, then made the known record (see hub.runtime.registry)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from hub.core.errors import HubError
from hub.core.ids import new_peer_id, new_token, token_digest
from hub.core.panes import PaneLink
from hub.core.peers import OFFLINE, PERSON, PeerRecord
from hub.core.presence import entered, gone
from hub.core.trace import Reason, Stage, stage_entry
from hub.runtime.connection import Connection
from hub.runtime.events import EventLog
from hub.runtime.presence import Presences
from hub.runtime.registry import PeerRegistry
from hub.store.state import StoreState
from schemas.dashboard import PeerGone
from schemas.errors import ErrorCode


class PeerLifecycle:
    def __init__(self, store: StoreState, registry: PeerRegistry, connections: dict[str, Connection],
                 presence: Presences, events: EventLog, *, node: str, now_ms: Callable[[], int],
                 disconnect: Callable[[Connection, str], Awaitable[None]], forget: Callable[[PeerRecord], None]):
        """`disconnect` closes a peer's connection here (it goes offline with the reason);
        `forget` drops a deleted peer from everything this node keeps of it."""
        self._store = store
        self._registry = registry
        self._connections = connections
        self._presence = presence
        self._events = events
        self._node = node
        self._now_ms = now_ms
        self._disconnect = disconnect
        self._forget = forget

    async def register_peer(self, name: str, circle: str) -> tuple[PeerRecord, str, bool]:
        """A person registers an agent peer by name (`POST /peers`, `repowire peers add`): a new
        one, or the offline agent peer of that name, which keeps its id and inbox. Either way it
        gets a fresh token (the old one stops working) and stays offline until it connects.
        Returns the peer, its token and whether it is new."""
        peer = self._registry.named(name, circle)
        if peer is not None and (peer.peer_id in self._connections or peer.role != "agent"):
            raise HubError(ErrorCode.NAME_TAKEN, f"{name}@{circle} is connected or not an agent; choose another name",
                           {"peer_id": peer.peer_id})
        token = new_token()
        now = self._now_ms()
        created = peer is None
        if peer is None:
            peer = PeerRecord(peer_id=new_peer_id(), name=name, circle=circle, role="agent",
                              token_digest=token_digest(token), created_at=now, last_seen=now,
                              status=OFFLINE, status_reason="registered")
            peer = await self.save(None, peer)
            self._presence.told(peer)
        else:
            peer, token = await self.reissue_token(peer)
        return peer, token, created

    async def register_agent(self, name: str, circle: str, agent_pid: int, reason: str) -> PeerRecord:
        """An agent session with no pane to type into: the offline peer of that name (same id and
        inbox, its old pane link dropped), or a new one; it stays offline with `reason` (no
        connection carries it)."""
        peer = self._registry.named(name, circle)
        if peer is not None and (peer.peer_id in self._connections or peer.role != "agent"):
            raise HubError(ErrorCode.NAME_TAKEN, f"{name}@{circle} is connected or not an agent; choose another name",
                           {"peer_id": peer.peer_id})
        now = self._now_ms()
        known = peer or PeerRecord(peer_id=new_peer_id(), name=name, circle=circle, role="agent",
                                   token_digest=token_digest(new_token()), created_at=now, last_seen=now)
        # a pane it was linked to before is no longer its own: no transport may type into it
        peer = await self.save(peer, entered(known, gone(reason), pane=None, last_seen=now, agent_pid=agent_pid))
        self._presence.told(peer)
        return peer

    async def end_session(self, peer: PeerRecord, reason: str) -> None:
        """The agent's session ended: offline with `reason` (its connection, if any, is closed);
        the pane link, id and inbox stay for the next session in that seat."""
        conn = self._connections.get(peer.peer_id)
        if conn is not None:
            conn.abort(ErrorCode.SHUTTING_DOWN, f"the session ended ({reason})")
            await self._disconnect(conn, reason)
            return
        self._presence.note(peer, reason)

    async def bind_pane(self, name: str, circle: str, link: PaneLink,
                        agent_pid: int = 0) -> tuple[PeerRecord, str, Callable[[], Awaitable[None]]]:
        """Register `name@circle` as the peer typed into a tmux pane: a new peer, or the offline
        peer of that name, which keeps its id and inbox. Returns the peer, a fresh peer token for
        its pane transport, and an undo that puts everything back. `agent_pid`: the agent of a
        session that joined through its hooks (0 for a pane linked by a person)."""
        peer = self._registry.named(name, circle)
        if peer is not None and (peer.peer_id in self._connections or peer.status != OFFLINE):
            raise HubError(ErrorCode.NAME_TAKEN, f"{name}@{circle} is online; choose another name",
                           {"peer_id": peer.peer_id})
        if peer is not None and peer.role == PERSON:
            raise HubError(ErrorCode.NAME_TAKEN, f"{name}@{circle} is a person, not an agent; choose another name",
                           {"peer_id": peer.peer_id})
        now = self._now_ms()
        token = new_token()
        before = peer   # the record as it was (None: a new peer), put back by the undo
        bound = replace(before or PeerRecord(peer_id=new_peer_id(), name=name, circle=circle, role="agent",
                                             token_digest="", created_at=now, last_seen=now, status=OFFLINE),
                        pane=link, token_digest=token_digest(token), role="agent", status_reason="linking",
                        agent_pid=agent_pid)
        await self.save(before, bound)

        async def undo() -> None:
            if before is None:
                await self._store.writer.write(*self._store.delete_peer_cmds(bound))
                self._forget(bound)
                return
            await self.save(bound, before)

        return bound, token, undo

    async def save(self, peer: PeerRecord | None, changed: PeerRecord) -> PeerRecord:
        """Write `changed`, the peer's record from now on, then make it the known one; a
        credential `peer` (None: a new peer) had and `changed` has not stops working, here and
        on every node."""
        await self._store.writer.write(*self._store.save_peer_cmds(changed, peer))
        return self._registry.put(changed)

    async def reissue_token(self, peer: PeerRecord, **changes: Any) -> tuple[PeerRecord, str]:
        """A new token for a pane peer whose transport is (re)started: the old one stops working.
        Any other `changes` to its record are saved with it. Returns the record and the token."""
        token = new_token()
        peer = self._registry.current(peer)
        return await self.save(peer, replace(peer, token_digest=token_digest(token), **changes)), token

    async def issue_session_token(self, peer: PeerRecord) -> tuple[PeerRecord, str]:
        """A credential for the agent session that is this peer (its hooks, its shell, its MCP
        server): it acts as this peer and nobody else, and replaces the previous session's."""
        token = new_token()
        peer = self._registry.current(peer)
        return await self.save(peer, replace(peer, session_digest=token_digest(token))), token

    async def revoke_session_token(self, peer: PeerRecord) -> PeerRecord:
        """The session ended: its credential stops working here and on every node."""
        peer = self._registry.current(peer)
        if not peer.session_digest:
            return peer
        return await self.save(peer, replace(peer, session_digest=""))

    async def unbind_pane(self, peer: PeerRecord, reason: str) -> PeerRecord:
        """The peer is no longer typed into its pane: offline with `reason`, inbox kept."""
        conn = self._connections.get(peer.peer_id)
        if conn is not None:
            conn.abort(ErrorCode.NOT_LINKED, "the pane was unlinked")
            await self._disconnect(conn, reason)
        peer = self._registry.current(peer)
        peer = await self.save(peer, entered(peer, gone(reason), pane=None, last_seen=self._now_ms()))
        self._presence.told(peer)
        return peer

    async def delete_peer(self, peer: PeerRecord) -> None:
        conn = self._connections.get(peer.peer_id)
        if conn is not None:
            conn.abort(ErrorCode.PEER_DELETED, "deleted over REST")
            await self._disconnect(conn, "deleted")
        rows = await self._store.read_inbox(peer.peer_id, 0, 100_000)
        now = self._now_ms()
        cmds = self._store.delete_peer_cmds(peer)
        cmds += [self._store.trace_cmd(e.trace_id, [stage_entry(Stage.FAILED, now, self._node, peer_id=peer.peer_id,
                                                                 reason=Reason.PEER_DELETED)]) for e in rows]
        await self._store.writer.write(*cmds)
        self._forget(peer)
        self._events.record(PeerGone(peer_id=peer.peer_id, node=self._node, at=self._now_ms()))
