"""The life of an ask, as pure rules: deadlines, who may close it, and how an answer must fit
its question.

pending --ack--> acked | replied (ack with text)
pending --answer--> answered          (only asks that carry a question)
pending --deadline--> expired
An ask is closed once; every later ack or answer is refused and changes nothing.

The store decides which close wins (`on_close_answer`); what a won close then sets off is
`on_close_won`'s list of effects, which the runtime carries out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from hub.core.delivery import AppendTrace, Confirm
from hub.core.errors import HubError
from hub.core.feed import message_preview
from hub.core.trace import Stage, stage_entry
from schemas.errors import ErrorCode
from schemas.frames import Delivery


class AskState(StrEnum):
    PENDING = "pending"
    ACKED = "acked"
    REPLIED = "replied"
    ANSWERED = "answered"
    EXPIRED = "expired"
    FAILED = "failed"


PENDING, ACKED, REPLIED, ANSWERED, EXPIRED, FAILED = (AskState.PENDING, AskState.ACKED, AskState.REPLIED,
                                                      AskState.ANSWERED, AskState.EXPIRED, AskState.FAILED)
CLOSED_STATES = frozenset({ACKED, REPLIED, ANSWERED, EXPIRED, FAILED})
# The stage a close writes to the ask's trace, and the kind of notice the asker gets.
CLOSE_STAGE: dict[str, Stage] = {ACKED: Stage.ACKED, REPLIED: Stage.REPLIED, ANSWERED: Stage.ANSWERED, EXPIRED: Stage.EXPIRED}
ClosedByPeer = Literal["acked", "replied", "answered"]


def closed_state(state: str) -> ClosedByPeer:
    """The state a peer's ack or answer left an ask in."""
    if state == ACKED:
        return "acked"
    if state == REPLIED:
        return "replied"
    if state == ANSWERED:
        return "answered"
    raise ValueError(f"{state!r} is not a state a peer closes an ask in")
OUTCOMES = ("accepted", "declined", "dismissed")


@dataclass(frozen=True, slots=True)
class AskPolicy:
    default_timeout_s: float = 300.0
    max_timeout_s: float = 3600.0
    reply_ttl_s: float = 24 * 3600.0
    max_fanout: int = 16


def deadline_ms(now_ms: int, requested_s: float | None, policy: AskPolicy) -> int:
    if requested_s is not None and requested_s <= 0:
        raise HubError(ErrorCode.INVALID_FRAME, "timeout_s must be above 0", {"timeout_s": requested_s})
    timeout = policy.default_timeout_s if requested_s is None else requested_s
    if timeout > policy.max_timeout_s:
        raise HubError(ErrorCode.INVALID_FRAME, f"timeout_s is at most {policy.max_timeout_s:g}",
                       {"timeout_s": requested_s, "max_timeout_s": policy.max_timeout_s})
    return now_ms + int(timeout * 1000)


def validate_question(question: dict[str, Any] | None) -> None:
    """A question as sent with an ask: kind, prompt, and options for a choice."""
    if question is None:
        return
    kind = question.get("kind")
    options = question.get("options") or []
    if kind == "choice":
        if not options:
            raise HubError(ErrorCode.INVALID_FRAME, "a choice question needs options")
        ids = [o["id"] for o in options]
        if len(set(ids)) != len(ids):
            raise HubError(ErrorCode.INVALID_FRAME, "option ids must be unique", {"options": ids})
    elif options:
        raise HubError(ErrorCode.INVALID_FRAME, f"a {kind} question takes no options")


def check_closer(ask: AskView, actor_id: str) -> None:
    """Only the asked peer may ack or answer; a closed ask stays closed."""
    if actor_id != ask.recipient:
        raise HubError(ErrorCode.FORBIDDEN, "only the peer that was asked may ack or answer this ask",
                       {"correlation_id": ask.correlation_id})
    ensure_open(ask)


def ensure_open(ask: AskView) -> None:
    refusal = closed_refusal(ask.correlation_id, ask.state)
    if refusal is not None:
        raise refusal


def closed_refusal(correlation_id: str, state: str) -> HubError | None:
    """Why an ask in `state` cannot be closed again (None: it is open)."""
    details = {"correlation_id": correlation_id, "state": state}
    if state == ANSWERED:
        return HubError(ErrorCode.ALREADY_ANSWERED, "this question was already answered", details)
    if state == EXPIRED:
        return HubError(ErrorCode.EXPIRED, "this ask passed its deadline", details)
    if state in CLOSED_STATES:
        return HubError(ErrorCode.ALREADY_CLOSED, f"this ask is already closed ({state})", details)
    return None


