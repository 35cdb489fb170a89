"""Bodies of the REST routes: requests are decoded strictly, responses documented in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from schemas.frames import (AckBody, AnsweredBy, AnswerBody, AskBlockingBody, AskBody, AskChild, DecideBody, Decision,
                            DecisionInfo, DeliveryState, Hex128, NotifyBody, Question, QuestionInfo, RecipientState,
                            ToolCallBody)


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
                   "acked", "replied", "answered", "late_receipt", "joined", "waiter_lost"]
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


class QuestionTimes(Struct):
    """How long a tool-permission question may wait, and how long before the hook's timeout
    the hub decides: a hook's timeout should exceed their sum."""
    max_timeout_s: float
    margin_s: float


class Health(Struct):
    ok: bool
    api_version: str
    version: str
    node: str
    store: StoreFacts
    capabilities: list[str]
    peers: int
    connections: int
    questions: QuestionTimes | None = None


class ErrorDetail(Struct):
    code: str
    message: str
    details: dict


class ErrorEnvelope(Struct):
    error: ErrorDetail


# ---- tool-permission questions and policies ------------------------------------------------

class AskBlockingRequest(AskBlockingBody):
    """POST /questions/ask-blocking: held open until the question is decided."""


class DecisionView(DecisionInfo, kw_only=True):
    """How a tool-permission question was decided."""


class QuestionAnswer(DecideBody, kw_only=True):
    """POST /questions/{id}/answer (person role only): one of `decision` or `option_id`.
    `content_hash`, when sent, must be the question's: the answer is for what was shown."""


class QuestionView(QuestionInfo, kw_only=True):
    """GET /questions/{id}: one tool-permission question, pending or decided."""


class QuestionList(Struct):
    questions: list[QuestionView]


Glob = Annotated[str, Meta(min_length=1, max_length=500)]


class PolicyBody(Struct, kw_only=True, omit_defaults=True):
    """A rule: every glob given must match (`*`, `?`, `[...]`); `input` maps a field of the tool
    input (dotted for nested fields) to a glob. Highest `priority` first; the first match wins.
    An `allow` rule never matches a value with a shell operator (`;`, `&`, `|`, backquote,
    `$(`, `>`, `<`, a line break) unless its glob spells that operator out."""
    action: Literal["allow", "deny", "ask"]
    tool: Glob = "*"
    input: Annotated[dict[Annotated[str, Meta(min_length=1, max_length=200)], Glob], Meta(max_length=16)] = {}
    cwd: Glob | None = None
    peer: Glob | None = None
    circle: Glob | None = None
    priority: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] = 0
    reason: Annotated[str, Meta(max_length=500)] | None = None


class PolicyView(PolicyBody, kw_only=True):
    id: Hex128
    created_at: int
    updated_at: int


class PolicyDeleted(Struct):
    deleted: Hex128


class PolicyList(Struct):
    policies: list[PolicyView]


class EvaluateRequest(ToolCallBody, kw_only=True):
    """POST /policies/evaluate: what would the policies do with this tool call?"""


class Evaluation(Struct, omit_defaults=True):
    action: Literal["allow", "deny", "ask"]
    reason: str
    rule: PolicyView | None = None


class DecisionRecord(Struct, forbid_unknown_fields=False, omit_defaults=True):
    """One line of the audit log."""
    correlation_id: Hex128
    trace_id: Hex128
    tool_name: str
    decision: Decision
    answered_by: AnsweredBy
    reason: str
    at: int
    peer: PeerBrief | None = None
    by: PeerBrief | None = None
    rule_id: str | None = None


class DecisionList(Struct):
    decisions: list[DecisionRecord]
