"""Bodies of the REST routes: requests are decoded strictly, responses documented in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from schemas.frames import (AckBody, AnswerBody, AskBody, AskChild, DeliveryState, Hex128, NotifyBody, Question,
                            RecipientState)


class NotifyRequest(NotifyBody):
    """POST /messages: the same notify as the socket's, from the caller's identity."""


class AskRequest(AskBody):
    """POST /ask: the same ask as the socket's, from the caller's identity."""


class AckRequest(AckBody):
    """POST /ack: close an ask you were asked; with `text`, the asker gets a reply."""


class AnswerRequest(AnswerBody):
    """POST /answer: answer an ask's structured question."""


class WaitRequest(Struct):
    timeout_s: Annotated[float, Meta(ge=0, le=60)] = 30.0


class AskAccepted(Struct, omit_defaults=True):
    message_id: Hex128
    correlation_id: Hex128
    state: DeliveryState
    deadline: int
    replayed: bool = False
    group_id: Hex128 | None = None
    children: list[AskChild] | None = None


class Closed(Struct, omit_defaults=True):
    """An ack or answer was written; `message_id` is the notice queued for the asker."""
    message_id: Hex128
    correlation_id: Hex128
    state: DeliveryState
    ask_state: Literal["acked", "replied", "answered"]
    replayed: bool = False


class PeerBrief(Struct):
    peer_id: Hex128
    name: str
    circle: str


class AskView(Struct, forbid_unknown_fields=False):
    correlation_id: Hex128
    message_id: Hex128
    state: Literal["pending", "acked", "replied", "answered", "expired", "failed"]
    text: str
    created_at: int
    deadline: int
    age_ms: int
    trace_id: Hex128
    from_: PeerBrief = msgspec.field(name="from")
    to: PeerBrief
    question: Question | None = None
    closed_at: int | None = None
    result: dict | None = None
    group_id: Hex128 | None = None
    direction: Literal["inbound", "outbound"] | None = None


class AskGroup(Struct):
    group_id: Hex128
    children: list[AskView]
    states: dict[str, int]


class PendingAsks(Struct):
    asks: list[AskView]
    total: int
    next_offset: int | None


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
    stage: Literal["accepted", "routed", "queued", "sent", "received", "injected", "failed", "expired",
                   "acked", "replied", "answered", "late_receipt"]
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
