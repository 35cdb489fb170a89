"""Delivery-trace stages and what each one means.

A message's trace is an ordered list of stages. For a notify:
accepted -> routed -> queued? -> sent -> received | injected | failed(reason) | expired.
For an ask (traced under its correlation id): accepted -> routed -> queued? -> sent ->
received -> acked | replied | answered | expired, then the reply's own sent/received.
A pane peer's delivery may be `held` (not typed, still queued) before it is sent again.
Looking into a pane and sending it keys are traced too (kinds `pane_output`, `pane_keys`):
accepted -> received | injected | failed.
For a tool-permission question (kind `question`): accepted -> routed (to a policy rule or to
people) -> joined* / waiter_lost* -> answered (by a person or a policy) | expired (deny on
timeout) | failed.
A broadcast has one `accepted` and then stages per recipient (each carries `peer_id`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from schemas.rest import TraceStage


class Stage(StrEnum):
    ACCEPTED = "accepted"
    ROUTED = "routed"
    QUEUED = "queued"
    SENT = "sent"
    RECEIVED = "received"
    INJECTED = "injected"
    FAILED = "failed"
    EXPIRED = "expired"
    ACKED = "acked"
    REPLIED = "replied"
    ANSWERED = "answered"
    # A receipt for a delivery the hub had already settled (confirmed by a resume cursor,
    # expired, or sent on an earlier connection): it lands in the trace but ends nothing.
    LATE_RECEIPT = "late_receipt"
    # Tool-permission questions: the same tool call asked again joined the open question; a
    # caller stopped waiting (its connection closed, or the hub restarted under it).
    JOINED = "joined"
    WAITER_LOST = "waiter_lost"
    # A pane transport did not type a delivery and kept it queued (the pane changed hands or
    # closed): the reason says why. Not final: it is delivered when the peer is back.
    HELD = "held"


# The stage that ends a trace. A notify ends when its recipient confirms it (or it fails or
# expires); an ask ends when it is closed: acked, replied, answered or expired.
FINAL_STAGES = frozenset({Stage.RECEIVED, Stage.INJECTED, Stage.FAILED, Stage.EXPIRED})
ASK_FINAL_STAGES = frozenset({Stage.ACKED, Stage.REPLIED, Stage.ANSWERED, Stage.EXPIRED, Stage.FAILED})


def final_stages(kind: str) -> frozenset[Stage]:
    """The stages that end a trace of this kind (a question ends like an ask)."""
    return ASK_FINAL_STAGES if kind in ("ask", "question") else FINAL_STAGES


class Reason(StrEnum):
    """Reason codes carried by `failed`, `expired` and some `queued` stages."""
    RECIPIENT_OFFLINE = "recipient_offline"
    QUEUE_TTL = "queue_ttl"
    RESUMED = "resumed"              # the peer's resume cursor said it already had the message
    PEER_DELETED = "peer_deleted"
    RECIPIENT_FAILED = "recipient_failed"
    TAKEN = "taken"                  # fetched over REST by a peer with no connection (its Stop hook)
    INBOX_FULL = "inbox_full"        # the recipient's inbox held as many messages as it may
    HOLDER_GONE = "holder_gone"      # the node said to hold the recipient heard nothing: it is gone


def stage_entry(stage: Stage, at_ms: int, node: str, **extra: str | int | None) -> TraceStage:
    """One stage of a trace; the facts given empty are left out (None is every fact's default,
    which the encoder leaves out; an empty string is dropped here). A fact TraceStage does not
    list is a TypeError here, so the ledger never holds a field its readers do not know."""
    facts: dict[str, Any] = extra if "" not in extra.values() else {k: v for k, v in extra.items() if v != ""}
    return TraceStage(stage=stage.value, at=at_ms, node=node, **facts)