def on_close_answer(correlation_id: str, store_status: str) -> HubError | None:
    """What the store's answer to a close means (the close script compares and sets the ask's
    state in one step, so two closers never both win): None when this close won; otherwise
    the error its closer gets. `store_status` is `ok`, `missing`, `forbidden`, or the state
    the ask was already in."""
    if store_status == "ok":
        return None
    if store_status == "missing":
        return HubError(ErrorCode.ASK_NOT_FOUND, f"no ask with correlation id {correlation_id}",
                        {"correlation_id": correlation_id})
    if store_status == "forbidden":
        return HubError(ErrorCode.FORBIDDEN, "only the peer that was asked may ack or answer this ask")
    return closed_refusal(correlation_id, store_status) or HubError(
        ErrorCode.ALREADY_CLOSED, f"this ask is not open ({store_status})",
        {"correlation_id": correlation_id, "state": store_status})


def check_answer(ask: AskView, option_id: str | None, text: str | None, outcome: str | None) -> None:
    """An answer must fit the question it answers."""
    question = ask.question
    if question is None:
        raise HubError(ErrorCode.NOT_A_QUESTION, "this ask carries no question; ack it instead",
                       {"correlation_id": ask.correlation_id})
    kind = question["kind"]
    if kind == "choice":
        ids = [o["id"] for o in question.get("options") or []]
        if option_id not in ids:
            raise HubError(ErrorCode.INVALID_OPTION, f"option_id must be one of {ids}",
                           {"option_id": option_id, "options": ids})
    elif option_id is not None:
        raise HubError(ErrorCode.INVALID_OPTION, f"a {kind} question has no options", {"option_id": option_id})
    if kind == "text" and not text:
        raise HubError(ErrorCode.INVALID_FRAME, "a text question is answered with `text`")
    if outcome is not None and outcome not in OUTCOMES:
        raise HubError(ErrorCode.INVALID_FRAME, f"outcome is one of {list(OUTCOMES)}", {"outcome": outcome})


@dataclass(slots=True)
class AskView:
    """An ask as the rules need it (the store keeps more)."""
    correlation_id: str
    asker: str
    recipient: str
    state: str
    question: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unindex:
    """Effect: the ask leaves the recipient's list of asks to answer."""
    recipient: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class DropInFlight:
    """Effect: a receipt for the ask's delivery, if one still comes, ends nothing."""
    peer_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class MarkClosed:
    """Effect: the close's final trace stage is written (it leaves the asker's list of closes
    to mend after a crash, in the same packet as the stage)."""
    asker: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Effect: every node hears that the ask closed, with its result."""
    correlation_id: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PushNotice:
    """Effect: hand the asker its notice (the ack, reply, answer or expiry), queued at `seq`;
    its receipt ends the ask's trace (`correlation_id`)."""
    asker: str
    seq: int
    correlation_id: str


@dataclass(frozen=True, slots=True)
class WakeWaiters:
    """Effect: whoever waits on this node for the ask's result gets it."""
    result: dict[str, Any]


CloseEffect = Unindex | Confirm | DropInFlight | AppendTrace | MarkClosed | Announce | PushNotice | WakeWaiters


def on_close_won(view: AskView, state: str, *, tracked: bool, queued_seq: int | None, delivery_id: str | None,
                 notice: Delivery, notice_seq: int | None, result: dict[str, Any], now: int,
                 node: str) -> list[CloseEffect]:
    """What a close that won sets off. `tracked`: this node held the ask open (it knows where
    its delivery waits: `queued_seq` in the recipient's inbox, `delivery_id` maybe in flight);
    `notice_seq`: where the store queued the asker's notice (None: nowhere, e.g. an expiry no
    one is told of)."""
    cid = view.correlation_id
    effects: list[CloseEffect] = [Unindex(view.recipient, cid)]
    if queued_seq is not None:   # a queued ask is never delivered now
        effects.append(Confirm(view.recipient, queued_seq))
        if delivery_id is not None:
            effects.append(DropInFlight(view.recipient, delivery_id))
    closing = stage_entry(CLOSE_STAGE[state], now, node, by=result.get("by"),
                          reason="deadline" if state == EXPIRED else None)
    effects += [AppendTrace(cid, (closing,), message_preview(notice, to=view.asker) if state != EXPIRED else None),
                MarkClosed(view.asker, cid), Announce(cid, result)]
    if notice_seq:
        effects.append(PushNotice(view.asker, notice_seq, cid))
    if tracked:
        effects.append(WakeWaiters(result))
    return effects
