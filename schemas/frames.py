"""The frames of wire contract v1, as typed structs.

Every WebSocket message is one JSON object with a `type` tag. Client frames are decoded strictly
(wrong field types and unknown `type` values are errors); unknown *fields* are ignored so that
v1 can grow additively. Hub frames are encoded by the hub and decoded by clients (the SDK).
Timestamps are integer milliseconds since the Unix epoch; ids are 32 lowercase hex digits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.base import Struct

API_VERSION = "repowire.v1"

Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(?!\n)$",
                           description="letters, digits, '.', '_' and '-', starting with a letter or digit")]
Circle = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(?!\n)$")]
FrameId = Annotated[str, Meta(min_length=1, max_length=128, description="the client's own id for this frame, echoed as `ref`")]
Hex128 = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}(?!\n)$", description="a 128-bit id as 32 lowercase hex digits")]
Address = Annotated[str, Meta(min_length=1, max_length=160,
                              description="a peer id, `name`, `name@circle`, `*` (the sender's circle) or `*@circle`")]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=128)]
MAX_ATTACHMENTS = 16
AttachmentIds = Annotated[list[Annotated[str, Meta(pattern=r"^[0-9a-f]{32}(?!\n)$")]],
                          Meta(max_length=MAX_ATTACHMENTS,
                               description="ids of attachments you uploaded (POST /attachments), at most 16")]
Seq = Annotated[int, Meta(ge=0, le=2 ** 53 - 1, description="a per-peer sequence number")]
Role = Literal["agent", "person", "hook", "bridge"]
ReceiptStatus = Literal["received", "injected", "failed", "held"]
DeliveryState = Literal["delivered", "queued", "expired", "failed"]


class _Frame(Struct, tag_field="type", omit_defaults=True):
    pass


class ErrorInfo(Struct):
    code: str
    message: str
    details: dict[str, Any] = {}


# ---- client -> hub -------------------------------------------------------------------------

class Hello(_Frame, tag="hello"):
    """First frame on a connection: who this peer is and where it resumes."""
    name: Name
    circle: Circle = "default"
    role: Role = "agent"
    token: str | None = None
    resume: Seq | None = None


class QuestionOption(Struct):
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    title: Annotated[str, Meta(min_length=1, max_length=200)]


class Question(Struct, omit_defaults=True):
    """A structured question an ask may carry; answered with `answer`."""
    kind: Literal["acknowledge", "choice", "text"]
    prompt: Annotated[str, Meta(min_length=1, max_length=4000)]
    options: Annotated[list[QuestionOption], Meta(max_length=32)] | None = None


# What an operation carries, declared once: the socket frame adds the client's frame `id` and
# the `type` tag; the REST route takes the same fields as its body (schemas.rest).

class NotifyBody(Struct, kw_only=True, omit_defaults=True):
    to: Address
    text: str
    attachments: AttachmentIds = []
    idempotency_key: IdempotencyKey | None = None


class AskBody(Struct, kw_only=True, omit_defaults=True):
    to: Address | Annotated[list[Address], Meta(min_length=1, max_length=64)]
    text: str
    timeout_s: Annotated[float, Meta(gt=0)] | None = None
    queue_if_offline: bool = False
    question: Question | None = None
    attachments: AttachmentIds = []
    idempotency_key: IdempotencyKey | None = None


class AckBody(Struct, kw_only=True, omit_defaults=True):
    correlation_id: Hex128
    text: str | None = None
    attachments: AttachmentIds = []
    idempotency_key: IdempotencyKey | None = None


class AnswerBody(Struct, kw_only=True, omit_defaults=True):
    correlation_id: Hex128
    option_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    text: str | None = None
    outcome: Literal["accepted", "declined", "dismissed"] | None = None
    attachments: AttachmentIds = []
    idempotency_key: IdempotencyKey | None = None


ToolName = Annotated[str, Meta(min_length=1, max_length=200)]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}(?!\n)$", description="64 lowercase hex digits")]
Decision = Literal["allow", "deny"]
# `ask`: no person could be reached and the hub's fallback hands the call back to the agent's
# own permission prompt (Claude Code's `permissionDecision: "ask"`); never from a person
Outcome = Literal["allow", "deny", "ask"]
AnsweredBy = Literal["human", "policy", "timeout", "error", "abandoned", "fallback"]
AnswerScope = Literal["once", "session", "always"]


class PermissionOption(Struct, omit_defaults=True):
    """One button a person may press. For a tool permission each comes to allow or deny
    (`decision`); the options of a plain question have no decision: the answer is the id."""
    id: Annotated[str, Meta(min_length=1, max_length=64)]
    title: Annotated[str, Meta(min_length=1, max_length=200)]
    decision: Decision | None = None


class ToolCallBody(Struct, kw_only=True, omit_defaults=True):
    """A tool call as policies see it; `peer` names the agent (default: the caller). A dry run
    (`POST /policies/evaluate`) may name any agent; a question (`ask_blocking`) may not: the
    agent that asks is always the caller's credential, and `peer` is refused (`forbidden`)."""
    tool_name: ToolName
    tool_input: dict[str, Any] = {}
    cwd: Annotated[str, Meta(max_length=4096)] | None = None
    peer: Address | None = None


