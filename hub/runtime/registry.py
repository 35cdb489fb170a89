"""The peers this node knows, and how they are found: by id, by (circle, name), by name in
any circle, and by the digest of a credential (a peer's own token, or its agent session's).
One owner for the indexes, so that none of them drifts from the others: a message to a bare
name costs a lookup, not a scan of every peer.

Records are frozen: a change is a new record (`dataclasses.replace`) that `put` makes the
known one, re-indexed as a whole. Undoing a change is putting the earlier record back."""

from __future__ import annotations

from hub.core.ids import token_digest
from hub.core.peers import PeerRecord


class PeerRegistry:
    def __init__(self) -> None:
        self.by_id: dict[str, PeerRecord] = {}
        self.by_name: dict[tuple[str, str], str] = {}    # (circle, name) -> peer id
        self._with_name: dict[str, dict[str, None]] = {}  # name -> the ids of every record with it (ordered set)
        self._by_digest: dict[str, str] = {}             # credential digest -> peer id

    def put(self, peer: PeerRecord) -> PeerRecord:
        """Know the peer as this record from now on, under its id, its name and its
        credentials; a name or credential the record it replaces had, and this one has not,
        no longer finds it. Returns the record, for the caller to go on with."""
        previous = self.by_id.get(peer.peer_id)
        if previous is not None:
            self._unindex(previous)
        self.by_id[peer.peer_id] = peer
        self.by_name[(peer.circle, peer.name)] = peer.peer_id
        self._with_name.setdefault(peer.name, {})[peer.peer_id] = None
        self._by_digest[peer.token_digest] = peer.peer_id
        if peer.session_digest:
            self._by_digest[peer.session_digest] = peer.peer_id
        return peer

    def drop(self, peer: PeerRecord) -> None:
        known = self.by_id.pop(peer.peer_id, None)
        for record in {id(r): r for r in (peer, known) if r is not None}.values():
            self._unindex(record)

    def _unindex(self, peer: PeerRecord) -> None:
        """Its name and credentials stop finding it (unless they now find another peer)."""
        if self.by_name.get((peer.circle, peer.name)) == peer.peer_id:
            del self.by_name[(peer.circle, peer.name)]
        holders = self._with_name.get(peer.name)
        if holders is not None:
            holders.pop(peer.peer_id, None)
            if not holders:
                del self._with_name[peer.name]
        for digest in (peer.token_digest, peer.session_digest):
            if digest and self._by_digest.get(digest) == peer.peer_id:
                del self._by_digest[digest]

    def get(self, peer_id: str) -> PeerRecord | None:
        return self.by_id.get(peer_id)

    def current(self, peer: PeerRecord) -> PeerRecord:
        """The record known for this peer now: one read before an await may have been
        replaced since (a record never changes; the known one does)."""
        return self.by_id.get(peer.peer_id, peer)

    def named(self, name: str, circle: str) -> PeerRecord | None:
        peer_id = self.by_name.get((circle, name))
        return self.by_id.get(peer_id) if peer_id else None

    def with_name(self, name: str) -> list[PeerRecord]:
        """Every known peer called `name`, in any circle."""
        return [self.by_id[peer_id] for peer_id in self._with_name.get(name, ())]

    def for_token(self, token: str | None) -> PeerRecord | None:
        """The peer a token acts as (None for an unknown or retired one)."""
        if not token:
            return None
        digest = token_digest(token)
        peer_id = self._by_digest.get(digest)
        peer = self.by_id.get(peer_id) if peer_id else None
        return peer if peer is not None and peer.holds(digest) else None

    def knows(self, digest: str) -> bool:
        return digest in self._by_digest
