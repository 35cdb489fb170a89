"""Peer records, presence, how a hello becomes an identity, and how an address finds peers.

Pure rules: the runtime passes in what it knows (records, whether the caller holds the hub
token) and gets back a decision or a HubError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Final, Literal, get_args

import msgspec
import orjson

from hub.core.errors import HubError
from hub.core.ids import is_hex128
from hub.core.panes import PaneLink
from schemas.errors import ErrorCode
from schemas.frames import Role
from schemas.rest import Fingerprint, PaneLinkView, PeerState, PeerView

PeerStatus = Literal["online", "busy", "awaiting_input", "offline"]
ONLINE: Final = "online"
BUSY: Final = "busy"
AWAITING_INPUT: Final = "awaiting_input"
OFFLINE: Final = "offline"
STATUSES: tuple[PeerStatus, ...] = (ONLINE, BUSY, AWAITING_INPUT, OFFLINE)
SETTABLE = (ONLINE, BUSY, AWAITING_INPUT)   # what a peer may say of itself; `offline` is the hub's
PERSON: Final = "person"  # the role that may answer tool-permission questions (needs the hub token)
BRIDGE: Final = "bridge"  # a pane bridge: runs tmux for the hub and holds pane peers' tokens (needs the hub token)
ROLES: tuple[Role, ...] = get_args(Role)


def as_status(value: str) -> PeerStatus:
    """A status read back from the store (written by this hub: one of STATUSES)."""
    for status in STATUSES:
        if status == value:
            return status
    raise ValueError(f"unknown status {value!r}")


def as_role(value: str) -> Role:
    """A role read back from the store (written by this hub: one of ROLES)."""
    for role in ROLES:
        if role == value:
            return role
    raise ValueError(f"unknown role {value!r}")


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A peer as the store keeps it. Frozen: a change is a new record, made known by the
    runtime's registry."""
    peer_id: str
    name: str
    circle: str
    role: Role
    token_digest: str
    created_at: int
    last_seen: int
    status: PeerStatus = OFFLINE
    status_reason: str = ""
    node: str = ""
    pane: PaneLink | None = None   # the tmux pane a pane transport types this peer's deliveries into
    agent_pid: int = 0             # the agent process of a session that joined through its hooks
    session_digest: str = ""       # the credential of that session (its hooks, shell, MCP server); "" when none

    @property
    def address(self) -> str:
        return f"{self.name}@{self.circle}"

    def view(self, pending: int, open_asks: int = 0) -> PeerView:
        """The peer as REST shows it: everything but its credentials, with its inbox's length."""
        return PeerView(**msgspec.structs.asdict(self.state()), pending=pending, open_asks=open_asks)

    def state(self) -> PeerState:
        """The peer as events show it: everything but its credentials."""
        return PeerState(peer_id=self.peer_id, name=self.name, circle=self.circle, role=self.role, status=self.status,
                         status_reason=self.status_reason, node=self.node, created_at=self.created_at,
                         last_seen=self.last_seen, agent_pid=self.agent_pid, pane=self._pane_view())

    def _pane_view(self) -> PaneLinkView | None:
        pane = self.pane
        if pane is None:
            return None
        return PaneLinkView(bridge=pane.bridge, pane_id=pane.pane_id, backend=pane.backend,
                            fingerprint=msgspec.convert(pane.fingerprint, Fingerprint), linked_at=pane.linked_at)

    def holds(self, digest: str) -> bool:
        """Whether a token with this digest is one of the peer's: its own or its session's."""
        return digest == self.token_digest or (bool(self.session_digest) and digest == self.session_digest)

    def to_store(self) -> dict[str, str]:
        fields = {k: str(v) for k, v in asdict(self).items() if k != "pane"}
        fields["pane"] = orjson.dumps(self.pane.to_dict()).decode() if self.pane else ""
        return fields

    @classmethod
    def from_store(cls, raw: dict[bytes | str, bytes | str]) -> PeerRecord:
        data = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in raw.items()}
        return cls(peer_id=data["peer_id"], name=data["name"], circle=data["circle"], role=as_role(data["role"]),
                   token_digest=data["token_digest"], created_at=int(data["created_at"]),
                   last_seen=int(data["last_seen"]), status=as_status(data.get("status", OFFLINE)),
                   status_reason=data.get("status_reason", ""), node=data.get("node", ""),
                   pane=PaneLink.from_dict(orjson.loads(data["pane"])) if data.get("pane") else None,
                   agent_pid=int(data.get("agent_pid") or 0), session_digest=data.get("session_digest", ""))


