"""The key layout. Per-peer keys share the hash tag `{peer_id}` and per-message keys the tag
`{message_id}`, so every multi-key script touches one slot and the store may be a cluster."""

from __future__ import annotations

PREFIX = "rw"
PEERS = f"{PREFIX}:peers"            # set of peer ids
NAMES = f"{PREFIX}:names"            # hash "circle/name" -> peer id
TOKENS = f"{PREFIX}:tokens"          # hash token digest -> peer id
META = f"{PREFIX}:meta"              # hash: epoch, created
EVENTS = f"{PREFIX}:events"          # stream of hub events (presence, peers), bounded


def peer(peer_id: str) -> str:
    return f"{PREFIX}:peer:{{{peer_id}}}"


def inbox(peer_id: str) -> str:
    return f"{PREFIX}:inbox:{{{peer_id}}}"


def idempotency(peer_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{{{peer_id}}}:{key}"


def trace(message_id: str) -> str:
    return f"{PREFIX}:trace:{{{message_id}}}"


def name_field(circle: str, name: str) -> str:
    return f"{circle}/{name}"
