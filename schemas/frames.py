"""The frames of wire contract v1, as typed structs.

Every WebSocket message is one JSON object with a `type` tag. Client frames are decoded strictly
(wrong field types and unknown `type` values are errors); unknown *fields* are ignored so that
v1 can grow additively. Hub frames are encoded by the hub and decoded by clients (the SDK).
Timestamps are integer milliseconds since the Unix epoch; ids are 32 lowercase hex digits.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Struct

API_VERSION = "repowire.v1"

Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                           description="letters, digits, '.', '_' and '-', starting with a letter or digit")]
Circle = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
FrameId = Annotated[str, Meta(min_length=1, max_length=128, description="the client's own id for this frame, echoed as `ref`")]
Hex128 = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$", description="a 128-bit id as 32 lowercase hex digits")]
Address = Annotated[str, Meta(min_length=1, max_length=160,
                              description="a peer id, `name`, `name@circle`, `*` (the sender's circle) or `*@circle`")]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=128)]
Seq = Annotated[int, Meta(ge=0)]
Role = Literal["agent", "person", "hook", "bridge"]
ReceiptStatus = Literal["received", "injected", "failed"]
DeliveryState = Literal["delivered", "queued"]


class _Frame(Struct, tag_field="type", omit_defaults=True):
    pass


# ---- client -> hub -------------------------------------------------------------------------

class Hello(_Frame, tag="hello"):
    """First frame on a connection: who this peer is and where it resumes."""
    name: Name
    circle: Circle = "default"
    role: Role = "agent"
    token: str | None = None
    resume: Seq | None = None


class Notify(_Frame, tag="notify"):
    """Fire-and-forget message to one peer or a circle; answered by `accepted` once durable."""
    id: FrameId
    to: Address
    text: str
    idempotency_key: IdempotencyKey | None = None


class Receipt(_Frame, tag="receipt"):
    """The recipient confirms a delivery: received it, injected it (panes), or failed to."""
    message_id: Hex128
    status: ReceiptStatus
    reason: Annotated[str, Meta(max_length=500)] | None = None


class Ping(_Frame, tag="ping"):
    """Application-level liveness check; answered by `pong` with the same id as `ref`."""
    id: FrameId | None = None


class Presence(_Frame, tag="presence"):
    """The peer says it is working (`busy`) or free (`online`); `offline` is the hub's to say."""
    status: Literal["online", "busy"]


ClientFrame = Union[Hello, Notify, Receipt, Ping, Presence]


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
    peer_id: Hex128
    name: str
    state: DeliveryState


class Accepted(_Frame, tag="accepted"):
    ref: str
    message_id: Hex128
    state: DeliveryState
    recipients: list[RecipientState] | None = None
    replayed: bool = False


class PeerRef(Struct):
    peer_id: Hex128
    name: str
    circle: str


class Deliver(_Frame, tag="deliver"):
    kind: Literal["notify"]
    message_id: Hex128
    seq: Seq
    text: str
    sent_at: int
    from_: PeerRef = msgspec.field(name="from")


class ErrorInfo(Struct):
    code: str
    message: str
    details: dict = {}


class Error(_Frame, tag="error"):
    error: ErrorInfo
    ref: str | None = None


class Pong(_Frame, tag="pong"):
    ref: str | None = None


HubFrame = Union[Welcome, Accepted, Deliver, Error, Pong]

CLIENT_FRAMES: tuple[type[Struct], ...] = (Hello, Notify, Receipt, Ping, Presence)
HUB_FRAMES: tuple[type[Struct], ...] = (Welcome, Accepted, Deliver, Error, Pong)
