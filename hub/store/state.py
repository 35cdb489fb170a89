"""The hub's state in the store: peers, names and tokens, inboxes, traces, idempotency keys.

Methods named `*_cmds` return commands for the group-commit writer, so the runtime can put a
message, its trace stages and its idempotency result in one batch. `async` methods read
directly; reads are rare (start-up, reconnect, REST lookups), never once per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from hub.core.nodes import LeaseHolder
from hub.core.peers import PeerRecord
from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.writer import Command, Writer
from schemas.base import Struct
from schemas.codec import decode_as, encode, encode_all
from schemas.dashboard import MessagePreview
from schemas.rest import TraceStage

log = logging.getLogger(__name__)

EVENTS_KEPT = 50_000   # the event stream's length: what a dashboard can catch up on after a gap
EVENT_BATCH_S = 0.005  # at most one stream entry of trace events this often (the first of a quiet spell goes at once)
ROW_EVENT_BATCH_S = 0.001  # but an event that puts a message on the page (its start, its close) waits at most this


def _log_event_write(written: asyncio.Future[list]) -> None:
    if not written.cancelled() and (failed := written.exception()) is not None:
        log.warning("the dashboards' event stream missed a `traces` entry: %s", failed)


@dataclass(frozen=True, slots=True)
class HelloReply:
    resumed_traces: list[str]   # deliveries the peer's resume cursor says it has: they end received
    pending: int
    last_seq: int


class _TracesEncoded(Struct, omit_defaults=True):
    """A `TracesChanged` (schemas.dashboard) whose stages are the bytes already written to the
    trace: each stage is encoded once, for the ledger and for the dashboards."""
    trace_id: str
    stages: list[msgspec.Raw]
    message: MessagePreview | None = None


class IdempotencyRecord(Struct, omit_defaults=True):
    """An idempotency key's record: the digest of what was sent with it, the process that
    claimed it (`node/instance`), and once written the operation's result, kept encoded."""
    digest: str
    by: str = ""
    result: msgspec.Raw = msgspec.Raw()   # empty until the operation's result is written


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """A hub node as the store knows it: where it answers, its process, and its lease ("<host>
    <pid> <instance>") while it is alive on a shared store."""
    node: str
    url: str
    pid: int
    started_at: int
    lease: LeaseHolder | None


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What ENQUEUE answered: the delivery's place in the inbox (-1: no such peer, -2: the inbox
    is full), and whether the node holding the peer's connection was woken and nobody listened
    (that node is gone though its lease has not run out: the delivery waits in the inbox)."""
    seq: int
    holder_gone: bool = False


def parse_enqueued(reply: object) -> Enqueued:
    if isinstance(reply, list):
        (seq,) = reply
        return Enqueued(int(seq), holder_gone=True)
    if not isinstance(reply, int):
        raise replies.StoreReplyError(f"ENQUEUE answered {type(reply).__name__}")
    return Enqueued(reply)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    seq: int
    message_id: str
    payload: bytes
    expires_at: int
    trace_id: str
    kind: str


def _trace_write(trace_id: str, encoded_stages: list[bytes], start_ttl_s: int) -> Command:
    """Create a trace with its retention (a script: the list and its expiry in one step), or
    append to one that exists: RPUSHX, which appends nothing past retention and costs the store
    about half what the script call did (INFO commandstats: 2 µs against 4-5). Either replies
    with the trace's length, 0 when nothing was added."""
    if start_ttl_s:
        return ("EVALSHA", scripts.SHA["TRACE"], 1, keys.trace(trace_id), start_ttl_s, *encoded_stages)
    return ("RPUSHX", keys.trace(trace_id), *encoded_stages)


def as_text(value: bytes | str) -> str:
    """Store replies come back as bytes (no response decoding): text for the hub."""
    return value.decode() if isinstance(value, bytes) else value


