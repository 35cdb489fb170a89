"""The hub's settings: one frozen object, built once by the CLI or the app factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hub.core.approvals import QuestionPolicy
from hub.core.asks import AskPolicy
from hub.core.attachments import AttachmentPolicy
from hub.core.jobs import JobPolicy
from hub.core.schedules import SchedulePolicy


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = 256 * 1024          # one WebSocket frame, checked by the hub
    transport_max_frame_bytes: int = 1024 * 1024  # larger frames close the socket (1009)
    max_body_bytes: int = 256 * 1024           # one REST body
    max_text_chars: int = 64 * 1024            # one message text
    max_connections: int = 4096
    outbox_frames: int = 1024                  # per connection; a fuller outbox is a slow consumer
    messages_per_second: int = 1000            # per peer, token bucket
    message_burst: int = 2000
    pending_asks_per_peer: int = 1000          # open asks one asker may have waiting at once
    inbox_per_peer: int = 10_000               # notifies waiting in one peer's inbox (each broadcast copy counts)
    open_questions_per_peer: int = 100         # tool-permission questions one agent may have waiting at once
    header_timeout_s: int = 10                 # a request's line and headers must arrive within this
    body_idle_timeout_s: int = 30              # the longest wait for the next part of a request body

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


# What happens past each limit, for the manual's generated table (docs/limits.md).
LIMIT_MEANINGS: dict[str, str] = {
    "max_frame_bytes": "`error frame_too_large`; the connection lives on",
    "transport_max_frame_bytes": "the socket is closed with 1009",
    "max_body_bytes": "`413 body_too_large`",
    "max_text_chars": "`text_too_long` (413)",
    "max_connections": "`too_many_connections`, close 4503",
    "outbox_frames": "per connection: the peer is a slow consumer, closed with 4008; its messages stay in its inbox",
    "messages_per_second": "per peer, a token bucket refilled at this rate: `rate_limited` (429)",
    "message_burst": "the bucket's size: this many messages at once before `rate_limited`",
    "pending_asks_per_peer": "open asks one asker may have: `too_many_pending_asks` (429), nothing written",
    "inbox_per_peer": "messages waiting in one peer's inbox, each copy of a broadcast counted for its recipient: "
                      "`inbox_full` (507) for that recipient, nothing queued for it",
    "open_questions_per_peer": "questions one agent may have waiting for a person: `too_many_questions` (429), "
                               "nothing written",
    "header_timeout_s": "seconds for a request's line and headers: `408 request_timeout`, the connection closed",
    "body_idle_timeout_s": "seconds without a byte of a request body (an upload too): `408 request_timeout`, "
                           "nothing written",
}


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Where the hub alerts people to a question that waits (see hub.runtime.alerts)."""
    webhook_url: str | None = None
    webhook_secret: bytes = field(default=b"", repr=False)
    ntfy_url: str | None = None
    ntfy_token: str | None = field(default=None, repr=False)
    desktop: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or self.ntfy_url or self.desktop)


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8377
    uds: Path | None = None
    redis_url: str | None = None
    ephemeral: bool = False
    replica_acks: int = 0           # writes answered once this many replicas have them (WAIT)
    node: str = "node-1"
    node_lease_s: float = 10.0      # on a shared store: a node silent this long is gone, its peers offline
    heartbeat_s: float = 20.0       # WebSocket ping interval; a dead peer is offline within 2x this
    hello_timeout_s: float = 10.0
    queue_ttl_s: int = 7 * 24 * 3600  # an undelivered notify waits this long in an inbox
    trace_retention_s: int = 7 * 24 * 3600
    idempotency_ttl_s: int = 24 * 3600
    sweep_interval_s: float = 5.0
    link_timeout_s: float = 10.0    # a pane link waits this long for its transport, then is undone
    starts_bridge: bool = False     # `repowire serve` runs a pane bridge of its own beside the hub
    advertise_url: str | None = None   # where the other hub nodes reach this one (default: http://host:port)
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    asks: AskPolicy = field(default_factory=AskPolicy)
    questions: QuestionPolicy = field(default_factory=QuestionPolicy)
    schedules: SchedulePolicy = field(default_factory=SchedulePolicy)
    jobs: JobPolicy = field(default_factory=JobPolicy)
    attachments: AttachmentPolicy = field(default_factory=AttachmentPolicy)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def mesh_node(self) -> str:
        """This node's name on a store other nodes may share (`--redis-url`); '' on the embedded one."""
        return self.node if self.redis_url else ""

    @property
    def local_url(self) -> str:
        """Where a client on this machine reaches the hub (a wildcard listener by loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def node_url(self) -> str:
        """Where the other hub nodes reach this one."""
        return self.advertise_url or self.local_url


def parse_limits(overrides: list[str]) -> Limits:
    """Limits from `NAME=VALUE` strings; raises ValueError naming what is wrong."""
    values: dict[str, int] = {}
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep or name not in Limits.__slots__:
            raise ValueError(f"unknown limit {item!r}; known limits: {', '.join(Limits.__slots__)}")
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"limit {name} takes a whole number above 0, not {raw!r}")
        values[name] = int(raw)
    return Limits(**values)