class AskBlockingBody(Struct, kw_only=True, omit_defaults=True):
    """A blocking question, held until a person or a policy decides, or the deadline (min of
    `timeout_s`, `hook_timeout_s` less the hub's margin, and the hub's cap) passes.

    A tool permission (`tool_name`, `tool_use_id`): may this agent run this tool call? The
    deadline decides `deny`; `default`, when given, must name a deny option. The same
    `tool_use_id` asked again (a retried hook) joins the first question.

    A plain question (no `tool_name`): `title` and at least two `options` without decisions;
    the answer is an option id, and `default` is the option the deadline picks (none: the
    question times out unanswered). `tool_use_id`, when given, makes asking again join it."""
    tool_name: ToolName | None = None
    tool_input: dict[str, Any] = {}
    cwd: Annotated[str, Meta(max_length=4096)] | None = None
    peer: Address | None = None
    tool_use_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    session_id: Annotated[str, Meta(max_length=200)] = ""
    hook_timeout_s: Annotated[float, Meta(gt=0)] | None = None
    timeout_s: Annotated[float, Meta(gt=0)] | None = None
    title: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    prompt: Annotated[str, Meta(max_length=4000)] | None = None
    options: Annotated[list[PermissionOption], Meta(min_length=1, max_length=8)] | None = None
    default: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class Notify(_Frame, NotifyBody, tag="notify", kw_only=True):
    """Fire-and-forget message to one peer or a circle; answered by `accepted` once durable."""
    id: FrameId


class Ask(_Frame, AskBody, tag="ask", kw_only=True):
    """Request/reply: answered by `accepted` with a correlation id; the reply, answer or
    expiry comes back later as a `deliver`. `to` may list several peers (each gets its own
    correlation id)."""
    id: FrameId


class Ack(_Frame, AckBody, tag="ack", kw_only=True):
    """The asked peer closes an ask; with `text` the asker gets it as a reply."""
    id: FrameId | None = None


class Answer(_Frame, AnswerBody, tag="answer", kw_only=True):
    """The asked peer answers an ask's structured question; the first answer wins."""
    id: FrameId | None = None


class AskBlocking(_Frame, AskBlockingBody, tag="ask_blocking", kw_only=True):
    """A tool-permission question over the socket: `accepted` (with the correlation id) comes
    first, then one `decision` frame with the same `ref`."""
    id: FrameId


class DecideBody(Struct, kw_only=True, omit_defaults=True):
    """A person's answer to a tool-permission question: one of `decision` or `option_id`.
    `content_hash`, when sent, must be the question's: the answer is for what was shown."""
    decision: Decision | None = None
    option_id: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Meta(max_length=2000)] | None = None
    content_hash: Sha256 | None = None
    # an allow's reach: this call only (`once`), this exact call again for the rest of the
    # agent's session, or always for this agent (Bash: commands starting with `prefix`)
    scope: AnswerScope = "once"
    prefix: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class Decide(_Frame, DecideBody, tag="decide", kw_only=True):
    """A person (role `person`) answers a tool-permission question over the socket: one of
    `decision` or `option_id`; `content_hash`, when sent, must be the question's. Answered by
    a `decision` frame with the same `ref` (or an `error`)."""
    correlation_id: Hex128
    id: FrameId | None = None


