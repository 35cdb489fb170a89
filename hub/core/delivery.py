"""A delivery's life, as a state machine with no I/O: states, and transitions that return the
effects the runtime carries out (store writes, trace stages), the way python-websockets keeps
its protocol apart from its sockets.

For one recipient, a message is

    queued --pushed to a live connection--> in flight (sent)
    in flight --receipt received | injected--> received | injected   (confirmed: out of the inbox)
    in flight --receipt failed-->             failed                 (confirmed, with a reason)
    in flight --receipt held-->               held                   (stays in the inbox)
    in flight --connection lost-->            queued again           (the trace says sent)

A receipt for a delivery no longer in flight (settled, or from an earlier connection) ends
nothing: it is traced as `late_receipt`, because a trace has one final stage.

The message as a whole reports `delivered` when a live connection took it for at least one
recipient, `queued` when it waits in at least one inbox and no connection took it yet, and
`failed` when it reached no inbox (every recipient's inbox was full).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hub.core.trace import Reason, Stage, stage_entry
from schemas.dashboard import MessagePreview
from schemas.frames import AskChild, DeliveryState, RecipientState
from schemas.rest import TraceStage


@dataclass(frozen=True, slots=True)
class InFlight:
    """A delivery pushed to a connection and not yet confirmed."""
    seq: int
    sent_at: int
    trace_id: str


@dataclass(frozen=True, slots=True)
class Confirm:
    """Effect: take the delivery at `seq` out of the peer's inbox."""
    peer_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class AppendTrace:
    """Effect: add these stages to a trace (`message`: what the dashboards show of a message
    that starts or closes with them)."""
    trace_id: str
    stages: tuple[TraceStage, ...]
    message: MessagePreview | None = None


Effect = Confirm | AppendTrace


def on_receipt(inflight: InFlight | None, *, message_id: str, peer_id: str, status: str, reason: str | None,
               now: int, node: str) -> list[Effect]:
    """The effects of a receipt, given what the connection had in flight for that message."""
    if inflight is None:   # its trace is the message's own (asks keep theirs by correlation id)
        return [AppendTrace(message_id, (stage_entry(Stage.LATE_RECEIPT, now, node, peer_id=peer_id, status=status,
                                                     reason=reason),))]
    sent = stage_entry(Stage.SENT, inflight.sent_at, node, peer_id=peer_id, seq=inflight.seq)
    if status == "held":   # not delivered, and not to be lost: it stays in the inbox
        return [AppendTrace(inflight.trace_id, (sent, stage_entry(Stage.HELD, now, node, peer_id=peer_id,
                                                                  reason=reason)))]
    final = Stage(status) if status in ("received", "injected") else Stage.FAILED
    ended = stage_entry(final, now, node, peer_id=peer_id,
                        reason=(reason or Reason.RECIPIENT_FAILED) if final is Stage.FAILED else reason)
    return [Confirm(peer_id, inflight.seq), AppendTrace(inflight.trace_id, (sent, ended))]


def on_connection_lost(inflight: Iterable[InFlight], *, peer_id: str, node: str) -> list[Effect]:
    """A connection closed with deliveries unconfirmed: they stay in the inbox (the next
    connection gets them again) and each trace says they were sent."""
    return [AppendTrace(d.trace_id, (stage_entry(Stage.SENT, d.sent_at, node, peer_id=peer_id, seq=d.seq),))
            for d in inflight]


def overall_state(recipients: Iterable[RecipientState | AskChild]) -> DeliveryState:
    states = {r.state for r in recipients}
    if "delivered" in states:
        return "delivered"
    if "queued" in states:
        return "queued"
    return "failed"
