"""Asks at run time: request/reply with deadlines, acks, replies and structured answers.

An ask is written (record, deadline, indexes, the delivery to the recipient's inbox, the first
trace stages) in one batch before `accepted`. Closing it, by ack, answer or deadline, is one
store script that also queues the notice for the asker, so a close and its notice never part
and an ask is closed exactly once. Open asks are kept in memory for the hot path and for the
deadline timer, which fires from one task sleeping until the earliest deadline; after a
restart the open asks are loaded again and passed deadlines fire at once.

On a mesh, the node that opened an ask tracks it; any node may close it (the store script
decides once), and the closer tells the others on the node bus (`closed_elsewhere`), so the
opener forgets it and whoever waits there hears at once. When a node is lost, the nodes that
remain take over the deadlines of its peers' asks (`adopt`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from hub.core.asks import (
    ACKED,
    ANSWERED,
    CLOSE_STAGE,
    EXPIRED,
    PENDING,
    REPLIED,
    Announce,
    AskPolicy,
    AskView,
    CloseEffect,
    DropInFlight,
    MarkClosed,
    PushNotice,
    Unindex,
    WakeWaiters,
    check_answer,
    check_closer,
    closed_state,
    deadline_ms,
    on_close_answer,
    on_close_won,
    validate_question,
)
from hub.core.attachments import ask_ref, attachment_refs, fingerprint_part, inbox_ref
from hub.core.delivery import AppendTrace, Confirm, overall_state
from hub.core.errors import HubError
from hub.core.feed import message_preview
from hub.core.peers import PeerRecord
from hub.core.trace import Stage, stage_entry
from hub.runtime.credentials import HUB_AS_SENDER, OPERATOR_ID, Sender
from hub.runtime.deadlines import DeadlineTimer
from hub.runtime.futures import then
from hub.runtime.hub import Hub, grant_cmds
from hub.runtime.idempotency import Claimed
from hub.store.asks import AskStore, parse_close
from hub.store.batch import Batch
from hub.store.state import InboxEntry, StoreState, parse_enqueued
from hub.store.writer import Command
from schemas.codec import encode
from schemas.errors import ErrorCode
from schemas.frames import AskChild, Delivery, DeliveryKind, Question
from schemas.rest import AskAccepted, AskGroup, Closed, PendingAsks
from schemas.rest import AskView as AskAsRead

log = logging.getLogger(__name__)

MEND_RETRY_S = 1.0   # how often closes whose final writes failed are tried again


def _quiet(written: asyncio.Future[Any]) -> None:
    """Close writes with no closings entry to mend them from: a failure is logged."""
    if not written.cancelled() and written.exception() is not None:
        log.warning("ask close writes failed: %s", written.exception())

INBOX_GRACE_MS = 60_000   # an ask's inbox entry outlives its deadline by this much: closing it removes it first

NOTICE_KINDS = ("reply", "ack", "answer")
KIND_OF_CLOSE: dict[str, DeliveryKind] = {ACKED: "ack", REPLIED: "reply", ANSWERED: "answer"}
MAX_WAIT_S = 60.0


@dataclass(slots=True)
class OpenAsk:
    correlation_id: str
    message_id: str
    asker: str
    recipient: str
    deadline: int
    question: dict | None
    seq: int | None = None  # the ask's place in the recipient's inbox, known in memory only
    waiters: list[asyncio.Future] = field(default_factory=list)

    def view(self) -> AskView:
        return AskView(self.correlation_id, self.asker, self.recipient, PENDING, self.question)


def ack_body(text: str | None, attachments: list[dict] | None = None) -> tuple[str, dict]:
    """A bare ack closes as `acked`; an ack with text or attachments as `replied`."""
    if not text and not attachments:
        return ACKED, {}
    body: dict = {"text": text} if text else {}
    if attachments:
        body["attachments"] = attachments
    return REPLIED, body


def answer_body(option_id: str | None, text: str | None, outcome: str | None,
                attachments: list[dict] | None = None) -> dict:
    return {k: v for k, v in (("option_id", option_id), ("text", text), ("outcome", outcome),
                              ("attachments", attachments or None)) if v is not None}


def _closed(closed: Closed | None) -> Closed:
    assert closed is not None, "a peer's close answers with the notice it queued"
    return closed


def _record_view(record: dict) -> AskView:
    question = orjson.loads(record["question"]) if record.get("question") else None
    return AskView(record["correlation_id"], record["asker"], record["recipient"], record["state"], question)


class AskService:
    def __init__(self, hub: Hub, state: StoreState, store: AskStore, policy: AskPolicy):
        self.hub = hub
        self.state = state   # the shared store: inboxes, traces, the writer
        self.store = store
        self.policy = policy
        self.open: dict[str, OpenAsk] = {}
        self._open_by_asker: Counter = Counter()
        self.deadlines = DeadlineTimer(hub.now_ms, self._expire, "ask-deadlines")
        self._telling: set[asyncio.Task[None]] = set()   # notices to repliers on their way
        # closes of this process whose final writes (trace stage, closings entry) the store did
        # not take: mended once it answers again (_mend_unsettled), not only at the next start
        self._unsettled: set[tuple[str, str]] = set()
        self._mending: asyncio.Task[None] | None = None
        hub.inboxes.expiry_listeners.append(self._on_notices_expired)
        hub.inboxes.delivery_filters.append(self._closed_asks)

    # ---- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        everyone = [*self.hub.peers, OPERATOR_ID]
        await self.adopt(everyone)
        await self.mend_closings(everyone)
        self.deadlines.start()

    async def mend_closings(self, askers: list[str], mine: set[str] | None = None) -> int:
        """Closes whose process died before it wrote their final trace stage (kept in the
        asker's closings index until it is written): write it now, from the stored ask. `mine`:
        correlation ids of this process's own closes whose final writes failed (mended too)."""
        hub = self.hub
        gone: dict[str, bool] = {}   # closing process -> gone (one lease read per process, not per close)
        cmds, mended = [], 0
        for asker, cid, by in await self.store.closings(askers):
            if mine is not None and by == hub.process_ref and cid in mine:
                gone[by] = True   # this process: its write failed, nothing of it is on its way
            if by not in gone:
                gone[by] = await hub.process_gone(by)
            if not gone[by]:
                continue
            record = await self.store.read(cid, asker)
            cmds.append(self.store.closed_cmd(asker, cid, by))
            if record is not None and record["state"] in CLOSE_STAGE:
                result = orjson.loads(record["result"]) if record.get("result") else {}
                cmds.append(self.state.trace_cmd(cid, [stage_entry(
                    CLOSE_STAGE[record["state"]], int(record.get("closed_at") or hub.now_ms()), by.partition("/")[0],
                    by=result.get("by"), reason="deadline" if record["state"] == EXPIRED else None, recovered=True)]))
                mended += 1
        if cmds:
            await self.state.writer.write(*cmds)
        return mended

    async def adopt(self, askers: list[str]) -> int:
        """Track the open asks of these askers (at start, every peer's; later, those of a lost
        node's peers): their deadlines fire here. Returns how many were new to this node."""
        deadlines = await self.store.open_deadlines(askers)
        adopted = 0
        for record in await self.store.read_many([cid for cid, _ in deadlines if cid not in self.open]):
            if record.get("state") != PENDING or record["correlation_id"] in self.open:
                continue
            ask = OpenAsk(record["correlation_id"], record["message_id"], record["asker"], record["recipient"],
                          int(record["deadline"]), orjson.loads(record["question"]) if record.get("question") else None)
            self._track(ask)
            adopted += 1
        return adopted

    async def stop(self) -> None:
        self.deadlines.stop()
        if self._mending is not None:
            self._mending.cancel()
        for ask in self.open.values():
            for waiter in ask.waiters:
                if not waiter.done():
                    waiter.cancel()

    async def open_inbound_counts(self, peer_ids: list[str]) -> dict[str, int]:
        """How many open asks wait on each peer's reply, whichever node opened them."""
        return await self.store.inbound_counts(peer_ids)

    async def _closed_asks(self, entries: list[InboxEntry]) -> set[int]:
        """Delivery filter: an ask closed while it waited in an inbox is not delivered any more.
        Asks this node does not track (opened before a restart, or by another node) are looked
        up in the store."""
        unknown = [e for e in entries if e.kind == "ask" and e.trace_id not in self.open]
        if not unknown:
            return set()
        askers = [orjson.loads(e.payload).get("from", {}).get("peer_id", "") for e in unknown]
        states = await self.store.states([(asker, e.trace_id) for asker, e in zip(askers, unknown)])
        return {e.seq for e, state in zip(unknown, states) if state != PENDING}

    def _track(self, ask: OpenAsk) -> None:
        if ask.correlation_id not in self.open:
            self._open_by_asker[ask.asker] += 1
        self.open[ask.correlation_id] = ask
        self.deadlines.track(ask.correlation_id, ask.deadline)

    def _check_pending(self, asker: str, adding: int) -> None:
        limit = self.hub.settings.limits.pending_asks_per_peer
        have = self._open_by_asker[asker]
        if have + adding > limit:
            raise HubError(ErrorCode.TOO_MANY_PENDING_ASKS,
                           f"{have} asks of yours are open and the limit is {limit}; wait for replies or deadlines",
                           {"pending": have, "limit": limit})

    # ---- asking ------------------------------------------------------------------------------

    def ask(self, sender: Sender, to: str | list[str], text: str, *, timeout_s: float | None = None,
            queue_if_offline: bool = False, question: dict | None = None, idempotency_key: str | None = None,
            attachments: list[dict] | None = None,
            scheduled: tuple[str, str, str] | None = None) -> asyncio.Future[AskAccepted]:
        """The one way in for an ask: a future for its result once it is durable (see Hub.notify
        for how an idempotency key changes when it is submitted)."""
        if idempotency_key is None:
            return self._submit_ask(sender, to, text, timeout_s=timeout_s, queue_if_offline=queue_if_offline,
                                    question=question, attachments=attachments, scheduled=scheduled)
        fingerprint = ["ask", to, text, timeout_s, queue_if_offline, question, *fingerprint_part(attachments)]
        return asyncio.ensure_future(self.hub.idempotency.run(
            sender.key_owner, idempotency_key, fingerprint, lambda claimed: self._submit_ask(
                sender, to, text, timeout_s=timeout_s, queue_if_offline=queue_if_offline, question=question,
                attachments=attachments, claimed=claimed), AskAccepted))

    def _submit_ask(self, sender: Sender, to: str | list[str], text: str, *, timeout_s: float | None,
                   queue_if_offline: bool, question: dict | None,
                   scheduled: tuple[str, str, str] | None = None,
                   attachments: list[dict] | None = None,
                   claimed: Claimed | None = None) -> asyncio.Future[AskAccepted]:
        """Validate and submit synchronously; the future resolves once the ask is durable.
        A scheduled fire passes (schedule id, correlation id, message id): the ids it claimed,
        so that a fire sent again after a crash is the same ask. It goes to one peer and is not
        rate limited (the schedule was)."""
        hub = self.hub
        hub.check_text(text)
        validate_question(question)
        asked = msgspec.convert(question, Question) if question else None
        recipients = self._recipients(sender, to)
        if scheduled is not None and len(recipients) != 1:
            raise HubError(ErrorCode.INVALID_REQUEST, "a scheduled ask goes to exactly one peer",
                           {"recipients": len(recipients)})
        offline = [p for p in recipients if not hub.presence.takes_asks(p)]
        if offline and not queue_if_offline:
            raise HubError(ErrorCode.PEER_OFFLINE,
                           f"{', '.join(p.address for p in offline)} {'is' if len(offline) == 1 else 'are'} offline; "
                           "ask with queue_if_offline to wait for them",
                           {"offline": [p.peer_id for p in offline]})
        self._check_pending(sender.key_owner, len(recipients))
        if scheduled is None:
            hub.check_rate(sender)
        schedule_id = scheduled[0] if scheduled else None
        now = hub.now_ms()
        deadline = deadline_ms(now, timeout_s, self.policy)
        group_id = hub.ids.next(now) if len(recipients) > 1 or isinstance(to, list) else None
        asker = sender.ref
        retention = hub.settings.trace_retention_s
        children = []
        batch = Batch()
        for peer in recipients:
            cid, message_id = scheduled[1:] if scheduled else (hub.ids.next(now), hub.ids.next(now))
            delivery = Delivery(kind="ask", message_id=message_id, correlation_id=cid, text=text, deadline=deadline,
                                sent_at=now, from_=sender.peer_ref, question=asked, schedule_id=schedule_id,
                                attachments=attachment_refs(attachments))
            payload = encode(delivery)
            preview = message_preview(delivery, to=peer.address)
            record = {"correlation_id": cid, "message_id": message_id, "asker": asker["peer_id"],
                      "asker_name": asker["name"], "asker_circle": asker["circle"], "recipient": peer.peer_id,
                      "recipient_name": peer.name, "recipient_circle": peer.circle, "text": text,
                      "question": orjson.dumps(question).decode() if question else "", "created_at": str(now),
                      "deadline": str(deadline), "state": PENDING, "group_id": group_id or ""}
            stages = [stage_entry(Stage.ACCEPTED, now, hub.node, kind="ask", from_peer=asker["peer_id"], to=peer.address,
                                  deadline=deadline, group_id=group_id, schedule_id=schedule_id),
                      stage_entry(Stage.ROUTED, now, hub.node, peer_id=peer.peer_id, name=peer.name)]
            if peer in offline:
                stages.append(stage_entry(Stage.QUEUED, now, hub.node, peer_id=peer.peer_id, reason="recipient_offline"))
            # The inbox entry outlives the deadline a little: closing the ask removes it first.
            queued = batch.add(self.state.enqueue_cmd(peer.peer_id, message_id, payload, deadline + INBOX_GRACE_MS, cid,
                                                     "ask", index_score=now))
            batch.extend([*self.store.create_cmds(record, retention),
                          self.state.trace_cmd(cid, stages, retention, message=preview)])
            if attachments:
                batch.extend(grant_cmds(attachments, [peer.peer_id], [ask_ref(asker["peer_id"], cid)]))
            children.append((peer, cid, message_id, payload, queued))
        if group_id:
            batch.extend(self.store.group_cmds(group_id, asker["peer_id"], [c[1] for c in children], retention))
        if claimed is not None:
            first = children[0]
            provisional = AskAccepted(message_id=first[2], correlation_id=first[1], state="queued", deadline=deadline,
                                      group_id=group_id, children=[
                                          AskChild(peer_id=p.peer_id, name=p.name, correlation_id=cid, message_id=mid,
                                                   state="queued") for p, cid, mid, *_ in children] if group_id else None)
            batch.extend(hub.idempotency.provisional_cmd(claimed, provisional))

        def on_written(replies: list[Any]) -> AskAccepted:
            states: list[AskChild] = []
            for peer, cid, message_id, payload, queued in children:
                reply = batch.reply(replies, queued)
                enqueued = None if isinstance(reply, Exception) else parse_enqueued(reply)
                ask = OpenAsk(cid, message_id, asker["peer_id"], peer.peer_id, deadline, question,
                              enqueued.seq if enqueued is not None and enqueued.seq > 0 else None)
                self._track(ask)
                delivered = (enqueued is not None and ask.seq is not None
                             and hub.inboxes.hand_over(peer, ask.seq, message_id, payload, cid,
                                                       deadline + INBOX_GRACE_MS, holder_gone=enqueued.holder_gone))
                states.append(AskChild(peer_id=peer.peer_id, name=peer.name, correlation_id=cid, message_id=message_id,
                                       state="delivered" if delivered else "queued"))
            for child in states:
                hub.metrics.message("ask", child.state)
            first = states[0]
            if not group_id:
                return AskAccepted(message_id=first.message_id, correlation_id=first.correlation_id, state=first.state,
                                   deadline=deadline)
            return AskAccepted(message_id=first.message_id, correlation_id=first.correlation_id, deadline=deadline,
                               state=overall_state(states), group_id=group_id, children=states)

        return then(self.state.writer.submit(batch.commands), on_written)

    def _recipients(self, sender: Sender, to: str | list[str]) -> list[PeerRecord]:
        targets: list[PeerRecord] = []
        for address in ([to] if isinstance(to, str) else to):
            for peer in self.hub.resolve_recipients(sender, address):
                if peer not in targets:
                    targets.append(peer)
        if len(targets) > self.policy.max_fanout:
            raise HubError(ErrorCode.TOO_MANY_RECIPIENTS,
                           f"an ask goes to at most {self.policy.max_fanout} peers, not {len(targets)}",
                           {"count": len(targets), "limit": self.policy.max_fanout})
        return targets

    # ---- closing -----------------------------------------------------------------------------

    def close(self, actor: Sender, cid: str, state: str, body: dict[str, Any],
              idempotency_key: str | None = None) -> asyncio.Future[Closed]:
        """The one way in for an ack or an answer (`state` and `body` from ack_body or
        answer_body): a future for its result once it is durable. Without an idempotency key
        it is checked and submitted at once when the ask is open in memory (the common case),
        so no task stands in between."""
        if idempotency_key is not None:
            return asyncio.ensure_future(self.hub.idempotency.run(
                actor.key_owner, idempotency_key, ["close", cid, state, body],
                lambda _: self._close_by_peer(actor, cid, state, body), Closed))
        ask = self.open.get(cid)
        if ask is None:
            return asyncio.ensure_future(self._close_by_peer(actor, cid, state, body))
        view = ask.view()
        written, finish = self._submit_close(view, state, self._checked_kind(view, actor, state, body), body,
                                             closer=actor.key_owner, replier=actor)
        return then(written, lambda replies: _closed(finish(replies)))

    async def _close_by_peer(self, actor: Sender, cid: str, state: str, body: dict) -> Closed:
        ask = self.open.get(cid)
        view = ask.view() if ask is not None else await self._stored_view(cid)
        written, finish = self._submit_close(view, state, self._checked_kind(view, actor, state, body), body,
                                             closer=actor.key_owner, replier=actor)
        return _closed(finish(await written))

    def _checked_kind(self, view: AskView, actor: Sender, state: str, body: dict[str, Any]) -> DeliveryKind:
        """The rules for a peer closing an ask; returns the kind of notice the asker gets."""
        if body.get("text") is not None:
            self.hub.check_text(body["text"])
        check_closer(view, actor.key_owner)
        if state == ANSWERED:
            check_answer(view, body.get("option_id"), body.get("text"), body.get("outcome"))
        return KIND_OF_CLOSE[state]

    async def _stored_view(self, cid: str) -> AskView:
        record = await self.store.read(cid)
        if record is None:
            raise HubError(ErrorCode.ASK_NOT_FOUND, f"no ask with correlation id {cid}", {"correlation_id": cid})
        return _record_view(record)

    def _submit_close(self, view: AskView, state: str, kind: DeliveryKind, body: dict[str, Any], *, closer: str,
                      replier: Sender | None) -> tuple[asyncio.Future[list[Any]], Callable[[list[Any]], Closed | None]]:
        """Submit the close (with the asker's notice); returns the write and a function that
        turns the store's answers into the result, or raises what they mean."""
        hub = self.hub
        now = hub.now_ms()
        cid = view.correlation_id
        notice_id = hub.ids.next(now)
        notice = Delivery(kind=kind, message_id=notice_id, correlation_id=cid, sent_at=now,
                          from_=replier.peer_ref if replier is not None else HUB_AS_SENDER,
                          text=body.get("text"), option_id=body.get("option_id"), outcome=body.get("outcome"),
                          reason=body.get("reason"), attachments=attachment_refs(body.get("attachments")))
        notice_bytes = encode(notice)
        notice_expires_at = now + int(self.policy.reply_ttl_s * 1000)
        result = {"state": state, "kind": kind, "at": now, "by": replier.peer_ref.peer_id if replier else None,
                  **body}
        close = self.store.close_cmd(view.asker, cid, state=state, closed_at=now, result=result, closer=closer,
                                     notice_id=notice_id, notice=notice_bytes,
                                     notice_expires_at=notice_expires_at, notice_kind=kind,
                                     mesh_node=self.state.mesh_node, by=hub.process_ref)
        carried = body.get("attachments")
        grants = grant_cmds(carried, [view.asker], [inbox_ref(view.asker, notice_id)]) if carried else []
        batch = Batch()
        closing = batch.add(close)
        batch.extend(grants)
        written = self.state.writer.submit(batch.commands)

        def finish(replies: list[Any]) -> Closed | None:
            outcome = batch.reply(replies, closing)
            if isinstance(outcome, Exception):
                raise outcome
            answer = parse_close(outcome)
            refusal = on_close_answer(cid, answer.status)
            if refusal is not None:
                self._forget(cid)
                raise refusal
            ask = self._forget(cid)
            effects = on_close_won(view, state, tracked=ask is not None, queued_seq=ask.seq if ask else None,
                                   delivery_id=ask.message_id if ask else None, notice=notice,
                                   notice_seq=answer.seq, result=result, now=now, node=hub.node)
            delivered = self._carry_out_close(effects, ask, notice_id, notice_bytes, notice_expires_at)
            hub.metrics.message("ask", closed_state(state))
            if state == EXPIRED:
                return None
            return Closed(message_id=notice_id, correlation_id=cid, state="delivered" if delivered else "queued",
                          ask_state=closed_state(state))

        return written, finish

    def _carry_out_close(self, effects: list[CloseEffect], ask: OpenAsk | None, notice_id: str,
                         notice_bytes: bytes, notice_expires_at: int) -> bool:
        """Carry out what a won close sets off: the store's part in one packet nobody waits on,
        then the notice to the asker and the result to its waiters. Returns whether a live
        connection took the notice (or the asker's node, woken by the store, delivers it)."""
        hub = self.hub
        cmds: list[Command] = []
        notices: list[PushNotice] = []
        results: list[dict[str, Any]] = []
        settled: tuple[str, str] | None = None
        for effect in effects:
            match effect:
                case Unindex(recipient, cid):
                    cmds.append(self.store.unindex_cmd(recipient, cid))
                case Confirm() | AppendTrace():
                    cmds.append(hub.inboxes.effect_cmd(effect))
                case DropInFlight(peer_id, message_id):
                    if (conn := hub.connections.get(peer_id)) is not None:
                        conn.inflight.pop(message_id, None)
                case MarkClosed(asker, cid):
                    cmds.append(self.store.closed_cmd(asker, cid, hub.process_ref))
                    settled = (asker, cid)
                case Announce(cid, result):
                    cmds += self.state.publish_cmd("ask_closed", orjson.dumps({"correlation_id": cid,
                                                                              "result": result}))
                case PushNotice():
                    notices.append(effect)
                case WakeWaiters(result):
                    results.append(result)
        # Awaited only for its failure (the close is mended then): it may share the next packet
        # rather than wake the store while the notice is on its way to the asker, when the
        # asker's receipt comes through this node (its stages then queue behind these in the
        # same writer). An asker elsewhere answers through another node's writer: sent at once,
        # so that the trace keeps `replied` before the asker's `received`.
        asker_here = all(push.asker in hub.connections for push in notices)
        written = self.state.writer.submit(cmds, linger=asker_here)
        if settled is not None:
            written.add_done_callback(functools.partial(self._settled, settled))
        else:
            written.add_done_callback(_quiet)
        delivered = False
        for push in notices:
            told = hub.peers.get(push.asker)
            delivered = told is not None and hub.inboxes.hand_over(told, push.seq, notice_id, notice_bytes,
                                                                   push.correlation_id, notice_expires_at)
        if ask is not None:
            for result in results:
                self._wake_waiters(ask, result)
        return delivered

    def _settled(self, close: tuple[str, str], written: asyncio.Future[list[Any]]) -> None:
        """A close's final writes were answered, or failed: then mend them when the store is back."""
        if written.cancelled() or written.exception() is None:
            return
        log.warning("the final trace stage of ask %s was not written (%s); writing it when the store answers",
                    close[1], written.exception())
        self._unsettled.add(close)
        if self._mending is None or self._mending.done():
            self._mending = asyncio.create_task(self._mend_unsettled(), name="ask closes to mend")

    async def _mend_unsettled(self) -> None:
        """Every MEND_RETRY_S until the store answers: write the final stage of each close of
        this process whose writes failed (from its closings entry: skipped when the write had
        landed after all)."""
        while self._unsettled:
            await asyncio.sleep(MEND_RETRY_S)
            closes, self._unsettled = self._unsettled, set()
            try:
                await self.mend_closings(sorted({asker for asker, _ in closes}), mine={cid for _, cid in closes})
            except HubError:
                self._unsettled |= closes

    def _forget(self, cid: str) -> OpenAsk | None:
        self.deadlines.forget(cid)
        ask = self.open.pop(cid, None)
        if ask is not None:
            self._open_by_asker[ask.asker] -= 1
            if not self._open_by_asker[ask.asker]:
                del self._open_by_asker[ask.asker]
        return ask

    @staticmethod
    def _wake_waiters(ask: OpenAsk, result: dict) -> None:
        for waiter in ask.waiters:
            if not waiter.done():
                waiter.set_result(result)

    def closed_elsewhere(self, cid: str, result: dict) -> None:
        """Another node closed an ask (the node bus said so): forget it here, take its queued
        delivery out of the recipient's inbox (only the opener knows its place), and answer
        whoever waits here for it."""
        ask = self._forget(cid)
        if ask is None:
            return
        hub = self.hub
        if ask.seq is not None:
            self.state.writer.submit([self.state.confirm_cmd(ask.recipient, ask.seq)], wait=False)
        conn = hub.connections.get(ask.recipient)
        if conn is not None:
            conn.inflight.pop(ask.message_id, None)
        self._wake_waiters(ask, result)

    async def catch_up(self) -> None:
        """After the node bus was away: asks closed elsewhere meanwhile are forgotten here."""
        tracked = list(self.open.values())
        states = await self.store.states([(a.asker, a.correlation_id) for a in tracked])
        for ask, state in zip(tracked, states):
            if state != PENDING:
                record = await self.store.read(ask.correlation_id, ask.asker)
                result = orjson.loads(record["result"]) if record and record.get("result") else {"state": state}
                self.closed_elsewhere(ask.correlation_id, result)

    # ---- deadlines ---------------------------------------------------------------------------

    async def _expire(self, cid: str) -> int | None:
        """The deadline passed: close as `expired`. Returns when to try again if the store is down."""
        ask = self.open.get(cid)
        if ask is None:
            return None
        written, finish = self._submit_close(ask.view(), EXPIRED, "expired", {"reason": "deadline"},
                                             closer="*", replier=None)
        try:
            finish(await written)
        except HubError as exc:
            if exc.code is ErrorCode.STORE_UNAVAILABLE:
                return self.hub.now_ms() + 1000
            log.info("deadline of %s: %s", cid, exc.message)
        return None

    def _on_notices_expired(self, expired: list[tuple[str, str, str]]) -> None:
        """Replies and answers nobody collected within the reply time-to-live: tell the replier."""
        notices = [(peer_id, cid) for peer_id, cid, kind in expired if kind in NOTICE_KINDS]
        if notices:
            task = asyncio.get_running_loop().create_task(self._tell_repliers(notices), name="tell repliers")
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

    async def _tell_repliers(self, notices: list[tuple[str, str]]) -> None:
        hub = self.hub
        now = hub.now_ms()
        for asker_id, cid in notices:
            try:
                record = await self.store.read(cid, asker_id)
            except HubError:
                continue
            if record is None:
                continue
            message_id = hub.ids.next(now)
            payload = encode(Delivery(kind="expired", message_id=message_id, correlation_id=cid,
                                      reason="reply_not_collected", sent_at=now, from_=HUB_AS_SENDER))
            replier = record["recipient"]
            expires_at = now + hub.settings.queue_ttl_s * 1000
            (reply,) = await self.state.writer.write(self.state.enqueue_cmd(
                replier, message_id, payload, expires_at, cid, "expired"))
            enqueued = parse_enqueued(reply)
            peer = hub.peers.get(replier)
            if enqueued.seq > 0 and peer is not None:
                hub.inboxes.hand_over(peer, enqueued.seq, message_id, payload, cid, expires_at,
                                      holder_gone=enqueued.holder_gone)

    # ---- reading -----------------------------------------------------------------------------

    async def get(self, reader: Sender, cid: str) -> AskAsRead | AskGroup:
        group = await self.store.group(cid)
        if group is not None:
            self._check_reader(reader, group["asker"], None)
            children = await self.store.read_many(group["children"])
            return AskGroup(group_id=cid, children=[self._public(r) for r in children],
                            states=dict(Counter(r["state"] for r in children)))
        record = await self.store.read(cid)
        if record is None:
            raise HubError(ErrorCode.ASK_NOT_FOUND, f"no ask with correlation id {cid}", {"correlation_id": cid})
        self._check_reader(reader, record["asker"], record["recipient"])
        return self._public(record)

    @staticmethod
    def _check_reader(reader: Sender, asker: str, recipient: str | None) -> None:
        if reader.peer is not None and reader.peer.peer_id not in (asker, recipient):
            raise HubError(ErrorCode.FORBIDDEN, "only the asker, the asked peer and the hub token may read this ask")

    def _public(self, record: dict[str, Any], direction: str | None = None) -> AskAsRead:
        """An ask as its asker and asked peer read it, from its stored record."""
        created = int(record["created_at"])
        return msgspec.convert({
            "correlation_id": record["correlation_id"], "message_id": record["message_id"], "state": record["state"],
            "from": {"peer_id": record["asker"], "name": record["asker_name"], "circle": record["asker_circle"]},
            "to": {"peer_id": record["recipient"], "name": record["recipient_name"],
                   "circle": record["recipient_circle"]},
            "text": record["text"], "question": orjson.loads(record["question"]) if record.get("question") else None,
            "created_at": created, "deadline": int(record["deadline"]), "age_ms": self.hub.now_ms() - created,
            "closed_at": int(record["closed_at"]) if record.get("closed_at") else None,
            "result": orjson.loads(record["result"]) if record.get("result") else None,
            "group_id": record.get("group_id") or None, "trace_id": record["correlation_id"], "direction": direction,
        }, AskAsRead)

    async def pending(self, reader: Sender, peer: PeerRecord | None, direction: str, offset: int,
                      limit: int) -> PendingAsks:
        owner = peer.peer_id if peer is not None else reader.key_owner
        if reader.peer is not None and reader.peer.peer_id != owner:
            raise HubError(ErrorCode.FORBIDDEN, "a peer may list only its own asks")
        directions = ("inbound", "outbound") if direction == "both" else (direction,)
        asks: list[AskAsRead] = []
        total = 0
        for d in directions:
            ids, count = await self.store.pending_ids(owner, d, 0, offset + limit)
            total += count
            for record in await self.store.read_many(ids):
                asks.append(self._public(record, d))
        asks.sort(key=lambda a: (a.created_at, a.correlation_id))
        page = asks[offset:offset + limit]
        next_offset = offset + limit if offset + limit < total else None
        return PendingAsks(asks=page, total=total, next_offset=next_offset)

    async def wait(self, reader: Sender, cid: str, timeout_s: float) -> AskAsRead:
        """Bounded long-poll for the asker: returns as soon as the ask closes, or at the timeout."""
        timeout_s = min(max(timeout_s, 0.0), MAX_WAIT_S)
        record = await self.store.read(cid)
        if record is None:
            raise HubError(ErrorCode.ASK_NOT_FOUND, f"no ask with correlation id {cid}", {"correlation_id": cid})
        if reader.key_owner != record["asker"] and reader.peer is not None:
            raise HubError(ErrorCode.FORBIDDEN, "only the asker may wait for this ask")
        ask = self.open.get(cid)
        if record["state"] == PENDING and ask is not None and timeout_s > 0:
            waiter = asyncio.get_running_loop().create_future()
            ask.waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.shield(waiter)
            except TimeoutError:
                pass
            finally:
                if waiter in ask.waiters:
                    ask.waiters.remove(waiter)
            record = await self.store.read(cid, record["asker"]) or record
        return self._public(record)
