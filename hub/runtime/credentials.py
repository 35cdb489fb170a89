"""Who a caller is: a peer token acts as its peer, the hub token (or the hub's Unix socket) as
the local operator. `Sender` is that answer, as every operation takes it."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from hub.core.errors import HubError
from hub.core.ids import token_digest, token_matches
from hub.core.peers import PERSON, PeerRecord
from hub.runtime.registry import PeerRegistry
from schemas.errors import ErrorCode
from schemas.frames import PeerRef

OPERATOR_ID = "0" * 32
HUB_AS_SENDER = PeerRef(peer_id=OPERATOR_ID, name="hub", circle="default")   # the hub's own notices


@dataclass(frozen=True, slots=True)
class Sender:
    """Who is sending: a registered peer, or the local operator acting with the hub token."""
    peer: PeerRecord | None

    @property
    def ref(self) -> dict[str, str]:
        """The sender as the store's records name it (the `peer_ref`, as plain data)."""
        return msgspec.structs.asdict(self.peer_ref)

    @property
    def peer_ref(self) -> PeerRef:
        """Who sent a message, as its delivery names them."""
        if self.peer is None:
            return PeerRef(peer_id=OPERATOR_ID, name="operator", circle="default")
        return PeerRef(peer_id=self.peer.peer_id, name=self.peer.name, circle=self.peer.circle)

    @property
    def key_owner(self) -> str:
        return self.peer.peer_id if self.peer else OPERATOR_ID

    @property
    def is_person(self) -> bool:
        """A person at the dashboard or a terminal: the operator (hub token) or a `person` peer."""
        return self.peer is None or self.peer.role == PERSON


class Credentials:
    def __init__(self, hub_token: str, registry: PeerRegistry):
        self._hub_token_digest = token_digest(hub_token)
        self._registry = registry

    def is_hub_token(self, token: str | None) -> bool:
        return token is not None and token != "" and token_matches(token, self._hub_token_digest)

    def peer_for_token(self, token: str | None) -> PeerRecord | None:
        return self._registry.for_token(token)

    def authenticate(self, token: str | None, *, trusted_local: bool = False) -> Sender:
        """REST callers: a peer token acts as that peer; the hub token (or the Unix socket)
        acts as the local operator."""
        peer = self.peer_for_token(token)
        if peer is not None:
            return Sender(peer)
        if trusted_local or self.is_hub_token(token):
            return Sender(None)
        raise HubError(ErrorCode.UNAUTHORIZED, "send `Authorization: Bearer <token>` with the hub token "
                       "(in $REPOWIRE_HOME/hub.token) or a peer token")
