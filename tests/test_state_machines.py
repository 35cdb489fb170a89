"""The hub's state machines in process, with no event loop, store or socket: each transition
is a function from a state and an event to the next state and the effects the runtime carries
out (the way python-websockets tests its Protocol apart from any I/O)."""

from __future__ import annotations

import pytest

from hub.core.asks import (
    ACKED,
    ANSWERED,
    CLOSE_STAGE,
    EXPIRED,
    PENDING,
    REPLIED,
    Announce,
    AskState,
    AskView,
    DropInFlight,
    MarkClosed,
    PushNotice,
    Unindex,
    WakeWaiters,
    check_closer,
    closed_state,
    on_close_answer,
    on_close_won,
)
from hub.core.delivery import AppendTrace, Confirm, InFlight, on_connection_lost, on_receipt, overall_state
from hub.core.errors import HubError
from hub.core.presence import Presence, connected, gone, said, with_questions
from hub.core.questions import QuestionState, on_decide_answer
from hub.core.trace import Stage
from schemas.dashboard import MessagePreview
from schemas.errors import ErrorCode
from schemas.frames import Delivery, PeerRef, RecipientState
from schemas.rest import TraceStage

PEER = "a" * 32
MESSAGE = "b" * 32
TRACE = "c" * 32
ASK = "d" * 32
NODE = "node-1"


# ---- a delivery to one recipient ---------------------------------------------------------------

def receipt(status: str, reason: str | None = None, inflight: InFlight | None = InFlight(7, 1_000, TRACE)):
    return on_receipt(inflight, message_id=MESSAGE, peer_id=PEER, status=status, reason=reason, now=2_000, node=NODE)


@pytest.mark.parametrize("status", ["received", "injected"])
def test_a_receipt_confirms_the_delivery_and_ends_its_trace(status):
    assert receipt(status) == [
        Confirm(PEER, 7),
        AppendTrace(TRACE, (TraceStage(stage="sent", at=1_000, node=NODE, peer_id=PEER, seq=7),
                            TraceStage(stage=status, at=2_000, node=NODE, peer_id=PEER))),
    ]


def test_a_failed_receipt_confirms_with_its_reason_or_recipient_failed():
    assert receipt("failed", "pane_gone")[1].stages[1] == TraceStage(stage="failed", at=2_000, node=NODE, peer_id=PEER, reason="pane_gone")
    assert receipt("failed")[1].stages[1].reason == "recipient_failed"
    assert isinstance(receipt("failed")[0], Confirm)


def test_a_held_delivery_stays_in_the_inbox():
    effects = receipt("held", "pane_changed")
    assert not any(isinstance(e, Confirm) for e in effects)
    assert effects == [AppendTrace(TRACE, (TraceStage(stage="sent", at=1_000, node=NODE, peer_id=PEER, seq=7),
                                           TraceStage(stage="held", at=2_000, node=NODE, peer_id=PEER, reason="pane_changed")))]


def test_a_receipt_for_a_delivery_no_longer_in_flight_ends_nothing():
    effects = receipt("received", inflight=None)
    assert effects == [AppendTrace(MESSAGE, (TraceStage(stage="late_receipt", at=2_000, node=NODE, peer_id=PEER, status="received"),))]


def test_a_lost_connection_leaves_its_deliveries_queued_and_traced_as_sent():
    effects = on_connection_lost([InFlight(1, 10, "t1"), InFlight(2, 20, "t2")], peer_id=PEER, node=NODE)
    assert effects == [AppendTrace("t1", (TraceStage(stage="sent", at=10, node=NODE, peer_id=PEER, seq=1),)),
                       AppendTrace("t2", (TraceStage(stage="sent", at=20, node=NODE, peer_id=PEER, seq=2),))]
    assert on_connection_lost([], peer_id=PEER, node=NODE) == []


@pytest.mark.parametrize(("states", "overall"), [
    (["queued", "delivered", "failed"], "delivered"),
    (["queued", "failed"], "queued"),
    (["failed", "failed"], "failed"),
    (["queued"], "queued"),
])
def test_what_a_message_reports_from_its_recipients(states, overall):
    assert overall_state([RecipientState(peer_id=PEER, name=f"p{i}", state=s) for i, s in enumerate(states)]) == overall


# ---- an ask's life --------------------------------------------------------------------------------

def test_the_store_decides_which_close_wins():
    assert on_close_answer(ASK, "ok") is None
    refused = {status: on_close_answer(ASK, status) for status in
               ("missing", "forbidden", "answered", "expired", "acked", "replied", "failed", "something-else")}
    assert {status: error.code for status, error in refused.items() if error is not None} == {
        "missing": ErrorCode.ASK_NOT_FOUND, "forbidden": ErrorCode.FORBIDDEN, "answered": ErrorCode.ALREADY_ANSWERED,
        "expired": ErrorCode.EXPIRED, "acked": ErrorCode.ALREADY_CLOSED, "replied": ErrorCode.ALREADY_CLOSED,
        "failed": ErrorCode.ALREADY_CLOSED, "something-else": ErrorCode.ALREADY_CLOSED}
    assert refused["answered"].details == {"correlation_id": ASK, "state": "answered"}


