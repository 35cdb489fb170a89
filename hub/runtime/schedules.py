"""Scheduled messages at run time: making, listing, pausing and deleting schedules, and the
one timer per hub node that fires them.

The timer sleeps until the earliest due time in the store's due index (or until woken: a
schedule made on this node, or a notice published by another node), then claims each due
occurrence with one store script before sending it, and records the outcome with another.
The claim carries the ids the message will have, so a fire interrupted by a crash is sent
again as the same message, or only recorded when its trace shows it was written. Claims of
a node that died are taken over after the lease; a node that restarts takes over its own
claims at once. Each fire is an ordinary notify or ask from the schedule's creator, with its
own message id and trace, both naming the schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
import orjson

from hub.core.asks import deadline_ms
from hub.core.errors import HubError
from hub.core.peers import parse_address
from hub.core.schedules import (
    ACTIVE,
    ASK,
    DONE,
    FAILED,
    NOTIFY,
    PAUSED,
    SENT,
    SchedulePolicy,
    ScheduleSpec,
    check_timing,
    first_fire,
    iso,
    missed_entry,
    parse_at,
    parse_cron,
    plan_overdue,
    resume_fire,
    to_iso,
    zone,
)
from hub.runtime.asks import AskService
from hub.runtime.credentials import OPERATOR_ID, Sender
from hub.runtime.hub import Hub
from hub.runtime.periodic import stop_if_cancelled
from hub.store import replies
from hub.store.connect import STORE_DOWN
from hub.store.link import Listener
from hub.store.schedules import ScheduleStore, StoredSchedule
from hub.store.state import StoreState
from schemas.errors import ErrorCode
from schemas.rest import ScheduleCreated, ScheduleRequest, ScheduleView

log = logging.getLogger(__name__)

IDLE_WAKE_S = 10.0    # the timer looks at the store at least this often, woken or not
RETRY_S = 1.0         # after a store failure
NO_PROGRESS_S = 0.25  # the earliest due schedule is busy elsewhere: look again after this
DUE_BATCH = 100
LIST_MAX = 1000
_TIME_FIELDS = ("due_at", "last_due_at", "fired_at", "recorded_at")


def _fire_view(entry: dict) -> dict:
    return {k: (to_iso(v) if k in _TIME_FIELDS else v) for k, v in entry.items()}


def _spec(stored: StoredSchedule) -> ScheduleSpec:
    body = stored.body
    return ScheduleSpec(kind=body["kind"], to=body["to"], text=body["text"], timezone=body["timezone"], at=body["at"],
                        cron=body["cron"], timeout_s=body["timeout_s"], queue_if_offline=body["queue_if_offline"],
                        catch_up=body["catch_up"])


def view(stored: StoredSchedule, history: list[dict] | None = None) -> ScheduleView:
    """A schedule as REST shows it, from its stored record (and its history of fires)."""
    body = stored.body
    out = {"schedule_id": stored.schedule_id, "kind": body["kind"], "to": body["to"], "to_name": body.get("to_name"),
           "text": body["text"], "at": to_iso(body["at"]), "cron": body["cron"], "timezone": body["timezone"],
           "timeout_s": body["timeout_s"], "queue_if_offline": body["queue_if_offline"], "catch_up": body["catch_up"],
           "state": stored.state, "next_fire_at": to_iso(stored.next_fire_at), "created_at": to_iso(body["created_at"]),
           "created_by": body["created_by"], **stored.counts}
    out = {k: v for k, v in out.items() if v is not None}
    if history is not None:
        out["fires"] = [_fire_view(e) for e in history]
    return msgspec.convert(out, ScheduleView)


class ScheduleService:
    def __init__(self, hub: Hub, state: StoreState, asks: AskService, store: ScheduleStore, policy: SchedulePolicy,
                 subscriber: Listener | None = None):
        self.hub = hub
        self.state = state   # the shared store: traces, the writer
        self.asks = asks
        self.store = store
        self.policy = policy
        self._subscriber = subscriber   # a store connection without reply deadlines, for change notices
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._take_own_claims = True    # claims this node made in an earlier life (or before a store failure)
        self._last_recovery = 0
        self._lease_ends: int | None = None   # when the earliest claim seen in flight elsewhere runs out

    # ---- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="schedule-timer"))
        if self._subscriber is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="schedule-notices"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def wake(self) -> None:
        self._wake.set()

    # ---- requests ------------------------------------------------------------------------------

    async def create(self, sender: Sender, request: ScheduleRequest) -> ScheduleCreated:
        hub = self.hub
        check_timing(request.at, request.cron)
        tz = zone(request.timezone)
        if request.cron is not None:
            parse_cron(request.cron)
        hub.check_text(request.text)
        to, to_name = self._recipient(sender, request)
        if request.kind == ASK:
            deadline_ms(0, request.timeout_s, self.asks.policy)
        elif request.timeout_s is not None or request.queue_if_offline:
            raise HubError(ErrorCode.INVALID_REQUEST, "timeout_s and queue_if_offline are for asks; a notify to an "
                           "offline peer always waits in its inbox", {"kind": request.kind})
        spec = ScheduleSpec(kind=request.kind, to=to, text=request.text, timezone=request.timezone,
                            at=parse_at(request.at, tz) if request.at is not None else None, cron=request.cron,
                            timeout_s=request.timeout_s, queue_if_offline=request.queue_if_offline,
                            catch_up=request.catch_up)
        now = hub.now_ms()
        first = first_fire(spec, now)
        creator = sender.key_owner
        limit = self.policy.max_per_peer
        if await self.store.count_of(creator) >= limit:
            raise HubError(ErrorCode.TOO_MANY_SCHEDULES, f"{sender.ref['name']} holds {limit} schedules, the most "
                           "one peer may; delete some first", {"limit": limit})
        schedule_id = hub.ids.next(now)
        body = {**spec.as_dict(), "to_name": to_name, "created_by": sender.ref, "created_at": now}
        await self.state.writer.write(*self.store.create_cmds(schedule_id, creator, body, first),
                                     self.store.changed_cmd(schedule_id))
        self.wake()
        return ScheduleCreated(schedule_id=schedule_id, next_fire_at=iso(first))

    def _recipient(self, sender: Sender, request: ScheduleRequest) -> tuple[str, str | None]:
        """A single recipient is kept by peer id (a later peer of the same name does not get it);
        a notify to a circle keeps its broadcast address."""
        recipients = self.hub.resolve_recipients(sender, request.to)
        if parse_address(request.to).broadcast:
            if request.kind == ASK:
                raise HubError(ErrorCode.INVALID_REQUEST, "a scheduled ask goes to one peer, not a circle",
                               {"to": request.to})
            return request.to.strip(), None
        return recipients[0].peer_id, recipients[0].address

    async def _owned(self, actor: Sender, schedule_id: str) -> StoredSchedule:
        return self._check_owner(actor, schedule_id, await self.store.read(schedule_id))

    @staticmethod
    def _check_owner(actor: Sender, schedule_id: str, stored: StoredSchedule | None) -> StoredSchedule:
        if stored is None:
            raise HubError(ErrorCode.SCHEDULE_NOT_FOUND, f"no schedule {schedule_id}", {"schedule_id": schedule_id})
        if not actor.is_person and stored.body["created_by"]["peer_id"] != actor.key_owner:
            raise HubError(ErrorCode.FORBIDDEN, "a schedule belongs to the peer that made it (and to people)",
                           {"schedule_id": schedule_id})
        return stored

    async def get(self, reader: Sender, schedule_id: str) -> ScheduleView:
        stored, history = await self.store.read_with_history(schedule_id)
        return view(self._check_owner(reader, schedule_id, stored), history)

    async def list(self, reader: Sender, peer_ref: str | None) -> list[ScheduleView]:
        """A peer sees its own schedules; a person sees all, or those `peer_ref` made."""
        creator: str | None = None
        if peer_ref:
            creator = OPERATOR_ID if peer_ref == "operator" else self.hub.find_peer(peer_ref, reader).peer_id
        if not reader.is_person:
            if creator not in (None, reader.key_owner):
                raise HubError(ErrorCode.FORBIDDEN, "a peer lists its own schedules; people see everyone's",
                               {"peer": peer_ref})
            creator = reader.key_owner
        ids = (await self.store.ids(creator))[:LIST_MAX]
        stored = await self.store.read_many(ids)
        return [view(s) for s in sorted(stored, key=lambda s: (s.body["created_at"], s.schedule_id))]

    async def delete(self, actor: Sender, schedule_id: str) -> None:
        stored = await self._owned(actor, schedule_id)
        await self.state.writer.write(*self.store.delete_cmds(schedule_id, stored.body["created_by"]["peer_id"]),
                                          self.store.changed_cmd(schedule_id))

    async def pause(self, actor: Sender, schedule_id: str) -> ScheduleView:
        stored = await self._owned(actor, schedule_id)
        if stored.state == ACTIVE:
            await self._set_state(stored, PAUSED, stored.next_fire_at, index=None)
        return await self._checked_view(schedule_id, PAUSED)

    async def resume(self, actor: Sender, schedule_id: str) -> ScheduleView:
        stored = await self._owned(actor, schedule_id)
        if stored.state == PAUSED:
            nxt = resume_fire(_spec(stored), self.hub.now_ms())
            await self._set_state(stored, ACTIVE if nxt is not None else DONE, nxt, index=nxt)
        return await self._checked_view(schedule_id, ACTIVE)

    async def _set_state(self, stored: StoredSchedule, state: str, next_due: int | None, index: int | None) -> None:
        sid = stored.schedule_id
        (reply, *_) = await self.state.writer.write(
            self.store.set_state_cmd(sid, stored.state, state, next_due))
        if replies.is_ok(reply):
            await self.state.writer.write(*self.store.index_cmds(sid, index), self.store.changed_cmd(sid))
            self.wake()

    async def _checked_view(self, schedule_id: str, wanted: str) -> ScheduleView:
        stored = await self.store.read(schedule_id)
        if stored is None:
            raise HubError(ErrorCode.SCHEDULE_NOT_FOUND, f"no schedule {schedule_id}", {"schedule_id": schedule_id})
        if stored.state == DONE:
            raise HubError(ErrorCode.SCHEDULE_FINISHED, f"schedule {schedule_id} has fired for the last time",
                           {"schedule_id": schedule_id, "state": DONE})
        return view(stored)

    # ---- the timer -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._take_over_claims()
                progressed = await self._fire_due()
                earliest = await self.store.earliest_due()
                now = self.hub.now_ms()
                if earliest is None:
                    delay = IDLE_WAKE_S
                elif earliest <= now and not progressed:
                    delay = NO_PROGRESS_S
                else:
                    delay = min(max(earliest - now, 0) / 1000, IDLE_WAKE_S)
                if self._lease_ends is not None:
                    delay = min(delay, max(self._lease_ends - now, 0) / 1000 + NO_PROGRESS_S)
            except (HubError, *STORE_DOWN) as exc:
                stop_if_cancelled()
                log.warning("schedules: the store failed (%s); trying again in %.0f s", exc, RETRY_S)
                self._take_own_claims = True
                delay = RETRY_S
            except Exception:  # the timer must outlive any one bad schedule
                stop_if_cancelled()
                log.exception("schedules: unexpected error in the timer")
                delay = RETRY_S
            # A cancel that a store call swallowed still stops the loop here; and asyncio.timeout,
            # not wait_for, which on Python 3.11 can swallow one too (both found by a start-up
            # that failed halfway and then never finished stopping).
            stop_if_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _fire_due(self) -> bool:
        """Handle every schedule due now, side by side (their store writes share pipelines)."""
        due = await self.store.due(self.hub.now_ms(), DUE_BATCH)
        if not due:
            return False
        stored = {s.schedule_id: s for s in await self.store.read_many([schedule_id for schedule_id, _ in due])}
        outcomes = await asyncio.gather(*(self._handle_due(schedule_id, stored.get(schedule_id), at)
                                          for schedule_id, at in due), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return any(outcomes)

    async def _handle_due(self, schedule_id: str, stored: StoredSchedule | None, due: int) -> bool:
        if stored is not None and stored.inflight:
            # a claim being sent (its lease decides): index it, in case its node died before it did
            claimed_at = stored.inflight_at or due
            self.state.writer.submit([self.store.inflight_cmd(schedule_id, claimed_at)], wait=False)
            self._note_lease(claimed_at)
        if stored is None or stored.state != ACTIVE or stored.next_fire_at != due:
            # the index is out of step with the schedule: mend it
            index = stored.next_fire_at if stored is not None and stored.state == ACTIVE else None
            await self.state.writer.write(*self.store.index_cmds(schedule_id, index))
            return True
        if stored.inflight:
            return False
        return await self._claim(stored, due)

    async def _claim(self, stored: StoredSchedule, due: int) -> bool:
        """Claim the occurrence `due`, then send it or record it missed; False when another
        node claimed it first."""
        hub, store, sid = self.hub, self.store, stored.schedule_id
        spec = _spec(stored)
        now = hub.now_ms()
        plan = plan_overdue(spec, due, now, int(self.policy.grace_s * 1000))
        if plan.missed:
            entry = missed_entry(plan, now, hub.node, spec.catch_up)
            (reply,) = await self.state.writer.write(
                store.claim_missed_cmd(sid, due, plan.next_due, entry, now, hub.node, len(plan.missed)))
            if replies.is_ok(reply):
                await self.state.writer.write(*store.index_cmds(sid, plan.next_due))
                return True
            return False
        next_due = plan.next_due
        claim = {"due_at": due, "message_id": hub.ids.next(now), "claimed_at": now, "node": hub.node}
        if spec.kind == ASK:
            claim["correlation_id"] = hub.ids.next(now)
        claim_json = orjson.dumps(claim)
        (reply,) = await self.state.writer.write(store.claim_send_cmd(sid, due, next_due, claim_json, now, hub.node))
        if not replies.is_ok(reply):
            return False
        # the indexes need no wait: the writer applies them before the fire's own writes
        self.state.writer.submit([*store.index_cmds(sid, next_due), store.inflight_cmd(sid, now)], wait=False)
        await self._send(stored, claim_json.decode(), recovered=False)
        return True

    async def _take_over_claims(self) -> None:
        """Send the claims whose node died (older than the lease), and at start this node's own."""
        now = self.hub.now_ms()
        lease_ms = int(self.policy.claim_lease_s * 1000)
        lease_over = self._lease_ends is not None and now >= self._lease_ends
        if not self._take_own_claims and not lease_over and now - self._last_recovery < lease_ms // 2:
            return
        own, self._take_own_claims, self._last_recovery, self._lease_ends = self._take_own_claims, False, now, None
        for schedule_id, claimed_at in await self.store.inflight(DUE_BATCH):
            stored = await self.store.read(schedule_id)
            if stored is None or not stored.inflight:
                await self.state.writer.write(self.store.inflight_cmd(schedule_id, None))
                continue
            mine = own and stored.inflight_node == self.hub.node
            if not mine and now - (stored.inflight_at or claimed_at) <= lease_ms:
                self._note_lease(stored.inflight_at or claimed_at)
                continue
            (taken,) = await self.state.writer.write(
                self.store.take_over_cmd(schedule_id, stored.inflight, self.hub.node, now))
            if taken == 1:
                log.info("schedules: taking over the fire of %s claimed by %s", schedule_id,
                         stored.inflight_node or "?")
                await self._send(stored, stored.inflight, recovered=True)

    def _note_lease(self, claimed_at: int) -> None:
        """Wake when this claim's lease runs out, to take it over if its node is gone."""
        ends = claimed_at + int(self.policy.claim_lease_s * 1000) + 1
        self._lease_ends = ends if self._lease_ends is None else min(self._lease_ends, ends)

    async def _send(self, stored: StoredSchedule, claim_json: str, *, recovered: bool) -> None:
        """Send a claimed occurrence as its creator and record the outcome once."""
        hub, sid = self.hub, stored.schedule_id
        claim = orjson.loads(claim_json)
        spec = _spec(stored)
        message_id, correlation_id = claim["message_id"], claim.get("correlation_id")
        trace_id = correlation_id or message_id
        entry: dict = {"due_at": claim["due_at"], "node": hub.node}
        if recovered:
            entry["recovered"] = True
        try:
            if recovered and await self.state.read_trace(trace_id) is not None:
                entry["state"] = SENT   # written before the interruption: only the record was missing
            else:
                sender = self._sender(stored)
                if spec.kind == NOTIFY:
                    sent = (await hub.notify(sender, spec.to, spec.text, message_id=message_id,
                                             schedule_id=sid)).state
                else:
                    sent = (await self.asks.ask(sender, spec.to, spec.text, timeout_s=spec.timeout_s,
                                                queue_if_offline=spec.queue_if_offline, question=None,
                                                scheduled=(sid, correlation_id, message_id))).state
                entry.update(state=SENT, delivery=sent)
            entry.update(message_id=message_id, trace_id=trace_id)
            if correlation_id:
                entry["correlation_id"] = correlation_id
        except HubError as exc:
            if exc.code is ErrorCode.STORE_UNAVAILABLE:
                raise   # the claim stays in flight; this node sends it again when the store is back
            entry.update(state=FAILED, reason=exc.code.value, message=exc.message[:300])
        now = hub.now_ms()
        entry.update(fired_at=now, late_ms=max(0, now - claim["due_at"]))
        counter = "fired" if entry["state"] == SENT else "failed"
        await self.state.writer.write(self.store.finish_cmd(sid, claim_json, entry, counter),
                                     self.store.inflight_cmd(sid, None))

    def _sender(self, stored: StoredSchedule) -> Sender:
        creator = stored.body["created_by"]["peer_id"]
        if creator == OPERATOR_ID:
            return Sender(None)
        peer = self.hub.peers.get(creator)
        if peer is None:
            raise HubError(ErrorCode.PEER_NOT_FOUND, "the peer that made this schedule was deleted",
                           {"peer_id": creator})
        return Sender(peer)

    # ---- notices from other nodes ----------------------------------------------------------------

    async def _listen(self) -> None:
        subscriber = self._subscriber
        assert subscriber is not None, "started only with a subscriber connection"
        while True:
            try:
                await self.store.follow_changes(subscriber, self.wake)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost notice only delays a fire until the timer's next look
                stop_if_cancelled()
                log.debug("schedules: change notices interrupted (%s)", exc)
                await asyncio.sleep(RETRY_S)
