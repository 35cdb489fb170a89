"""Bodies of the REST routes: requests are decoded strictly, responses documented in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.base import Struct
from schemas.errors import ErrorCode
from schemas.frames import (
    AckBody,
    Address,
    AnswerBody,
    AnsweredBy,
    AnswerScope,
    AskBlockingBody,
    AskBody,
    AskChild,
    AttachmentRef,
    DecideBody,
    DecisionInfo,
    Deliver,
    DeliveryState,
    Hex128,
    Name,
    NotifyBody,
    Outcome,
    PeerRef,
    Question,
    QuestionInfo,
    ReasonCode,
    RecipientState,
    Sha256,
    ToolCallBody,
)


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
    result: dict[str, Any] | None = None
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


class Fingerprint(Struct, forbid_unknown_fields=False):
    """What a linked pane was when it was linked; a pane that differs gets no text."""
    server: str          # the tmux server's socket path
    server_pid: int
    pane_id: str
    pid: int             # the pane's process (what tmux started in it)
    started_at: int      # that process's start time, ms since the epoch
    command: str
    cwd: str


class PaneLinkView(Struct):
    bridge: str
    pane_id: str
    backend: str
    fingerprint: Fingerprint
    linked_at: int


class PeerState(Struct, kw_only=True):
    """A peer as the hub knows it (its credentials never shown)."""
    peer_id: Hex128
    name: str
    circle: str
    role: str
    status: Literal["online", "busy", "awaiting_input", "offline"]
    status_reason: str
    node: str
    created_at: int
    last_seen: int
    pane: PaneLinkView | None = None
    agent_pid: int = 0


class PeerView(PeerState, kw_only=True):
    """A peer with the messages waiting in its inbox."""
    pending: int
    open_asks: int = 0   # in GET /peers: asks waiting for this peer's reply


class PeerList(Struct):
    peers: list[PeerView]


class PeerDeleted(Struct):
    deleted: Hex128


class TraceStage(Struct, forbid_unknown_fields=False, omit_defaults=True, kw_only=True):
    """One stage of a delivery trace: what happened (`stage`), when (`at`, ms), on which node,
    and the facts of that stage (every field a stage may carry is listed here; a test holds the
    hub's stage builders to this list)."""
    stage: Literal["accepted", "routed", "queued", "sent", "received", "injected", "failed", "expired",
                   "acked", "replied", "answered", "late_receipt", "joined", "waiter_lost", "held"]
    at: int
    node: str
    peer_id: str | None = None
    name: str | None = None
    reason: str | None = None
    seq: int | None = None
    kind: str | None = None          # accepted: notify, ask, question, pane_output, pane_keys
    from_peer: str | None = None     # accepted: the sender's peer id
    to: str | None = None            # accepted: the address as written; routed: where a question went
    recipients: int | None = None    # accepted: how many a broadcast reached
    via: str | None = None           # routed: the node that delivers
    deadline: int | None = None
    group_id: str | None = None
    schedule_id: str | None = None
    status: str | None = None        # a receipt's status
    of: str | None = None            # expired: the kind of message that expired
    by: str | None = None            # who closed or answered
    recovered: bool | None = None    # written again after a crash
    decision: str | None = None
    option_id: str | None = None
    answered_by: str | None = None
    rule_id: str | None = None
    scope: str | None = None
    tool_name: str | None = None
    tool_use_id: str | None = None
    lines: int | None = None         # pane output: lines read
    keys: str | None = None          # pane keys: what was sent


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
    aof_enabled: bool = False       # on every server of a cluster
    embedded: bool = False
    cluster: bool = False           # a Redis Cluster or Valkey cluster (else one server)
    shards: int = 1                 # primaries serving slots
    replicas: int = 0               # the fewest replicas any primary has
    replica_acks: int = 0           # replicas that must have a write before it is accepted (--replica-acks)


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
    tasks: int | None = None   # asyncio tasks in the hub process (a leak shows here first)


class ErrorDetail(Struct):
    code: str
    message: str
    details: dict[str, Any]


class ErrorEnvelope(Struct):
    error: ErrorDetail


def error_envelope(code: ErrorCode | str, message: str, details: dict[str, Any] | None = None) -> ErrorEnvelope:
    """The `{"error": {code, message, details}}` body of every refused request."""
    return ErrorEnvelope(error=ErrorDetail(code=str(code), message=message, details=details or {}))


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


InputField = Annotated[str, Meta(min_length=1, max_length=200)]


class PolicyBody(Struct, kw_only=True, omit_defaults=True):
    """A rule: every glob given must match (`*`, `?`, `[...]`); `input` maps a field of the tool
    input (dotted for nested fields) to a glob. Highest `priority` first; the first match wins.
    An `allow` rule never matches a value with a shell operator (`;`, `&`, `|`, backquote,
    `$(`, `>`, `<`, a line break) unless its glob spells that operator out. `inside_cwd` names
    input fields that must be paths inside the call's `cwd` (absent: the cwd itself);
    `command_prefix` matches a `command` that is these words, or these words and more;
    `shell` one that only reads the project (`reads`: grep, rg, find, ls, cat, git status, …) or
    only talks through the hub (`hub-messages`: repowire notify, ask, ack… without --attach);
    `session_id` and `content_hash` tie a rule to one session and one exact call; a rule past
    `expires_at` (ms) no longer matches."""
    action: Literal["allow", "deny", "ask"]
    tool: Glob = "*"
    input: Annotated[dict[InputField, Glob], Meta(max_length=16)] = {}
    cwd: Glob | None = None
    peer: Glob | None = None
    circle: Glob | None = None
    inside_cwd: Annotated[list[InputField], Meta(max_length=16)] = []
    command_prefix: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    shell: Literal["reads", "hub-messages"] | None = None
    session_id: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    content_hash: Sha256 | None = None
    expires_at: Annotated[int, Meta(ge=0)] | None = None
    priority: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] = 0
    reason: Annotated[str, Meta(max_length=500)] | None = None