class Admission(Enum):
    NEW = "new"            # mint a peer id and a token
    RESUME = "resume"      # the caller proved the identity with its peer token
    RECLAIM = "reclaim"    # hub-token holder takes back an offline name: same id, new token


def admit(*, name: str, circle: str, token_peer: PeerRecord | None, token_given: bool,
          holds_hub_token: bool, same_name: PeerRecord | None, is_live: bool) -> Admission:
    """Decide how a hello is admitted.

    token_peer: the peer whose token was presented (None if no token or it matched nobody).
    same_name: the peer already registered under (circle, name), if any.
    is_live: whether `same_name` has a live connection right now.
    """
    if token_given:
        if token_peer is None:
            raise HubError(ErrorCode.UNAUTHORIZED, "the peer token is not valid on this hub")
        if (token_peer.name, token_peer.circle) != (name, circle):
            raise HubError(ErrorCode.FORBIDDEN,
                           f"this token belongs to {token_peer.address}, not {name}@{circle}",
                           {"peer_id": token_peer.peer_id})
        return Admission.RESUME
    if not holds_hub_token:
        raise HubError(ErrorCode.UNAUTHORIZED,
                       "registering a new peer needs the hub token (Authorization: Bearer) "
                       "or the peer's own token in hello.token")
    if same_name is None:
        return Admission.NEW
    if is_live:
        raise HubError(ErrorCode.NAME_TAKEN, f"{name}@{circle} is already connected",
                       {"peer_id": same_name.peer_id})
    return Admission.RECLAIM


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed `to`: one peer by id or name, or everyone in a circle."""
    peer_id: str | None = None
    name: str | None = None
    circle: str | None = None
    broadcast: bool = False


def parse_address(raw: str) -> Address:
    raw = raw.strip()
    if is_hex128(raw):
        return Address(peer_id=raw)
    name, _, circle = raw.partition("@")
    if not name or (_ and not circle):
        raise HubError(ErrorCode.INVALID_FRAME, f"cannot read address {raw!r}",
                       {"hint": "use a peer id, name, name@circle, * or *@circle"})
    if name == "*":
        return Address(broadcast=True, circle=circle or None)
    return Address(name=name, circle=circle or None)


def resolve(address: Address, *, sender: PeerRecord | None, peers: Iterable[PeerRecord],
            by_id: dict[str, PeerRecord], by_name: dict[tuple[str, str], str] | None = None,
            with_name: Callable[[str], list[PeerRecord]] | None = None) -> list[PeerRecord]:
    """The recipients of a message. A bare name prefers the sender's circle, then any circle.
    With `by_name` ((circle, name) -> peer id), a name in a known circle is found without a scan;
    with `with_name` (every peer called so, in any circle), any other name is too. Only a
    broadcast reads `peers` whole."""
    if address.name is not None and by_name is not None:
        circle = address.circle or (sender.circle if sender else None)
        peer_id = by_name.get((circle, address.name)) if circle else None
        if peer_id is not None and peer_id in by_id:
            return [by_id[peer_id]]
    if address.peer_id is not None:
        peer = by_id.get(address.peer_id)
        if peer is None:
            raise HubError(ErrorCode.PEER_NOT_FOUND, f"no peer with id {address.peer_id}")
        return [peer]
    if address.broadcast:
        circle = address.circle or (sender.circle if sender else "default")
        targets = [p for p in peers if p.circle == circle and (sender is None or p.peer_id != sender.peer_id)]
        if not targets:
            raise HubError(ErrorCode.NO_RECIPIENTS, f"nobody else is registered in circle {circle!r}")
        return sorted(targets, key=lambda p: p.name)
    name = address.name
    assert name is not None   # neither an id nor a broadcast: parse_address gave a name
    named = with_name(name) if with_name is not None else [p for p in peers if p.name == name]
    if address.circle is not None:
        named = [p for p in named if p.circle == address.circle]
    elif sender is not None and len(named) > 1:
        own = [p for p in named if p.circle == sender.circle]
        named = own or named
    if not named:
        where = f" in circle {address.circle!r}" if address.circle else ""
        raise HubError(ErrorCode.PEER_NOT_FOUND, f"no peer named {address.name!r}{where}")
    if len(named) > 1:
        raise HubError(ErrorCode.AMBIGUOUS_PEER, f"{len(named)} peers are named {address.name!r}",
                       {"candidates": sorted(p.address for p in named)})
    return named