def test_each_close_has_its_stage_and_a_peer_closes_only_as_acked_replied_or_answered():
    assert {state: CLOSE_STAGE[state] for state in (ACKED, REPLIED, ANSWERED, EXPIRED)} == {
        ACKED: Stage.ACKED, REPLIED: Stage.REPLIED, ANSWERED: Stage.ANSWERED, EXPIRED: Stage.EXPIRED}
    assert [closed_state(s) for s in ("acked", "replied", "answered")] == ["acked", "replied", "answered"]
    for state in (PENDING, EXPIRED, AskState.FAILED):
        with pytest.raises(ValueError):
            closed_state(state)


def test_only_the_asked_peer_closes_an_open_ask():
    ask = AskView(ASK, asker="e" * 32, recipient=PEER, state=PENDING)
    check_closer(ask, PEER)
    with pytest.raises(HubError) as refused:
        check_closer(ask, "e" * 32)
    assert refused.value.code is ErrorCode.FORBIDDEN
    with pytest.raises(HubError) as closed:
        check_closer(AskView(ASK, asker="e" * 32, recipient=PEER, state=ANSWERED), PEER)
    assert closed.value.code is ErrorCode.ALREADY_ANSWERED


ASKER = "e" * 32


def won(state: str, *, tracked: bool = True, queued_seq: int | None = 4, notice_seq: int | None = 9):
    notice = Delivery(kind="answer" if state == ANSWERED else "ack", message_id=MESSAGE, correlation_id=ASK,
                      sent_at=2_000, from_=PeerRef(peer_id=PEER, name="bob", circle="c"), text="done")
    result = {"state": state, "at": 2_000, "by": PEER if state != EXPIRED else None}
    return result, on_close_won(AskView(ASK, asker=ASKER, recipient=PEER, state=PENDING), state, tracked=tracked,
                                queued_seq=queued_seq if tracked else None,
                                delivery_id="f" * 32 if tracked else None, notice=notice, notice_seq=notice_seq,
                                result=result, now=2_000, node=NODE)


def test_a_won_close_takes_the_queued_ask_back_ends_the_trace_and_tells_the_asker():
    result, effects = won(ANSWERED)
    assert effects == [
        Unindex(PEER, ASK),
        Confirm(PEER, 4),                 # a queued ask is never delivered now
        DropInFlight(PEER, "f" * 32),     # nor does a receipt for it end anything
        AppendTrace(ASK, (TraceStage(stage="answered", at=2_000, node=NODE, by=PEER),),
                    MessagePreview(kind="answer", message_id=MESSAGE, from_=PeerRef(peer_id=PEER, name="bob",
                                                                                     circle="c"),
                                   to=ASKER, at=2_000, text="done", correlation_id=ASK)),
        MarkClosed(ASKER, ASK),
        Announce(ASK, result),
        PushNotice(ASKER, 9, ASK),
        WakeWaiters(result),
    ]


def test_a_close_for_an_ask_held_by_another_node_leaves_its_delivery_to_that_node():
    _, effects = won(ACKED, tracked=False)
    assert [type(e) for e in effects] == [Unindex, AppendTrace, MarkClosed, Announce, PushNotice]


def test_an_expiry_is_traced_with_its_reason_and_no_preview_and_tells_only_who_is_owed_it():
    result, effects = won(EXPIRED, notice_seq=None)
    (trace,) = [e for e in effects if isinstance(e, AppendTrace)]
    assert trace.stages == (TraceStage(stage="expired", at=2_000, node=NODE, reason="deadline"),)
    assert trace.message is None
    assert not [e for e in effects if isinstance(e, PushNotice)]
    assert effects[-1] == WakeWaiters(result)


# ---- a blocking question's life ----------------------------------------------------------------

def test_the_first_decision_wins_and_a_late_one_says_why_it_lost():
    assert on_decide_answer(ASK, "ok", None) is None
    assert on_decide_answer(ASK, "missing", None).code is ErrorCode.QUESTION_NOT_FOUND
    assert on_decide_answer(ASK, "mismatch", None).code is ErrorCode.CONTENT_MISMATCH
    assert on_decide_answer(ASK, "decided", "abandoned").code is ErrorCode.QUESTION_ABANDONED
    assert on_decide_answer(ASK, "decided", "timeout").code is ErrorCode.EXPIRED
    late = on_decide_answer(ASK, "decided", "human")
    assert late.code is ErrorCode.ALREADY_ANSWERED and late.details == {"correlation_id": ASK, "answered_by": "human"}
    assert [s.value for s in QuestionState] == ["pending", "decided", "abandoned"]


# ---- a peer's presence ----------------------------------------------------------------------------

def test_presence_transitions():
    assert connected() == Presence("online", "")
    assert gone("slow_consumer") == Presence("offline", "slow_consumer")
    assert [said(s) for s in ("online", "busy", "awaiting_input")] == [
        Presence("online", ""), Presence("busy", ""), Presence("awaiting_input", "")]
    for refused in ("offline", "away", ""):
        with pytest.raises(HubError) as error:
            said(refused)
        assert error.value.code is ErrorCode.INVALID_FRAME


@pytest.mark.parametrize(("current", "waiting", "after"), [
    ("online", True, "awaiting_input"), ("busy", True, "awaiting_input"), ("awaiting_input", True, None),
    ("awaiting_input", False, "busy"), ("busy", False, None), ("online", False, None),
])
def test_an_agent_awaits_input_while_one_of_its_questions_waits_for_a_person(current, waiting, after):
    assert with_questions(current, waiting) == after