class PolicyView(PolicyBody, kw_only=True):
    """A rule as stored. One a person's scoped answer left says so: `scope` (session or
    always), the `question_id` it answered, and who answered (`by`)."""
    id: Hex128
    created_at: int
    updated_at: int
    scope: AnswerScope | None = None
    question_id: Hex128 | None = None
    by: PeerBrief | None = None


PresetName = Literal["readonly", "writes", "all", "none"]


class PresetRule(PolicyBody, kw_only=True):
    """A rule of a preset: data shipped with the hub, tried after every rule of the list."""
    id: str


class PresetView(Struct):
    """The approval preset in force: what an agent may do without asking a person."""
    name: PresetName
    summary: str
    rules: list[PresetRule]


class PresetChoice(Struct):
    """PUT /policies/preset (person role only)."""
    name: PresetName


class PolicyDeleted(Struct):
    deleted: Hex128


class PolicyList(Struct):
    """The person's rules in the order they are tried, then the preset's."""
    policies: list[PolicyView]
    preset: PresetView


class EvaluateRequest(ToolCallBody, kw_only=True):
    """POST /policies/evaluate: what would the policies do with this tool call?"""


class Evaluation(Struct, omit_defaults=True):
    """`ask` means a person would be asked (or, with none to reach, the fallback decides)."""
    action: Literal["allow", "deny", "ask"]
    reason: str
    rule: PresetRule | None = None
    preset: PresetName | None = None   # set when the rule that decided is the preset's


class DecisionRecord(Struct, forbid_unknown_fields=False, omit_defaults=True):
    """One line of the audit log."""
    correlation_id: Hex128
    trace_id: Hex128
    answered_by: AnsweredBy
    reason: str
    at: int
    tool_name: str | None = None
    title: str | None = None
    decision: Outcome | None = None
    option_id: str | None = None
    peer: PeerBrief | None = None
    by: PeerBrief | None = None
    rule_id: str | None = None
    scope: AnswerScope | None = None
    policy_id: Hex128 | None = None


class DecisionList(Struct):
    decisions: list[DecisionRecord]


# ---- tmux panes ------------------------------------------------------------------------------

Backend = Literal["claude", "codex", "gemini", "opencode", "aider", "cursor", "goose", "amp", "other"]  # = BACKENDS
PeerName = Name


class PaneView(Struct, kw_only=True):
    """A pane on a bridge's tmux server, and the agent detected in it (None: no agent seen)."""
    bridge: str
    pane_id: str
    pid: int
    command: str
    cwd: str
    session: str
    window: str
    window_name: str
    dead: bool
    agent: str | None
    confidence: float
    fingerprint: Fingerprint


class OrphanList(Struct):
    """Panes not linked to any peer, from every pane bridge connected to this node."""
    panes: list[PaneView]
    bridges: list[str]


class LinkRequest(Struct, kw_only=True):
    """POST /panes/{pane_id}/link. `name` defaults to the pane's folder, `circle` to its tmux
    session; `bridge` is needed only when several bridges are connected."""
    backend: Backend
    name: PeerName | None = None
    circle: PeerName | None = None
    bridge: PeerName | None = None


class Linked(Struct):
    peer: PeerView
    transport: Literal["connected"]