class Receipt(_Frame, tag="receipt"):
    """The recipient confirms a delivery: received it, injected it (panes), or failed to.
    `held`: it did not deliver and must not lose it (a pane that changed hands): the delivery
    stays in the inbox and the trace records why."""
    message_id: Hex128
    status: ReceiptStatus
    reason: Annotated[str, Meta(max_length=500)] | None = None


class Ping(_Frame, tag="ping"):
    """Application-level liveness check; answered by `pong` with the same id as `ref`."""
    id: FrameId | None = None


class Presence(_Frame, tag="presence"):
    """The peer says it is working (`busy`), free (`online`) or waiting for a person
    (`awaiting_input`); `offline` is the hub's to say."""
    status: Literal["online", "busy", "awaiting_input"]


ReasonCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*(?!\n)$")]


class Bye(_Frame, tag="bye"):
    """The client is leaving and says why (a pane transport: `pane_closed`, `agent_exited`,
    `pane_replaced`, …). The peer goes offline with that reason; its inbox stays."""
    reason: ReasonCode


class BridgeResult(_Frame, tag="bridge_result", kw_only=True):
    """A pane bridge (role `bridge`) answers a `bridge_call`: `result` when `ok`, else `error`."""
    call_id: Hex128
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None


ClientFrame = Hello | Notify | Ask | Ack | Answer | AskBlocking | Decide | Receipt | Ping | Presence | Bye | BridgeResult


# ---- hub -> client -------------------------------------------------------------------------

class Position(Struct, omit_defaults=True):
    last_seq: int
    pending: int


class Welcome(_Frame, tag="welcome"):
    peer_id: Hex128
    name: str
    circle: str
    role: Role
    token: str
    node: str
    api_version: str
    heartbeat_s: float
    position: Position
    limits: dict[str, int]


class RecipientState(Struct, omit_defaults=True):
    """One recipient of a broadcast: `failed` with `reason` (inbox_full) when nothing was queued for it."""
    peer_id: Hex128
    name: str
    state: DeliveryState
    reason: ReasonCode | None = None


class AskChild(Struct, omit_defaults=True):
    peer_id: Hex128
    name: str
    correlation_id: Hex128
    message_id: Hex128
    state: DeliveryState


class Accepted(_Frame, tag="accepted"):
    """Durably accepted. For an ask: its correlation id and deadline (several peers: `children`
    and a `group_id`). For an ack or answer: the ask's new state and the reply's delivery."""
    message_id: Hex128
    state: DeliveryState
    ref: str | None = None
    recipients: list[RecipientState] | None = None
    replayed: bool = False
    correlation_id: Hex128 | None = None
    deadline: int | None = None
    group_id: Hex128 | None = None
    children: list[AskChild] | None = None
    ask_state: Literal["acked", "replied", "answered"] | None = None


class PeerRef(Struct):
    peer_id: Hex128
    name: str
    circle: str


class QuestionInfo(Struct, kw_only=True, omit_defaults=True):
    """A blocking question as people see it (REST and the `question` frame): a tool permission
    (`kind` tool_permission) or a plain question (`kind` choice, with `title`)."""
    correlation_id: Hex128
    trace_id: Hex128
    kind: Literal["tool_permission", "choice"]
    state: Literal["pending", "decided", "abandoned"]
    tool_input: dict[str, Any]
    session_id: str
    content_hash: Sha256
    options: list[PermissionOption]
    created_at: int
    deadline: int
    asker: PeerRef
    tool_name: str | None = None
    tool_use_id: str | None = None
    title: str | None = None
    default: str | None = None
    peer: PeerRef | None = None
    cwd: str | None = None
    prompt: str | None = None
    decision: Outcome | None = None
    answered_by: AnsweredBy | None = None
    reason: str | None = None
    rule_id: str | None = None
    option_id: str | None = None
    decided_at: int | None = None
    by: PeerRef | None = None


