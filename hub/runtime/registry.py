"""The peers this node knows, and how they are found: by id, by (circle, name), and by the
digest of a credential (a peer's own token, or its agent session's). One owner for the three
indexes, so that none of them drifts from the others."""

from __future__ import annotations

from hub.core.ids import token_digest
from hub.core.peers import PeerRecord


class PeerRegistry:
    def __init__(self) -> None:
        self.by_id: dict[str, PeerRecord] = {}
        self.by_name: dict[tuple[str, str], str] = {}    # (circle, name) -> peer id
        self._by_digest: dict[str, str] = {}             # credential digest -> peer id

    def add(self, peer: PeerRecord) -> None:
        """Know the peer (again), under its id, its name and its credentials."""
        self.by_id[peer.peer_id] = peer
        self.by_name[(peer.circle, peer.name)] = peer.peer_id
        self._by_digest[peer.token_digest] = peer.peer_id
        if peer.session_digest:
            self._by_digest[peer.session_digest] = peer.peer_id

    def drop(self, peer: PeerRecord) -> None:
        self.by_id.pop(peer.peer_id, None)
        self.by_name.pop((peer.circle, peer.name), None)
        self._by_digest.pop(peer.token_digest, None)
        self._by_digest.pop(peer.session_digest, None)

    def named(self, name: str, circle: str) -> PeerRecord | None:
        peer_id = self.by_name.get((circle, name))
        return self.by_id.get(peer_id) if peer_id else None

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

    def credit(self, digest: str, peer: PeerRecord) -> None:
        """A credential of the peer's from now on."""
        self._by_digest[digest] = peer.peer_id

    def retire(self, digest: str) -> None:
        """A credential that no longer works here."""
        self._by_digest.pop(digest, None)

    def name_left(self, old_name: tuple[str, str], peer_id: str) -> None:
        """The peer is known by another name now: its old one no longer finds it."""
        if self.by_name.get(old_name) == peer_id:
            del self.by_name[old_name]
