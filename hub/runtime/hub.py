"""The `Hub` service: admission of connections, durable notify, reading peers and traces, and
keeping this node's copy of the peers in step with the store.

It composes the services it hands the rest to, each with its own dependencies: who a caller
is (`credentials`), who is live (`presence`), each inbox's delivery (`inboxes`), the peers'
lifecycle (`lifecycle`: registration, pane links, session credentials, deletion), the
dashboards' event stream (`events`) and idempotency keys (`idempotency`). It keeps in memory
what the hot path reads (peers, names, tokens, who is connected here) in step with the store,
and writes through the group-commit writer: a message, its trace stages and its idempotency
result go out in one pipeline, and `accepted` waits for that pipeline.

On a store shared by several hub nodes, each node holds the connections of its own peers and
keeps its copy of everyone's record in step through the node bus (`refresh_peers`); a delivery
queued for a peer held by another node wakes that node (`inboxes.pull`), which reads the inbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import msgspec

from hub import __version__
from hub.core.attachments import attachment_refs, fingerprint_part, inbox_ref
from hub.core.delivery import overall_state
from hub.core.errors import HubError
from hub.core.feed import message_preview
from hub.core.ids import MonotonicIds, new_peer_id, new_token, token_digest
from hub.core.peers import (
    BRIDGE,
    OFFLINE,
    PERSON,
    Address,
    Admission,
    PeerRecord,
    admit,
    parse_address,
    resolve,
)
from hub.core.presence import connected, entered, gone
from hub.core.ratelimit import TokenBucket
from hub.core.settings import Settings
from hub.core.trace import Reason, Stage, final_stages, stage_entry
from hub.runtime.connection import Connection
from hub.runtime.credentials import Credentials, Sender
from hub.runtime.events import EventLog
from hub.runtime.futures import then
from hub.runtime.idempotency import Claimed, Idempotency
from hub.runtime.inboxes import Inboxes
from hub.runtime.lifecycle import PeerLifecycle
from hub.runtime.metrics import HubMetrics
from hub.runtime.presence import Presences
from hub.runtime.registry import PeerRegistry
from hub.store.attachments import AttachmentStore
from hub.store.batch import Batch, Slot
from hub.store.state import StoreState, parse_enqueued
from schemas.codec import encode
from schemas.errors import ErrorCode
from schemas.frames import API_VERSION, Delivery, Position, RecipientState, Role, Welcome
from schemas.rest import (
    Health,
    MessageAccepted,
    NodeView,
    PeerView,
    QuestionTimes,
    StoreFacts,
    Trace,
    TraceStage,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

INBOX_FULL = -2   # what the store's enqueue script answers for an inbox at its cap


@dataclass(slots=True)
class SubmittedNotify:
    """A notify handed to the writer, as its write's callback needs it."""
    message_id: str
    payload: bytes
    expires_at: int
    recipients: list[PeerRecord]
    broadcast: bool
    batch: Batch
    queued: list[Slot]   # each recipient's enqueue, in order
    traced: Slot         # the trace write


def grant_cmds(attachments: list[dict], readers: list[str], refs: list[str]) -> list:
    """Store commands that let a message's recipients download what it carries, and keep it
    while the message is pending. Callers build the arguments only when there are attachments
    (a message without any must not pay for them)."""
    return [AttachmentStore.grant_cmd(a["id"], readers, refs) for a in attachments]