class Unlinked(Struct):
    peer_id: Hex128
    pane_id: str
    status: str


class PaneOutput(Struct):
    """The pane's screen and recent scrollback as plain text (no escape sequences)."""
    peer_id: Hex128
    pane_id: str
    lines: list[str]
    trace_id: Hex128


class KeysRequest(Struct):
    """Named keys from the allow-list: Escape, Enter, Tab, Shift-Tab, Backspace, Space, Up, Down,
    Left, Right, PageUp, PageDown, Home, End, Ctrl-C, Ctrl-D, Ctrl-L and the digits 0-9."""
    keys: list[str]


class KeysSent(Struct):
    peer_id: Hex128
    pane_id: str
    sent: list[str]
    trace_id: Hex128


class DoctorFinding(msgspec.Struct, frozen=True, gc=False):   # frozen: msgspec.Struct itself (see schemas.base)
    code: str
    severity: Literal["error", "warning"]
    detail: str


class DoctorChecks(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What the hub and the pane bridge know about one peer, read without changing anything.
    Pane facts are None when there is no pane link or no bridge to ask."""
    status: str
    transport_connected: bool
    linked: bool
    bridge_connected: bool
    pane_exists: bool | None
    pane_dead: bool | None
    pid_alive: bool | None
    fingerprint_matches: bool | None
    changed: list[str]
    pending: int
    oldest_pending_age_s: float | None
    stale_asks: int


class DoctorReport(Struct):
    """Read-only: what is known about a peer and where it contradicts itself."""
    peer_id: Hex128
    name: str
    healthy: bool
    checks: DoctorChecks
    contradictions: list[DoctorFinding]


class RehookRequest(Struct):
    apply: bool = False


class RehookReport(Struct):
    """What rehook would do (`apply: false`) or did: restart a dead pane transport, or nothing."""
    peer_id: Hex128
    action: Literal["restart_transport", "none"]
    reason: str
    applied: bool
    transport_connected: bool


# ---- schedules -------------------------------------------------------------------------------

IsoTime = Annotated[str, Meta(min_length=1, max_length=64, description="ISO 8601, such as 2026-11-23T09:00:00Z; "
                              "without an offset it is read in `timezone`")]


class ScheduleRequest(Struct, kw_only=True, omit_defaults=True):
    """POST /schedules: send a notify or an ask later (`at`, once) or again and again (`cron`,
    five fields, in `timezone`). The sender is the caller. An ask waits `timeout_s` for its
    answer; with `queue_if_offline` it waits for an offline recipient, otherwise that fire is
    recorded as `peer_offline`. With `catch_up` (the default) occurrences that fell due while
    no hub was running are sent when one starts; without, they are recorded as missed."""
    to: Address
    kind: Literal["notify", "ask"]
    text: str
    at: IsoTime | None = None
    cron: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    timeout_s: Annotated[float, Meta(gt=0)] | None = None
    queue_if_offline: bool = False
    catch_up: bool = True


class ScheduleCreated(Struct):
    schedule_id: Hex128
    next_fire_at: str


class FireView(Struct, kw_only=True, omit_defaults=True):
    """One line of a schedule's history: an occurrence sent (with its message's trace id),
    failed (with the reason code, such as `peer_offline`), or missed (`count` occurrences from
    `due_at` to `last_due_at`). `recovered`: sent by a node that took over an interrupted fire."""
    due_at: str
    state: Literal["sent", "failed", "missed"]
    node: str
    fired_at: str | None = None
    recorded_at: str | None = None
    late_ms: int | None = None
    message_id: Hex128 | None = None
    correlation_id: Hex128 | None = None
    trace_id: Hex128 | None = None
    delivery: DeliveryState | None = None
    reason: str | None = None
    message: str | None = None
    count: int | None = None
    last_due_at: str | None = None
    recovered: bool | None = None


class ScheduleView(Struct, kw_only=True, omit_defaults=True):
    schedule_id: Hex128
    kind: Literal["notify", "ask"]
    to: str
    to_name: str | None = None
    text: str
    at: str | None = None
    cron: str | None = None
    timezone: str
    timeout_s: float | None = None
    queue_if_offline: bool
    catch_up: bool
    state: Literal["active", "paused", "done"]
    next_fire_at: str | None = None
    created_at: str
    created_by: PeerBrief
    fired: int
    missed: int
    failed: int
    fires: list[FireView] | None = None


class ScheduleList(Struct):
    schedules: list[ScheduleView]


class ScheduleDeleted(Struct):
    deleted: Hex128


class AttachmentCreated(AttachmentRef, kw_only=True):
    """POST /attachments: the file was stored under `id`; put the id in a message's
    `attachments` to send it. It is removed after `expires_at` (ms) unless a message that
    carries it is still pending then."""
    expires_at: int


# ---- agent sessions (their hooks) ----------------------------------------------------------

PaneId = Annotated[str, Meta(pattern=r"^%[0-9]{1,9}(?!\n)$", description="a tmux pane id, e.g. %12")]
Pid = Annotated[int, Meta(ge=1, le=2**31)]


class SessionStartRequest(Struct, kw_only=True):
    """POST /sessions: an agent session began (its SessionStart hook). The hook sends what it
    knows of itself; the hub decides the identity (see docs/claude-code.md)."""
    backend: Backend
    cwd: Annotated[str, Meta(min_length=1, max_length=4096)]
    agent_pid: Pid
    ancestors: Annotated[list[Pid], Meta(max_length=64)] = []
    session_id: Annotated[str, Meta(max_length=200)] = ""
    pane_id: PaneId | None = None
    bridge: PeerName | None = None
    tmux_session: Annotated[str, Meta(max_length=200)] | None = None
    name: PeerName | None = None
    circle: PeerName | None = None


class SessionJoined(Struct, kw_only=True):
    """`joined`: linked (typed into its pane from now on), reused (the pane's own peer again),
    registered (no pane: an inbox, shown offline; `note` says why), nested (a subprocess
    agent in another agent's pane: `peer` is that agent, and nothing was registered)."""
    joined: Literal["linked", "reused", "registered", "nested"]
    peer: PeerView
    transport: Literal["connected", "none"]
    online: list[PeerView]
    note: str = ""
    session_token: Annotated[str, Meta(description="the session's own credential: acts as `peer` and nobody else "
                                                   "until the session ends (empty when nested)")] = ""


class PresenceRequest(Struct, kw_only=True):
    """POST /peers/{ref}/presence: `online` (idle), `busy`, `awaiting_input` (waiting for a
    person), or `offline` (the session ended: its pane transport stops, the link and inbox stay)."""
    status: Literal["online", "busy", "awaiting_input", "offline"]
    reason: ReasonCode | None = None


class PeerCreateRequest(Struct, kw_only=True):
    """POST /peers (a person): register an agent peer by name, or take back the offline peer of
    that name (same id and inbox, a new token; the old token stops working)."""
    name: PeerName
    circle: PeerName = "default"


class PeerCreated(Struct, kw_only=True):
    """`token` is the peer's secret: shown once, kept by the hub only as a digest. Use it as
    `REPOWIRE_TOKEN` (the CLI) or in a `hello` frame to act as that peer."""
    created: bool
    peer: PeerView
    token: str


class Whoami(Struct, kw_only=True):
    """GET /whoami: who this credential acts as: the operator (the person at the hub), or one peer."""
    operator: bool
    peer: PeerView | None = None


class InboxTakeRequest(Struct, kw_only=True):
    """POST /peers/{ref}/inbox/take: deliver up to `limit` queued messages in this answer."""
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class InboxWaitRequest(Struct, kw_only=True):
    """POST /peers/{ref}/inbox/wait: like take, but when nothing is queued, wait up to
    `timeout_s` (at most 60) for the first message."""
    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    timeout_s: Annotated[float, Meta(ge=0, le=60)] = 30.0


class InboxTaken(Struct):
    deliveries: list[Deliver]
    remaining: int


class DashboardLink(Struct):
    """POST /dashboard/links (hub token): a one-time sign-in link for a browser."""
    url: str
    expires_in_s: int


class DashboardSession(Struct):
    """GET /dashboard/session: the signed-in browser acts as the person at the hub (the operator)."""
    signed_in: bool
    node: str
    version: str
    as_: PeerRef = msgspec.field(name="as")


# ---- alerts ------------------------------------------------------------------------------------

class WaitingQuestion(Struct, kw_only=True):
    """The question an alert is about (its full view: GET /questions/{correlation_id})."""
    correlation_id: Hex128
    kind: Literal["tool_permission", "choice"]
    tool_name: str | None
    title: str | None
    cwd: str | None
    deadline: int
    agent: PeerRef


class QuestionWaiting(Struct, kw_only=True, tag_field="type", tag="question_waiting"):
    """The body of the webhook alert (`serve --alert-webhook`): a question waits for a person.
    Signed: `X-Repowire-Signature: sha256=<hex>` is HMAC-SHA256 of `<X-Repowire-Timestamp>.<body>`.
    `url` signs whoever opens it in as you, once (null when no sign-in link could be made)."""
    title: str
    summary: str
    url: str | None
    question: WaitingQuestion


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out", "lost"]
RecurringState = Literal["active", "done", "cancelled"]
Argument = Annotated[str, Meta(max_length=4096)]


class JobRequest(Struct, kw_only=True, omit_defaults=True):
    """POST /jobs: work for a peer (`peer`: delivered as an ask; its reply is the result) or for
    a fresh agent process (`path` + `backend`: the hub runs that backend's non-interactive
    command in that folder). Now, at `at` (once), or on `cron` in `timezone` (recurring: each
    fire is a work item of its own). `process_scope` (path jobs): `per_fire`, a short-lived
    executor per run (the default), or `session`, one executor kept for the job's runs.
    `continuity`: `fresh` (the default for a one-time job) or `resume` (the default for a
    recurring one: the next fire resumes the backend's own session when its id is known).
    `command`: the argument list the `command` backend runs (a person's jobs only)."""
    prompt: Annotated[str, Meta(min_length=1)]
    peer: Address | None = None
    path: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    backend: Annotated[str, Meta(min_length=1, max_length=32)] | None = None
    command: Annotated[list[Argument], Meta(min_length=1, max_length=64)] | None = None
    process_scope: Literal["per_fire", "session"] | None = None
    continuity: Literal["fresh", "resume"] | None = None
    at: IsoTime | None = None
    cron: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    timeout_s: Annotated[float, Meta(gt=0)] | None = None


class JobTarget(Struct, kw_only=True, omit_defaults=True):
    """Where the work goes: a peer, or a folder and a backend (with the command it runs, for
    the `command` backend; the summary view leaves the command out)."""
    peer: PeerBrief | None = None
    path: str | None = None
    backend: str | None = None
    command: list[str] | None = None


class JobResult(Struct, kw_only=True, omit_defaults=True):
    """What a run came to: the reply's or the backend's final text (or the last lines it
    printed), trimmed; the exit code of a path job's executor; the error when it failed."""
    summary: str = ""
    exit_code: int | None = None
    error: str | None = None
    output_bytes: int | None = None


class JobDelivery(Struct, kw_only=True, omit_defaults=True):
    """A peer job's ask: its correlation id, its trace, and how far it got."""
    correlation_id: Hex128
    trace_id: Hex128
    state: str


class JobRunner(Struct, kw_only=True, omit_defaults=True):
    """The run in progress or the last one: which node, which attempt, the executor's pid."""
    node: str
    attempt: int
    pid: int | None = None
    executor: Literal["per_fire", "session", "ask"] | None = None


class JobStage(Struct, kw_only=True, omit_defaults=True):
    """One step of a work item's trace: queued, started, executor, session, succeeded, failed,
    cancelled, timed_out, lost, adopted; or, for a recurring job, one fire."""
    stage: str
    at: str
    node: str | None = None
    detail: str | None = None
    work_id: str | None = None
    fire: int | None = None


class JobProgress(Struct, kw_only=True):
    at: str
    text: str


class JobView(Struct, kw_only=True, omit_defaults=True):
    """A work item (`kind: work`) or a recurring job (`kind: recurring`, id `cal-…`). The
    summary view keeps ids, state, times, owner, target and delivery, and the result's
    summary; the full view adds the prompt, the request as sent, who made it and how
    (`provenance`), the runner, the progress and the trace."""
    id: str
    kind: Literal["work", "recurring"]
    state: str
    reason: str | None = None
    owner: PeerBrief
    target: JobTarget
    process_scope: Literal["per_fire", "session"] | None = None
    continuity: Literal["fresh", "resume"] | None = None
    timeout_s: float | None = None
    created_at: str
    updated_at: str | None = None
    due_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    at: str | None = None
    cron: str | None = None
    timezone: str | None = None
    next_fire_at: str | None = None
    fires: int | None = None
    last_work_id: str | None = None
    template_id: str | None = None
    fire: int | None = None
    node: str | None = None
    runtime_session_id: str | None = None
    result: JobResult | None = None
    delivery: JobDelivery | None = None
    prompt: str | None = None
    request: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None
    runner: JobRunner | None = None
    progress: list[JobProgress] | None = None
    trace: list[JobStage] | None = None


class JobList(Struct):
    work: list[JobView]
    recurring: list[JobView]


class NodeView(Struct, kw_only=True, omit_defaults=True):
    """A hub node of this store: where it answers, whether it is alive (it holds its lease; on
    the embedded store, the one node), the peers it holds online, and which node answered."""
    node: str
    url: str
    live: bool
    this: bool
    host: str | None = None
    pid: int | None = None
    started_at: int | None = None
    peers_online: int


class NodeList(Struct):
    nodes: list[NodeView]
