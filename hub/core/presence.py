"""A peer's presence, as a state machine with no I/O: the status and reason each event leaves.

    offline --hello--> online                       (a connection, or a session reading its inbox)
    online | busy | awaiting_input --says--> online | busy | awaiting_input
    any --connection lost, session ended, node lost, deleted--> offline(reason)
    busy | online --one of its questions waits for a person--> awaiting_input
    awaiting_input --none waits any more--> busy    (its tool call runs, or was refused)

`offline` is the hub's to say: a peer says only online, busy or awaiting_input.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from hub.core.errors import HubError
from hub.core.peers import AWAITING_INPUT, BUSY, OFFLINE, ONLINE, SETTABLE, PeerRecord, PeerStatus, as_status
from schemas.errors import ErrorCode


class Presence(NamedTuple):
    status: PeerStatus
    reason: str


def connected() -> Presence:
    """A hello was admitted (or an agent session began reading its inbox)."""
    return Presence(ONLINE, "")


def said(value: str) -> Presence:
    """What a live peer says of itself."""
    if value not in SETTABLE:
        raise HubError(ErrorCode.INVALID_FRAME, "presence is `online`, `busy` or `awaiting_input`")
    return Presence(as_status(value), "")


def gone(reason: str) -> Presence:
    """The peer is offline from now on, and the reason says why (disconnected, slow_consumer,
    heartbeat_timeout, session_ended, node_lost, hub_restarted, …)."""
    return Presence(OFFLINE, reason)


def with_questions(current: PeerStatus, waiting: bool) -> PeerStatus | None:
    """The status a live agent takes while a question of its waits for a person (None: no change)."""
    if waiting and current != AWAITING_INPUT:
        return AWAITING_INPUT
    if not waiting and current == AWAITING_INPUT:
        return BUSY
    return None


def entered(peer: PeerRecord, presence: Presence, **changes: Any) -> PeerRecord:
    """The peer's record once it is in `presence` (with any other field `changes`)."""
    return replace(peer, status=presence.status, status_reason=presence.reason, **changes)