def bus_message(kind: str, node: str, data: bytes | str) -> bytes:
    """A node-bus message: "<kind> <node> <data>" (see hub.store.bus)."""
    return b"%s %s %s" % (kind.encode(), node.encode(), data.encode() if isinstance(data, str) else data)


@dataclass(frozen=True, slots=True)
class ExpiredHead:
    """What the expiry script did to one inbox: the (trace id, kind) of each delivery it
    removed, and when the inbox's head expires next (0: it is empty)."""
    next_due: int
    removed: list[tuple[str, str]]
    failed: bool = False


@maps_store_errors
class StoreState:
    """`mesh_node` is this node's name when the store is shared with other hub nodes (they are
    told of changes to peers and woken for deliveries), '' when this hub is alone on it."""

    def __init__(self, client: StoreClient, writer: Writer, mesh_node: str = ""):
        self.client = client
        self.writer = writer
        self.mesh_node = mesh_node
        self._trace_events: list[_TracesEncoded] = []   # gathered for one `traces` event
        self._events_timer: asyncio.Handle | None = None
        self._events_due = 0.0          # loop time the gathered events are to be written by
        self._events_flushed_at = 0.0   # loop time of the last `traces` entry
        # whether a dashboard may be waiting for the event stream: always, in a mesh (another
        # node's dashboards read it too); a hub alone says when it has a subscriber
        self.events_watched: Callable[[], bool] = lambda: True

    # ---- peers -------------------------------------------------------------------------------

    async def load_peers(self) -> list[PeerRecord]:
        ids = await self.client.smembers(keys.PEERS)
        pipe = self.client.pipeline(transaction=False)
        for peer_id in ids:
            pipe.hgetall(keys.peer(as_text(peer_id)))
        rows = await pipe.execute()
        return [PeerRecord.from_store(row) for row in rows if row]

    async def load_peers_by_id(self, peer_ids: list[str]) -> list[PeerRecord | None]:
        """The records of these peers, None for those the store no longer has."""
        pipe = self.client.pipeline(transaction=False)
        for peer_id in peer_ids:
            pipe.hgetall(keys.peer(peer_id))
        rows = await pipe.execute()
        return [PeerRecord.from_store(row) if row else None for row in rows]

    async def peer_id_for_name(self, circle: str, name: str) -> str | None:
        found = await self.client.hget(keys.NAMES, keys.name_field(circle, name))
        return as_text(found) if found else None

    async def peer_id_for_token(self, digest: str) -> str | None:
        found = await self.client.hget(keys.TOKENS, digest)
        return as_text(found) if found else None

    def _peer_changed(self, peer_id: str) -> list[Command]:
        """Tell the other nodes to read the peer again (nothing when this hub is alone)."""
        if not self.mesh_node:
            return []
        return [("PUBLISH", keys.BUS, bus_message("peer", self.mesh_node, peer_id))]

    def save_peer_cmds(self, peer: PeerRecord, was: PeerRecord | None = None) -> list[Command]:
        """Write the peer's record and indexes; a credential the record it replaces (`was`) had
        and this one has not stops working."""
        fields = [x for kv in peer.to_store().items() for x in kv]
        cmds: list[Command] = [
            ("HSET", keys.peer(peer.peer_id), *fields),
            ("SADD", keys.PEERS, peer.peer_id),
            ("HSET", keys.NAMES, keys.name_field(peer.circle, peer.name), peer.peer_id),
            ("HSET", keys.TOKENS, peer.token_digest, peer.peer_id),
        ]
        if peer.session_digest:
            cmds.append(("HSET", keys.TOKENS, peer.session_digest, peer.peer_id))
        if was is not None:
            cmds += [("HDEL", keys.TOKENS, digest) for digest in (was.token_digest, was.session_digest)
                     if digest and not peer.holds(digest)]
        return cmds + self._peer_changed(peer.peer_id)

    @staticmethod
    def drop_token_cmds(digest: str) -> list[Command]:
        """Forget a token that no longer works (nothing for "")."""
        return [("HDEL", keys.TOKENS, digest)] if digest else []

    def presence_cmds(self, peer: PeerRecord, holder: str | None = None) -> list[Command]:
        """Write the peer's presence if `holder` (default: the node the record names) still
        holds it in the store (scripts.SET_PRESENCE); the reply is 1 when it was applied."""
        told = bus_message("peer", self.mesh_node, peer.peer_id) if self.mesh_node else b""
        return [("EVALSHA", scripts.SHA["SET_PRESENCE"], 1, keys.peer(peer.peer_id), holder or peer.node,
                 peer.status, peer.status_reason, str(peer.last_seen), peer.node, told)]

    def delete_peer_cmds(self, peer: PeerRecord) -> list[Command]:
        return [
            ("DEL", keys.peer(peer.peer_id), keys.inbox(peer.peer_id)),
            ("SREM", keys.PEERS, peer.peer_id),
            ("HDEL", keys.NAMES, keys.name_field(peer.circle, peer.name)),
            ("HDEL", keys.TOKENS, peer.token_digest),
            *self.drop_token_cmds(peer.session_digest),
            *self._peer_changed(peer.peer_id),
        ]

    def publish_cmd(self, kind: str, data: bytes | str) -> list[Command]:
        """A node-bus message for the other nodes (nothing when this hub is alone on its store)."""
        if not self.mesh_node:
            return []
        return [("PUBLISH", keys.BUS, bus_message(kind, self.mesh_node, data))]

    # ---- inboxes -----------------------------------------------------------------------------

    def enqueue_cmd(self, peer_id: str, message_id: str, payload: bytes, expires_at: int, trace_id: str,
                    kind: str, index_score: int | None = None, inbox_cap: int = 0) -> Command:
        """Queue a delivery; with `index_score` (an ask) also index it among the peer's inbound
        asks. The node holding the peer's connection, if another, is woken by the script. With
        `inbox_cap`, an inbox already that long takes nothing (the script answers -2; -1: no peer)."""
        if index_score is None:
            return ("EVALSHA", scripts.SHA["ENQUEUE"], 2, keys.peer(peer_id), keys.inbox(peer_id),
                    message_id, payload, expires_at, trace_id, kind, self.mesh_node, peer_id, 0, inbox_cap)
        return ("EVALSHA", scripts.SHA["ENQUEUE"], 3, keys.peer(peer_id), keys.inbox(peer_id),
                keys.asks_inbound(peer_id), message_id, payload, expires_at, trace_id, kind, self.mesh_node, peer_id,
                index_score, inbox_cap)

    @staticmethod
    def confirm_cmd(peer_id: str, seq: int) -> Command:
        return ("XDEL", keys.inbox(peer_id), f"{seq}-0")

    @staticmethod
    def confirm_upto_cmd(peer_id: str, seq: int) -> Command:
        return ("EVALSHA", scripts.SHA["CONFIRM_UPTO"], 2, keys.inbox(peer_id), keys.peer(peer_id), seq)

    @staticmethod
    def expire_head_cmd(peer_id: str, now_ms: int, count: int = 100) -> Command:
        return ("EVALSHA", scripts.SHA["EXPIRE_HEAD"], 1, keys.inbox(peer_id), now_ms, count)

    @staticmethod
    def parse_expired(reply: Any) -> ExpiredHead:
        """EXPIRE_HEAD's answer (an exception when the script failed for this inbox: nothing
        was removed, and it is looked at again in the next sweep)."""
        if isinstance(reply, Exception):
            return ExpiredHead(next_due=0, removed=[], failed=True)
        next_due, *pairs = reply
        values = replies.texts(pairs)
        return ExpiredHead(next_due=int(next_due), removed=list(zip(values[::2], values[1::2])))

    @staticmethod
    def inbox_page_cmd(peer_id: str, after_seq: int, count: int) -> Command:
        return ("XRANGE", keys.inbox(peer_id), f"({after_seq}-0", "+", "COUNT", count)

    @staticmethod
    def parse_inbox(rows) -> list[InboxEntry]:
        entries = []
        for entry_id, fields in rows or []:
            if isinstance(fields, list):
                fields = dict(zip(fields[::2], fields[1::2]))
            entries.append(InboxEntry(seq=int(as_text(entry_id).split("-")[0]), message_id=as_text(fields[b"m"]),
                                      payload=fields[b"p"], expires_at=int(fields[b"x"]),
                                      trace_id=as_text(fields[b"t"]), kind=as_text(fields[b"k"])))
        return entries

    async def read_inbox(self, peer_id: str, after_seq: int, count: int) -> list[InboxEntry]:
        rows = await self.client.execute_command(*self.inbox_page_cmd(peer_id, after_seq, count))
        return self.parse_inbox(rows)

    @staticmethod
    def inbox_length_cmd(peer_id: str) -> Command:
        return ("XLEN", keys.inbox(peer_id))

    @staticmethod
    def last_seq_cmd(peer_id: str) -> Command:
        return ("HGET", keys.peer(peer_id), "next_seq")

    def hello_cmds(self, peer: PeerRecord, was: PeerRecord | None, resume: int | None) -> list[Command]:
        """One batch for a hello: the registration (of the record that replaces `was`), the
        resume cursor, and the position the `welcome` reports (read with parse_hello)."""
        cmds = self.save_peer_cmds(peer, was)
        if resume is not None:
            cmds.append(self.confirm_upto_cmd(peer.peer_id, resume))
        return [*cmds, self.inbox_length_cmd(peer.peer_id), self.last_seq_cmd(peer.peer_id)]

    @staticmethod
    def parse_hello(results: list[Any], resumed: bool) -> HelloReply:
        """The hello batch's answers: the traces the resume cursor ended, the inbox's length and
        the last seq given to the peer."""
        *_, confirmed, pending, last_seq = [None, None, *results]
        return HelloReply(resumed_traces=replies.texts(confirmed) if resumed else [], pending=int(pending),
                          last_seq=int(last_seq or 0))

    async def inbox_lengths(self, peer_ids: Iterable[str]) -> dict[str, int]:
        ids = list(peer_ids)
        pipe = self.client.pipeline(transaction=False)
        for peer_id in ids:
            pipe.xlen(keys.inbox(peer_id))
        return dict(zip(ids, await pipe.execute()))

    # ---- traces ------------------------------------------------------------------------------

    def trace_cmd(self, trace_id: str, stages: list[TraceStage], start_ttl_s: int = 0,
                  message: MessagePreview | None = None) -> Command:
        """Append stages to a trace (with start_ttl_s the trace is created and its retention
        set). Dashboards hear of them through the event stream: the stages are gathered for up
        to EVENT_BATCH_S and appended as one `traces` entry; with `message` (what the dashboard
        shows of a message that starts or closes here: a row of the page) for up to
        ROW_EVENT_BATCH_S while a dashboard may be watching."""
        encoded = [encode(s) for s in stages]
        self._trace_events.append(_TracesEncoded(trace_id=trace_id, stages=[msgspec.Raw(e) for e in encoded],
                                                 message=message))
        rows_watched = message is not None and self.events_watched()
        self._write_events_by(self._events_flushed_at + (ROW_EVENT_BATCH_S if rows_watched else EVENT_BATCH_S))
        return _trace_write(trace_id, encoded, start_ttl_s)

    def _write_events_by(self, due: float) -> None:
        """The gathered events are written at loop time `due`, or sooner if already set so. One
        due by now goes at the end of this loop turn, in the packet that carries the trace
        itself (its write is submitted in this turn, before the flush)."""
        if self._events_timer is not None:
            if self._events_due <= due:
                return
            self._events_timer.cancel()
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = max(due, now)
        self._events_due = due
        self._events_timer = (loop.call_later(due - now, self.flush_trace_events) if due > now
                              else loop.call_soon(self.flush_trace_events))

    def flush_trace_events(self) -> None:
        """Write the gathered trace events now (the timer does; so does the hub as it stops)."""
        if self._events_timer is not None:
            self._events_timer.cancel()
            self._events_timer = None
        if self._trace_events:
            self._events_flushed_at = asyncio.get_running_loop().time()
            data = encode_all(self._trace_events)
            self._trace_events = []
            # Awaited by nobody. Sent at once while a dashboard may be waiting for it; else it
            # lingers for a packet to share (a dashboard that subscribes meanwhile reads it from
            # the stream all the same).
            self.writer.submit([self.event_cmd("traces", data)],
                               linger=not self.events_watched()).add_done_callback(_log_event_write)

    @staticmethod
    def unannounced_trace_cmd(trace_id: str, stages: list[TraceStage], start_ttl_s: int = 0) -> Command:
        """The trace write alone, with no event for dashboards (for tests that stage a crash)."""
        return _trace_write(trace_id, [encode(s) for s in stages], start_ttl_s)

    async def read_trace(self, message_id: str) -> list[dict] | None:
        rows = await self.client.lrange(keys.trace(message_id), 0, -1)
        return [orjson.loads(r) for r in rows] if rows else None

    # ---- idempotency -------------------------------------------------------------------------

    @staticmethod
    def idempotency_claim_cmd(peer_id: str, key: str, digest: str, ttl_s: int, by: str,
                              take_over: bool = False) -> Command:
        """Claim a key for the process `by` (node/instance); `take_over` replaces a claim whose
        process died before it wrote anything."""
        return ("SET", keys.idempotency(peer_id, key), encode(IdempotencyRecord(digest=digest, by=by)),
                "XX" if take_over else "NX", "EX", ttl_s)

    @staticmethod
    def idempotency_result_cmd(peer_id: str, key: str, digest: str, result: msgspec.Struct, ttl_s: int) -> Command:
        return ("SET", keys.idempotency(peer_id, key),
                encode(IdempotencyRecord(digest=digest, result=msgspec.Raw(encode(result)))), "EX", ttl_s)

    @staticmethod
    def idempotency_release_cmd(peer_id: str, key: str) -> Command:
        return ("DEL", keys.idempotency(peer_id, key))

    async def idempotency_get(self, peer_id: str, key: str) -> IdempotencyRecord | None:
        raw = await self.client.get(keys.idempotency(peer_id, key))
        return decode_as(raw, IdempotencyRecord) if raw else None

    async def nodes(self) -> list[NodeFacts]:
        """Every node that announced itself on this store, with its lease if it holds one."""
        announced = {as_text(k): orjson.loads(v) for k, v in (await self.client.hgetall(keys.NODES)).items()}
        names = sorted(announced)
        pipe = self.client.pipeline(transaction=False)   # one GET each: on a cluster the leases live in many slots
        for name in names:
            pipe.get(keys.node_lease(name))
        leases = await pipe.execute() if names else []
        return [NodeFacts(name, str(announced[name].get("url", "")), int(announced[name].get("pid", 0)),
                          int(announced[name].get("started_at", 0)), LeaseHolder.decode(lease) if lease else None)
                for name, lease in zip(names, leases)]

    async def node_instance(self, node: str) -> str | None:
        """The process holding a node's lease now (see hub.store.bus), None when none does."""
        raw = await self.client.get(keys.node_lease(node))
        holder = LeaseHolder.decode(raw)
        return holder.instance if holder else None

    @staticmethod
    def event_cmd(kind: str, data: bytes) -> Command:
        """Append to the event stream, which keeps about EVENTS_KEPT entries."""
        return ("XADD", keys.EVENTS, "MAXLEN", "~", EVENTS_KEPT, "*", "k", kind, "d", data)

    # ---- meta --------------------------------------------------------------------------------

    async def ensure_epoch(self, candidate: str) -> str:
        """The store's epoch changes only when its data is gone; clients use it to tell."""
        await self.client.hsetnx(keys.META, "epoch", candidate)
        return replies.text(await self.client.hget(keys.META, "epoch"))
