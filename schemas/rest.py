"""Bodies of the REST routes: requests are decoded strictly, responses documented in OpenAPI."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import Struct

from schemas.frames import Address, DeliveryState, Hex128, IdempotencyKey, RecipientState


class NotifyRequest(Struct, forbid_unknown_fields=False):
    """POST /messages: the same notify as the socket's, from the caller's identity."""
    to: Address
    text: str
    idempotency_key: IdempotencyKey | None = None


class MessageAccepted(Struct, omit_defaults=True):
    message_id: Hex128
    state: DeliveryState
    recipients: list[RecipientState] | None = None
    replayed: bool = False


class PeerView(Struct):
    peer_id: Hex128
    name: str
    circle: str
    role: str
    status: Literal["online", "busy", "offline"]
    status_reason: str
    node: str
    created_at: int
    last_seen: int
    pending: int


class PeerList(Struct):
    peers: list[PeerView]


class PeerDeleted(Struct):
    deleted: Hex128


class TraceStage(Struct, forbid_unknown_fields=False):
    stage: Literal["accepted", "routed", "queued", "sent", "received", "injected", "failed", "expired"]
    at: int
    node: str
    peer_id: str | None = None
    reason: str | None = None
    seq: int | None = None


class Trace(Struct):
    trace_id: Hex128
    kind: str
    stages: list[TraceStage]
    final: str | None = None
    to: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")


class StoreFacts(Struct, forbid_unknown_fields=False):
    engine: str = ""
    version: str = ""
    aof_enabled: bool = False
    embedded: bool = False


class Health(Struct):
    ok: bool
    api_version: str
    version: str
    node: str
    store: StoreFacts
    capabilities: list[str]
    peers: int
    connections: int


class ErrorDetail(Struct):
    code: str
    message: str
    details: dict


class ErrorEnvelope(Struct):
    error: ErrorDetail
