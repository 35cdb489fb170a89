"""The dashboard socket (`/dashboard/ws`): its frames, apart from the peers' `/ws`.

A dashboard does not say hello: it is not a peer. Its first frame is `subscribe`, naming the
last event cursor it saw (none on a fresh start). The hub answers `subscribed`, then sends
`event` frames in stream order, each with its cursor; `ping` gets `pong`; a bad frame gets an
`error` frame (the same shape as on `/ws`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.base import Struct
from schemas.frames import DecisionInfo, Error, Hex128, PeerRef, Ping, Pong, Question, QuestionInfo
from schemas.rest import PeerState, TraceStage

MAX_BACKLOG = 1000
SOCKET_PROTOCOL = "repowire.dashboard"   # the socket's subprotocol; the page also offers `repowire.key.<key>`
Cursor = Annotated[str, Meta(max_length=64, description="an event id such as `1763900000000-0`, as the hub sent it")]
EventKind = Literal["presence", "peer_deleted", "traces", "question", "question_decided", "job"]


class _Frame(Struct, tag_field="type", omit_defaults=True):
    pass


class Subscribe(_Frame, tag="subscribe"):
    """Follow the hub's events after `cursor` (nothing missed, nothing twice). Without a cursor,
    or when the events after it are no longer kept, the newest `backlog` events come first."""
    cursor: Cursor | None = None
    backlog: Annotated[int, Meta(ge=0, le=MAX_BACKLOG)] = 200
    id: Annotated[str, Meta(max_length=64)] | None = None


class Subscribed(_Frame, tag="subscribed"):
    """Events follow from just after `cursor`. `history_lost`: the events after the cursor the
    dashboard named are gone (trimmed, or the store was replaced); `missed_after` repeats it.
    A dashboard that sees it reloads its lists."""
    cursor: Cursor
    history_lost: bool
    missed_after: Cursor | None = None


class Event(_Frame, tag="event"):
    """What happened. presence: `{peer_id, status, reason, peer}`; peer_deleted: `{peer_id}`;
    question: the question as `GET /questions/{id}` shows it; question_decided:
    `{correlation_id, decision, answered_by, reason}`; job: `{job_id, kind, state, reason}`
    (a job was made, started, ended or cancelled; these five also have the `node` that wrote
    them and `at`, ms); traces: a list of `{trace_id, stages, message?}`, the trace
    stages a node wrote within 10 ms (message: kind, from, to, text preview of a notify, ask,
    ack, reply or answer; each stage has its own node and time)."""
    cursor: Cursor
    kind: EventKind
    data: dict[str, Any] | list[Any]


# ---- what an event's `data` holds, by kind (the hub writes these to its event stream) ----------

class PresenceChanged(Struct, kw_only=True):
    """`presence`: a peer came, went, or said it is busy or waiting for a person."""
    peer_id: Hex128
    status: str
    reason: str
    peer: PeerState
    node: str
    at: int


class PeerGone(Struct, kw_only=True):
    """`peer_deleted`."""
    peer_id: Hex128
    node: str
    at: int


class QuestionShown(QuestionInfo, kw_only=True):
    """`question`: a blocking question waits for a person (as GET /questions/{id} shows it)."""
    node: str
    at: int


class QuestionSettled(DecisionInfo, kw_only=True):
    """`question_decided`: a blocking question was decided, by anyone."""
    node: str
    at: int


class JobChanged(Struct, kw_only=True, omit_defaults=True):
    """`job`: a job was made, started, ended or cancelled (GET /jobs/{id}/status has the rest)."""
    job_id: str
    kind: Literal["work", "recurring"]
    state: str
    reason: str | None = None
    node: str
    at: int


class MessagePreview(Struct, kw_only=True, omit_defaults=True):
    """What the feed shows of a message that starts or closes with a trace: who sent it, to
    whom, what kind, and its text cut at 2,000 characters (`truncated`)."""
    kind: str
    message_id: Hex128
    from_: PeerRef = msgspec.field(name="from")
    to: str
    at: int
    text: str | None = None
    truncated: bool = False
    correlation_id: Hex128 | None = None
    deadline: int | None = None
    option_id: str | None = None
    outcome: str | None = None
    schedule_id: Hex128 | None = None
    question: Question | None = None
    attachments: list[str] | None = None   # their file names


class TracesChanged(Struct, kw_only=True, omit_defaults=True):
    """One item of a `traces` event: stages a node added to a trace (within 10 ms of each other)."""
    trace_id: Hex128
    stages: list[TraceStage]
    message: MessagePreview | None = None


EventData = PresenceChanged | PeerGone | QuestionShown | QuestionSettled | JobChanged


DashboardClientFrame = Subscribe | Ping
DashboardHubFrame = Subscribed | Event | Error | Pong
DASHBOARD_CLIENT_FRAMES = (Subscribe, Ping)
DASHBOARD_HUB_FRAMES = (Subscribed, Event, Error, Pong)