class Hub:
    def __init__(self, settings: Settings, store: StoreState, *, hub_token: str, epoch: str = "",
                 store_facts: dict | None = None, clock: Callable[[], float] = time.time, instance: str = ""):
        self.settings = settings
        self.store = store
        self.node = settings.node
        self.instance = instance or new_token()[:16]   # this process, among the node's lives (its lease)
        self.epoch = epoch
        self.store_facts = store_facts or {}
        self._clock = clock
        self.registry = PeerRegistry()
        self.peers = self.registry.by_id   # the peers this node knows, by id (the registry owns them)
        self.connections: dict[str, Connection] = {}   # peer id -> its connection to this node
        self._buckets: dict[str, TokenBucket] = {}
        self.ids = MonotonicIds()
        self.metrics = HubMetrics(self.node)
        self.credentials = Credentials(hub_token, self.registry)
        self.events = EventLog(store)
        self.presence = Presences(store, self.registry, self.connections, self.events, self.node, self.now_ms)
        self.lifecycle = PeerLifecycle(store, self.registry, self.connections, self.presence, self.events,
                                       node=self.node, now_ms=self.now_ms, disconnect=self.disconnect,
                                       forget=self._forget)
        self.inboxes = Inboxes(store, self.registry, self.connections, self.presence, node=self.node,
                               now_ms=self.now_ms, sweep_interval_s=settings.sweep_interval_s)
        self.idempotency = Idempotency(store, settings.idempotency_ttl_s, self.process_ref, self.process_gone)

    # ---- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        for peer in await self.store.load_peers():
            self.registry.put(peer)
        # Nobody is connected to a hub that just started: whatever the store says, this node's
        # peers are offline until they come back.
        stale = [p for p in self.peers.values() if p.status != OFFLINE and p.node in ("", self.node)]
        for peer in stale:
            peer = self.registry.put(entered(peer, gone("hub_restarted")))
            self.store.writer.submit(self.store.presence_cmds(peer, self.node), wait=False)
        self.inboxes.start()

    async def stop(self) -> None:
        self.inboxes.stop()
        for conn in list(self.connections.values()):
            conn.abort(ErrorCode.SHUTTING_DOWN, "hub stopping")
        for conn in list(self.connections.values()):
            await self.disconnect(conn, "hub_stopping")

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def in_mesh(self) -> bool:
        """Whether other hub nodes may share the store (an external store: `--redis-url`)."""
        return bool(self.store.mesh_node)

    # ---- identity ----------------------------------------------------------------------------

    def _forget(self, peer: PeerRecord) -> None:
        self.registry.drop(peer)
        self._buckets.pop(peer.peer_id, None)

    # ---- connections -------------------------------------------------------------------------

    async def connect(self, conn: Connection, *, name: str, circle: str, role: Role, token: str | None,
                      resume: int | None, holds_hub_token: bool) -> Welcome:
        """Admit a hello; returns the welcome frame. Backlog delivery starts right after."""
        if len(self.connections) >= self.settings.limits.max_connections:
            raise HubError(ErrorCode.TOO_MANY_CONNECTIONS,
                           f"the hub has {len(self.connections)} connections, its limit")
        if role == PERSON and not holds_hub_token:
            raise HubError(ErrorCode.FORBIDDEN, "the person role answers tool-permission questions, so it needs the "
                           "hub token: connect with `Authorization: Bearer <hub token>` or over the hub's Unix socket")
        if role == BRIDGE and not holds_hub_token:
            raise HubError(ErrorCode.FORBIDDEN, "a pane bridge types into terminals for the hub, so it needs the hub "
                           "token: connect with `Authorization: Bearer <hub token>` or over the hub's Unix socket")
        if self.in_mesh:
            await self._catch_up_for_hello(token, name, circle)
        same_name = self.peer_named(name, circle)
        decision = admit(name=name, circle=circle, token_peer=self.credentials.peer_for_token(token),
                         token_given=token is not None, holds_hub_token=holds_hub_token,
                         same_name=same_name, is_live=bool(same_name and self.presence.is_reachable(same_name)))
        now = self.now_ms()
        issued_token = token
        before: PeerRecord | None = None   # the record as it was, put back if the store refuses
        if decision is Admission.NEW:
            issued_token = new_token()
            admitted = PeerRecord(peer_id=new_peer_id(), name=name, circle=circle, role=role,
                                  token_digest=token_digest(issued_token), created_at=now, last_seen=now)
        else:
            before = same_name if decision is Admission.RECLAIM else self.credentials.peer_for_token(token)
            assert before is not None
            admitted = replace(before, role=role)
            if decision is Admission.RECLAIM:
                issued_token = new_token()
                admitted = replace(admitted, token_digest=token_digest(issued_token))
        previous = self.connections.get(admitted.peer_id)
        if previous is not None:  # its own handler finishes closing it; we only take its place
            previous.abort(ErrorCode.REPLACED, "the same peer connected again")
            self._release(previous, "replaced", mark_offline=False)
        # Take the identity now, before the store round trip, so that a concurrent hello for the
        # same name sees it live; undone if the store does not take the registration.
        peer = self.registry.put(entered(admitted, connected(), last_seen=now, node=self.node))
        conn.peer_id = peer.peer_id
        conn.replaying = True
        self.connections[peer.peer_id] = conn
        # One batch: the registration, the resume cursor, and the position for `welcome`.
        try:
            results = await self.store.writer.write(*self.store.hello_cmds(peer, before, resume))
        except HubError:
            self._undo_admission(conn, peer, before)
            raise
        self.presence.told(peer)
        hello = self.store.parse_hello(results, resumed=resume is not None)
        self._record_resumed(peer, hello.resumed_traces)
        assert issued_token is not None
        return Welcome(peer_id=peer.peer_id, name=peer.name, circle=peer.circle, role=peer.role,
                       token=issued_token, node=self.node, api_version=API_VERSION,
                       heartbeat_s=self.settings.heartbeat_s,
                       position=Position(last_seq=hello.last_seq, pending=hello.pending),
                       limits=self.settings.limits.as_dict())

    async def _catch_up_for_hello(self, token: str | None, name: str, circle: str) -> None:
        """A peer may have been registered or reconnected through another node a moment ago,
        before the bus told this one: read what the hello names from the store."""
        ids = []
        if token and not self.registry.knows(token_digest(token)):
            found = await self.store.peer_id_for_token(token_digest(token))
            if found:
                ids.append(found)
        known = self.peer_named(name, circle)
        if known is not None and known.peer_id not in self.connections:
            ids.append(known.peer_id)
        if ids:
            await self.refresh_peers(ids)

    def _undo_admission(self, conn: Connection, peer: PeerRecord, before: PeerRecord | None) -> None:
        """The store did not take a hello: the peer is as it was (`before`; None: unknown)."""
        if self.connections.get(peer.peer_id) is conn:
            del self.connections[peer.peer_id]
        conn.peer_id = None
        if before is None:
            self._forget(peer)
        else:
            self.registry.put(before)

    def _record_resumed(self, peer: PeerRecord, trace_ids: list[str]) -> None:
        """The peer said it has everything up to its resume cursor: those deliveries end as
        received (reason `resumed`)."""
        now = self.now_ms()
        cmds = [self.store.trace_cmd(tid,
                                     [stage_entry(Stage.RECEIVED, now, self.node, peer_id=peer.peer_id,
                                                  reason=Reason.RESUMED)])
                for tid in trace_ids]
        if cmds:
            self.store.writer.submit(cmds, wait=False)

    async def disconnect(self, conn: Connection, reason: str) -> None:
        """The peer is offline from now on; then the socket gets up to one heartbeat to take
        its close frame before it is dropped."""
        self._release(conn, reason)
        await conn.stop(close_grace_s=self.settings.heartbeat_s)

    def _release(self, conn: Connection, reason: str, *, mark_offline: bool = True) -> None:
        """Forget a connection (if it is still the peer's current one) and what it had in flight."""
        peer_id = conn.peer_id
        if peer_id is None or self.connections.get(peer_id) is not conn:
            return
        del self.connections[peer_id]
        self.inboxes.connection_lost(conn, peer_id)
        peer = self.peers.get(peer_id)
        if peer is not None and mark_offline and peer.node == self.node:
            self.presence.went_offline(peer, reason)

    # ---- notify ------------------------------------------------------------------------------

    def check_rate(self, sender: Sender) -> None:
        key = sender.key_owner
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            limits = self.settings.limits
            bucket = self._buckets[key] = TokenBucket(limits.messages_per_second, limits.message_burst, now)
        if not bucket.take(now):
            raise HubError(ErrorCode.RATE_LIMITED,
                           f"more than {self.settings.limits.messages_per_second} messages a second",
                           {"retry_after_ms": 1000 // max(1, self.settings.limits.messages_per_second)})

    def _recipients(self, sender: Sender, to: str) -> tuple[Address, list[PeerRecord]]:
        address = parse_address(to)
        return address, resolve(address, sender=sender.peer, peers=self.peers.values(), by_id=self.peers,
                                by_name=self.registry.by_name, with_name=self.registry.with_name)

    async def learned(self, sender: Sender, refused: HubError, to: str | list[str]) -> bool:
        """After `peer_not_found`: on a store other nodes share, a peer that joined through
        another node a moment ago may not be in this node's copy yet (the node bus is on its
        way). Read the addresses this node does not know from the store; True when that found
        someone, and the operation may be tried once more."""
        if refused.code is not ErrorCode.PEER_NOT_FOUND or not self.in_mesh:
            return False
        found = []
        for raw in ([to] if isinstance(to, str) else to):
            address = parse_address(raw)
            if address.peer_id is not None and address.peer_id not in self.peers:
                found.append(address.peer_id)
            elif address.name is not None:
                circle = address.circle or (sender.peer.circle if sender.peer else "default")
                if (circle, address.name) not in self.registry.by_name:
                    peer_id = await self.store.peer_id_for_name(circle, address.name)
                    if peer_id is not None:
                        found.append(peer_id)
        if not found:
            return False
        await self.refresh_peers(found)
        return any(peer_id in self.peers for peer_id in found)

    async def learning(self, sender: Sender, to: str | list[str], submit: Callable[[], Awaitable[T]]) -> T:
        """Run `submit` (a notify, an ask, a job for a peer); when it is refused for an address
        this node has not heard of yet (see `learned`), once more after reading it from the store."""
        try:
            return await submit()
        except HubError as exc:
            return await self.again_if_learned(sender, exc, to, submit)

    async def again_if_learned(self, sender: Sender, refused: HubError, to: str | list[str],
                               submit: Callable[[], Awaitable[T]]) -> T:
        """`refused` came from a first try: run `submit` once more if `learned` found the address,
        else raise it (the socket tries first without a coroutine: its frames are the hot path)."""
        if not await self.learned(sender, refused, to):
            raise refused
        return await submit()

    def resolve_recipients(self, sender: Sender, to: str) -> list[PeerRecord]:
        return self._recipients(sender, to)[1]

    def check_text(self, text: str) -> None:
        limit = self.settings.limits.max_text_chars
        if len(text) > limit:
            raise HubError(ErrorCode.TEXT_TOO_LONG, f"text has {len(text)} characters; the limit is {limit}",
                           {"length": len(text), "limit": limit})

    def notify(self, sender: Sender, to: str, text: str, *, idempotency_key: str | None = None,
               attachments: list[dict] | None = None, message_id: str | None = None,
               schedule_id: str | None = None) -> asyncio.Future[MessageAccepted]:
        """The one way in for a notify (the socket, REST, a schedule's fire): a future for its
        result once it is durable and handed to online recipients. Without an idempotency key
        it is checked and submitted at once, so submission order is frame order (bad input
        raises here); with one, the key is claimed first, in a task of its own.
        `attachments`: the briefs of the sender's attachments it carries (already resolved)."""
        if idempotency_key is None:
            return self._submit_notify(sender, to, text, attachments=attachments, message_id=message_id,
                                       schedule_id=schedule_id)
        return asyncio.ensure_future(self.idempotency.run(
            sender.key_owner, idempotency_key, ["notify", to, text, *fingerprint_part(attachments)],
            lambda claimed: self._submit_notify(sender, to, text, attachments=attachments, claimed=claimed),
            MessageAccepted))

    @property
    def process_ref(self) -> str:
        """This process among every node's lives: `node/instance`."""
        return f"{self.node}/{self.instance}"

    async def process_gone(self, by: str) -> bool:
        """Whether the process named `node/instance` (by a claim, a close) is gone: this node's
        earlier life, or a node whose lease is now held by another life or by nobody."""
        node, _, instance = by.partition("/")
        if node == self.node:
            return instance != self.instance
        return await self.store.node_instance(node) != instance

    def _submit_notify(self, sender: Sender, to: str, text: str, *, message_id: str | None = None,
                      schedule_id: str | None = None, attachments: list[dict] | None = None,
                      claimed: Claimed | None = None) -> asyncio.Future[MessageAccepted]:
        """Validate and submit synchronously (so submission order is frame order); the returned
        future resolves once the message is durable and handed to online recipients.
        A scheduled fire passes its `schedule_id` and the message id it claimed (so that a fire
        sent again after a crash is the same message), and is not rate limited: the schedule was."""
        self.check_text(text)
        address, recipients = self._recipients(sender, to)
        if schedule_id is None:
            self.check_rate(sender)
        now = self.now_ms()
        message_id = message_id or self.ids.next(now)
        delivery = Delivery(kind="notify", message_id=message_id, text=text, sent_at=now, from_=sender.peer_ref,
                            schedule_id=schedule_id, attachments=attachment_refs(attachments))
        payload = encode(delivery)
        expires_at = now + self.settings.queue_ttl_s * 1000
        node = self.node
        stages = [stage_entry(Stage.ACCEPTED, now, node, kind="notify", from_peer=sender.key_owner,
                              to=to, recipients=len(recipients) if address.broadcast else None,
                              schedule_id=schedule_id)]
        batch = Batch()
        queued = []
        for peer in recipients:
            queued.append(batch.add(self.store.enqueue_cmd(peer.peer_id, message_id, payload, expires_at, message_id,
                                                           "notify", inbox_cap=self.settings.limits.inbox_per_peer)))
            stages.append(stage_entry(Stage.ROUTED, now, node, peer_id=peer.peer_id, name=peer.name,
                                      via=peer.node if peer.peer_id not in self.connections and self.presence.is_reachable(peer)
                                      else None))
            if not self.presence.is_reachable(peer):
                stages.append(stage_entry(Stage.QUEUED, now, node, peer_id=peer.peer_id,
                                          reason=Reason.RECIPIENT_OFFLINE))
        if attachments:
            batch.extend(grant_cmds(attachments, [p.peer_id for p in recipients],
                                    [inbox_ref(p.peer_id, message_id) for p in recipients]))
        traced = batch.add(self.store.trace_cmd(message_id, stages, self.settings.trace_retention_s,
                                                message=message_preview(delivery, to=to)))
        if claimed is not None:
            provisional = MessageAccepted(message_id=message_id, state="queued", recipients=[
                RecipientState(peer_id=p.peer_id, name=p.name, state="queued") for p in recipients
            ] if address.broadcast else None)
            batch.extend(self.idempotency.provisional_cmd(claimed, provisional))

        return then(self.store.writer.submit(batch.commands), self._notify_written,
                    SubmittedNotify(message_id, payload, expires_at, recipients, address.broadcast, batch, queued,
                                    traced))

    def _notify_written(self, sent: SubmittedNotify, replies: list[Any]) -> MessageAccepted:
        """The notify is durable (or the store refused it): hand it to live recipients and say
        what became of it, for each recipient when it was a broadcast."""
        message_id, recipients, batch = sent.message_id, sent.recipients, sent.batch
        queued = [r if isinstance(r := batch.reply(replies, slot), Exception) else parse_enqueued(r)
                  for slot in sent.queued]
        states: list[RecipientState] = []
        full = [peer for peer, q in zip(recipients, queued) if not isinstance(q, Exception) and q.seq == INBOX_FULL]
        if full:
            self._inbox_full(message_id, full)
            if not sent.broadcast:
                raise HubError(ErrorCode.INBOX_FULL, f"{full[0].address} has "
                               f"{self.settings.limits.inbox_per_peer} messages waiting, as many as it may; "
                               "try again once it has read some", {"peer_id": full[0].peer_id,
                                                                   "limit": self.settings.limits.inbox_per_peer})
        for peer, q in zip(recipients, queued):
            if not isinstance(q, Exception) and q.seq == INBOX_FULL:
                states.append(RecipientState(peer_id=peer.peer_id, name=peer.name, state="failed",
                                             reason=Reason.INBOX_FULL))
                continue
            if isinstance(q, Exception) or q.seq == -1:
                states.append(RecipientState(peer_id=peer.peer_id, name=peer.name, state="queued"))
                continue
            delivered = self.inboxes.hand_over(peer, q.seq, message_id, sent.payload, message_id, sent.expires_at,
                                               holder_gone=q.holder_gone)
            states.append(RecipientState(peer_id=peer.peer_id, name=peer.name,
                                         state="delivered" if delivered else "queued"))
        if isinstance(failed := batch.reply(replies, sent.traced), Exception):
            log.warning("trace write for %s failed: %s", message_id, failed)
        for state in states:
            self.metrics.message("notify", state.state)
        return MessageAccepted(message_id=message_id, state=overall_state(states),
                               recipients=states if sent.broadcast else None)

    def _inbox_full(self, message_id: str, peers: list[PeerRecord]) -> None:
        """The message reached no inbox of these peers: its trace says so, for each."""
        now = self.now_ms()
        stages = [stage_entry(Stage.FAILED, now, self.node, peer_id=peer.peer_id, reason=Reason.INBOX_FULL)
                  for peer in peers]
        self.store.writer.submit([self.store.trace_cmd(message_id, stages)], wait=False)

    # ---- reading -----------------------------------------------------------------------------

    def person_connections(self) -> list[Connection]:
        """The open sockets of `person` peers on this node: who hears of questions here."""
        return [conn for peer_id, conn in self.connections.items()
                if not conn.closed and (peer := self.peers.get(peer_id)) is not None and peer.role == PERSON]

    def peer_named(self, name: str, circle: str) -> PeerRecord | None:
        return self.registry.named(name, circle)

    def find_peer(self, ref: str, sender: Sender | None = None) -> PeerRecord:
        _, found = self._recipients(sender or Sender(None), ref)
        if len(found) != 1:
            raise HubError(ErrorCode.INVALID_REQUEST, "name one peer, not a circle")
        return found[0]

    async def list_peers(self, circle: str | None = None, status: str | None = None,
                         open_asks: Callable[[list[str]], Awaitable[dict[str, int]]] | None = None) -> list[PeerView]:
        """Peers by circle and name; `open_asks` counts the asks waiting for each one's reply."""
        peers = sorted((p for p in self.peers.values()
                        if (circle is None or p.circle == circle) and (status is None or p.status == status)),
                       key=lambda p: (p.circle, p.name))
        pending = await self.store.inbox_lengths(p.peer_id for p in peers)
        waiting = await open_asks([p.peer_id for p in peers]) if open_asks is not None else {}
        return [p.view(pending[p.peer_id], waiting.get(p.peer_id, 0)) for p in peers]

    async def nodes(self) -> list[NodeView]:
        """The nodes of this store (one, on the embedded store), live or not, with their peers online."""
        online: dict[str, int] = {}
        for peer in self.peers.values():
            if peer.status != OFFLINE and peer.role != BRIDGE:
                holder = peer.node or self.node
                online[holder] = online.get(holder, 0) + 1
        views = []
        for facts in await self.store.nodes():
            this = facts.node == self.node
            lease = facts.lease
            live = this or lease is not None
            # a node that is gone holds nobody, though its peers' records say so until they are taken offline
            views.append(NodeView(node=facts.node, url=facts.url, live=live, this=this,
                                  host=lease.host if lease else None, pid=lease.pid if lease else facts.pid or None,
                                  started_at=facts.started_at or None,
                                  peers_online=online.get(facts.node, 0) if live else 0))
        return views

    async def peer_view(self, peer: PeerRecord) -> PeerView:
        peer = self.registry.current(peer)
        pending = await self.store.inbox_lengths([peer.peer_id])
        return peer.view(pending[peer.peer_id])

    async def trace(self, trace_id: str, reader: Sender | None = None) -> Trace:
        """A message's trace; an agent (`reader`) reads only the traces of messages it sent or
        that were addressed to it, a person every trace."""
        stages = await self.store.read_trace(trace_id)
        if stages is None:
            raise HubError(ErrorCode.TRACE_NOT_FOUND, f"no trace with id {trace_id}", {"trace_id": trace_id})
        first = stages[0]
        if reader is not None and reader.peer is not None and not reader.is_person:
            me = reader.peer.peer_id
            if first.get("from_peer") != me and not any(me in (s.get("peer_id"), s.get("by")) for s in stages):
                raise HubError(ErrorCode.FORBIDDEN, "an agent reads the traces of its own messages only",
                               {"trace_id": trace_id})
        final_set = final_stages(first.get("kind", "notify"))
        finals = [s for s in stages if s["stage"] in final_set]
        return Trace(trace_id=trace_id, kind=first.get("kind", "notify"), from_=first.get("from_peer"),
                     to=first.get("to"), final=finals[-1]["stage"] if finals else None,
                     stages=msgspec.convert(stages, list[TraceStage]))

    def health(self, capabilities: list[str]) -> Health:
        questions = self.settings.questions
        return Health(ok=True, api_version=API_VERSION, version=__version__, node=self.node,
                      store=msgspec.convert(self.store_facts, StoreFacts), capabilities=capabilities,
                      peers=len(self.peers), connections=len(self.connections), tasks=len(asyncio.all_tasks()),
                      questions=QuestionTimes(max_timeout_s=questions.max_timeout_s, margin_s=questions.margin_s))

    # ---- the mesh: other nodes on the same store ----------------------------------------------

    async def refresh_peers(self, peer_ids: Iterable[str]) -> None:
        """Another node changed these peers: read them again and bring this node's copy in step."""
        ids = list(dict.fromkeys(peer_ids))
        for peer_id, record in zip(ids, await self.store.load_peers_by_id(ids)):
            self._adopt_record(peer_id, record, missing_means_deleted=True)

    async def reload_peers(self) -> None:
        """Catch up after the node bus was away: every record again, and every connection here
        reads its inbox (a wake may have been lost)."""
        records = {r.peer_id: r for r in await self.store.load_peers()}
        for peer_id in [*records, *(p for p in self.peers if p not in records)]:
            # a peer registering here right now may not be in the store yet: only the bus says deleted
            self._adopt_record(peer_id, records.get(peer_id), missing_means_deleted=peer_id not in self.connections)
        for peer_id in list(self.connections):
            self.inboxes.pull(peer_id)

    def _adopt_record(self, peer_id: str, record: PeerRecord | None, *, missing_means_deleted: bool) -> None:
        current = self.peers.get(peer_id)
        conn = self.connections.get(peer_id)
        if record is None:
            if current is None or not missing_means_deleted:
                return
            if conn is not None:
                conn.abort(ErrorCode.PEER_DELETED, "deleted through another hub node")
                self._release(conn, "deleted", mark_offline=False)
            self._forget(current)
            return
        if conn is not None and current is not None:
            if record.node != self.node and record.last_seen >= current.last_seen:
                # it connected to another node since it connected here: the newer connection wins
                conn.abort(ErrorCode.REPLACED, f"the same peer connected to hub node {record.node}")
                self._release(conn, "replaced", mark_offline=False)
            elif record.node != self.node or record.status == OFFLINE:
                # a read older than our own write, or another node took us for gone: we hold it
                record = replace(record, status=current.status, status_reason=current.status_reason,
                                 last_seen=current.last_seen, node=self.node)
                self.store.writer.submit(self.store.presence_cmds(current, self.node), wait=False)
        self.registry.put(record)