class AttachmentRef(Struct, kw_only=True):
    """An attachment as a delivery carries it: download it with GET /attachments/{id} (the
    recipient may), check it against `sha256`. `filename` is the uploader's, cleaned; never
    use it as a path as it is."""
    id: Hex128
    filename: str
    size: int
    content_type: str
    sha256: Sha256


DeliveryKind = Literal["notify", "ask", "reply", "ack", "answer", "expired"]


class Delivery(Struct, kw_only=True, omit_defaults=True):
    """A message as a recipient's inbox keeps it (written once, for every recipient): a
    `deliver` frame is this with the recipient's `seq` (see schemas.codec.deliver_frame).

    kind: notify | ask (with correlation_id, deadline, question?) | reply (ack with text) |
    ack (bare ack) | answer (option_id?, text?, outcome?) | expired (an ask passed its
    deadline, or a reply was never collected: `reason`)."""
    kind: DeliveryKind
    message_id: Hex128
    sent_at: int
    from_: PeerRef = msgspec.field(name="from")
    text: str | None = None
    correlation_id: Hex128 | None = None
    deadline: int | None = None
    question: Question | None = None
    option_id: str | None = None
    outcome: str | None = None
    reason: str | None = None
    schedule_id: Hex128 | None = None   # set when a schedule sent it
    attachments: list[AttachmentRef] | None = None


class Deliver(_Frame, Delivery, tag="deliver", kw_only=True):
    """A delivery with a per-recipient `seq`; confirm it with a `receipt`. The fields are the
    `Delivery`'s (kind: notify | ask | reply | ack | answer | expired)."""
    seq: Seq


class DecisionInfo(Struct, kw_only=True, omit_defaults=True):
    """The outcome of a blocking question: who decided (`human`, `policy`, `timeout`, `error`,
    `abandoned`, `fallback`) and why. What POST /questions/ask-blocking returns. A tool
    permission always has `decision`; a plain question has the chosen `option_id` (none when
    it timed out with no default). A person's scoped allow names the rule it left (`policy_id`)."""
    correlation_id: Hex128
    answered_by: AnsweredBy
    reason: str
    decision: Outcome | None = None
    rule_id: str | None = None
    option_id: str | None = None
    scope: AnswerScope | None = None
    policy_id: Hex128 | None = None


class DecisionFrame(_Frame, DecisionInfo, tag="decision", kw_only=True):
    """A decision, to the socket that asked (`ref`: its `ask_blocking` or `decide` frame)."""
    ref: str | None = None


class QuestionOpened(_Frame, QuestionInfo, tag="question", kw_only=True):
    """To people (role `person`) connected to the hub: a tool-permission question waits for an
    answer (POST /questions/{correlation_id}/answer)."""


class QuestionDecided(_Frame, DecisionInfo, tag="question_decided", kw_only=True):
    """To people: a question was decided (by anyone); take it off the list."""


class Error(_Frame, tag="error"):
    error: ErrorInfo
    ref: str | None = None


class Pong(_Frame, tag="pong"):
    ref: str | None = None


BridgeOp = Literal["panes", "inspect", "attach", "detach", "capture", "keys"]


class BridgeCall(_Frame, tag="bridge_call", kw_only=True):
    """The hub asks a pane bridge to act on its tmux server; answered by `bridge_result` with
    the same `call_id`. panes: list the panes; inspect {pane_id, expected?}: one pane and its
    fingerprint (compared with `expected`); attach {peer_id, name, circle, pane_id,
    fingerprint}: bring the pane transport for that peer up; detach {peer_id, reason};
    capture {pane_id, lines}; keys {pane_id, keys}."""
    call_id: Hex128
    op: BridgeOp
    args: dict[str, Any] = {}


HubFrame = Welcome | Accepted | Deliver | DecisionFrame | QuestionOpened | QuestionDecided | Error | Pong | BridgeCall

CLIENT_FRAMES: tuple[type[Struct], ...] = (Hello, Notify, Ask, Ack, Answer, AskBlocking, Decide, Receipt, Ping,
                                            Presence, Bye, BridgeResult)
HUB_FRAMES: tuple[type[Struct], ...] = (Welcome, Accepted, Deliver, DecisionFrame, QuestionOpened, QuestionDecided,
                                         Error, Pong, BridgeCall)
