"""Each peer's inbox as this node delivers it: the backlog replayed to a connection in order,
live pushes and the receipts that confirm them, reading by a session with no connection (take,
wait), wakes from other nodes (pull), and the sweep that expires what waited too long.

What a receipt or a lost connection does is hub.core.delivery's; this module carries out the
effects those transitions return."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from hub.core.delivery import Confirm, InFlight, on_connection_lost, on_receipt
from hub.core.delivery import Effect as DeliveryEffect
from hub.core.errors import HubError
from hub.core.peers import PeerRecord
from hub.core.trace import Reason, Stage, stage_entry
from hub.runtime.connection import Connection
from hub.runtime.periodic import every
from hub.runtime.presence import Presences
from hub.runtime.registry import PeerRegistry
from hub.store.batch import Batch
from hub.store.bus import Wake
from hub.store.state import InboxEntry, StoreState
from hub.store.writer import Command
from schemas.codec import decode_as, deliver_frame
from schemas.errors import ErrorCode
from schemas.frames import Deliver
from schemas.rest import InboxTaken

log = logging.getLogger(__name__)

INBOX_RECHECK_S = 2.0   # an inbox long-poll looks again this often (a message queued through another node)
REPLAY_PAGE = 256
FULL_SWEEP_ROUNDS = 12   # in a mesh, every 12th sweep looks at every inbox (see sweep_expired)
SWEEP_CHUNK = 256        # inboxes looked at in one store round trip: other writes pass between chunks

Expired = tuple[str, str, str]   # (peer id, trace id, kind) of a delivery the sweep expired


class Inboxes:
    def __init__(self, store: StoreState, registry: PeerRegistry, connections: dict[str, Connection],
                 presence: Presences, *, node: str, now_ms: Callable[[], int], sweep_interval_s: float):
        self._store = store
        self._registry = registry
        self._connections = connections
        self._presence = presence
        self._node = node
        self._now_ms = now_ms
        self._sweep_interval_s = sweep_interval_s
        self._readers: dict[str, set[asyncio.Event]] = {}   # peer id -> long-polls waiting for its inbox
        self._pulls: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None
        # peer id -> when the oldest delivery this node knows in its inbox expires (ms): the
        # sweep looks only at these, except in its full rounds (see sweep_expired)
        self._due: dict[str, int] = {}
        self._sweeps = 0
        self._failures_seen = 0   # the writer's failed batches at the last sweep
        # called with the deliveries each sweep expired
        self.expiry_listeners: list[Callable[[list[Expired]], None]] = []
        # given inbox entries about to be delivered, return the seqs of those to drop undelivered
        self.delivery_filters: list[Callable[[list[InboxEntry]], Awaitable[set[int]]]] = []

    def start(self) -> None:
        self._sweeper = asyncio.create_task(every(self._sweep_interval_s, self.sweep_expired, "inbox sweep"),
                                            name="inbox-sweeper")

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._pulls):
            task.cancel()

    # ---- a connection -------------------------------------------------------------------------

    async def replay(self, conn: Connection, after: int = 0) -> None:
        """Deliver the inbox after seq `after` in order, then switch the connection to live delivery.

        Reads go through the writer so they are ordered with the writes: a message written
        before a read is in it; one written after finds the connection live. A wake that comes
        meanwhile (another node queued something) makes it read once more before it stops."""
        peer_id = conn.peer_id
        assert peer_id is not None
        # A page fits in the half of the outbox left after the wait below, so a backlog longer
        # than the outbox is replayed as fast as the peer reads it, never cut as a slow consumer.
        page = max(1, min(REPLAY_PAGE, conn.outbox_limit // 2))
        while not conn.closed:
            (rows,) = await self._store.writer.write(self._store.inbox_page_cmd(peer_id, after, page))
            entries = self._store.parse_inbox(rows)
            if not entries:
                if conn.pull_again:
                    conn.pull_again = False
                    if conn.reread_all:
                        after, conn.reread_all = 0, False
                    continue
                conn.replaying = False
                return
            dropped = await self._undeliverable(entries)
            for entry in entries:
                if entry.expires_at <= self._now_ms() or entry.seq in dropped:
                    continue  # expired: the sweeper records it as expired
                self.push(conn, entry.seq, entry.message_id, entry.payload, entry.trace_id)
            if dropped:
                self._store.writer.submit([self._store.confirm_cmd(peer_id, seq) for seq in sorted(dropped)],
                                          wait=False)
            after = entries[-1].seq
            await conn.wait_below(conn.outbox_limit // 2)

    def pull(self, peer_id: str, wake: Wake | None = None) -> None:
        """Another node queued a delivery for a peer connected here (`wake` says which, when
        the store's wake said): read its inbox from the last seq this connection was given (or
        once more after the replay running now).

        A seq this connection was given already, for a message it does not hold, means the
        store gave that seq again: it lost writes in a failover (without replica acks) and
        counts from an earlier seq. Then the inbox is read from its start; what the connection
        holds is not pushed twice. (A wake for a message a read already pushed finds it held.)"""
        conn = self._connections.get(peer_id)
        if conn is None or conn.closed:
            return
        if wake is not None and wake.seq <= conn.last_pushed_seq and wake.message_id not in conn.inflight:
            conn.reread_all = True
        if conn.replaying:
            conn.pull_again = True
            return
        conn.replaying = True
        task = asyncio.create_task(self._pull(conn), name=f"pull {conn.label}")
        self._pulls.add(task)
        task.add_done_callback(self._pulls.discard)

    async def _pull(self, conn: Connection) -> None:
        after, conn.reread_all = (0 if conn.reread_all else conn.last_pushed_seq), False
        try:
            await self.replay(conn, after)
        except HubError as exc:
            log.warning("inbox read for %s stopped: %s", conn.label, exc.message)
            conn.abort(exc.code, exc.message)

    def hand_over(self, peer: PeerRecord, seq: int, message_id: str, payload: bytes, trace_id: str,
                  expires_at: int, *, holder_gone: bool = False) -> bool:
        """A delivery was just queued for `peer` at `seq`, to expire at `expires_at`: push it to
        the peer's connection here (unless a replay is running, which reads it in order), or
        wake whoever reads the inbox here. True when it is on its way now: pushed here, or the
        peer is live on another node, which the store woke. False: it waits in the inbox (also
        when the store found nobody listening for the node said to hold the peer: `holder_gone`,
        which the trace says, as `queued`)."""
        if expires_at < self._due.get(peer.peer_id, expires_at + 1):
            self._due[peer.peer_id] = expires_at
        conn = self._connections.get(peer.peer_id)
        if conn is not None:
            return not conn.replaying and self.push(conn, seq, message_id, payload, trace_id)
        self.grew(peer.peer_id)
        if holder_gone:
            self._store.writer.submit([self._store.trace_cmd(trace_id, [stage_entry(
                Stage.QUEUED, self._now_ms(), self._node, peer_id=peer.peer_id, reason=Reason.HOLDER_GONE)])],
                wait=False)
            return False
        return self._presence.is_reachable(peer)

    def push(self, conn: Connection, seq: int, message_id: str, payload: bytes, trace_id: str) -> bool:
        """Hand a stored delivery to a live connection; remember it until its receipt."""
        if seq <= conn.last_pushed_seq and message_id in conn.inflight:
            return True
        if not conn.push(deliver_frame(seq, payload)):
            return False
        conn.last_pushed_seq = max(conn.last_pushed_seq, seq)
        conn.inflight[message_id] = InFlight(seq, self._now_ms(), trace_id)
        return True

    def receipt(self, peer: PeerRecord, conn: Connection | None, message_id: str, status: str,
                reason: str | None) -> None:
        """Confirm a delivery: drop it from the inbox, record sent + received/injected/failed
        (`held`: record why it was not delivered and keep it in the inbox).
        A receipt for a delivery this connection does not hold (already settled) still lands in
        the trace, as `late_receipt`, and ends nothing: a trace has one final stage."""
        inflight = conn.inflight.pop(message_id, None) if conn is not None else None
        self.carry_out(on_receipt(inflight, message_id=message_id, peer_id=peer.peer_id, status=status, reason=reason,
                                  now=self._now_ms(), node=self._node))

    def connection_lost(self, conn: Connection, peer_id: str) -> None:
        """Sent but never confirmed: the traces say sent; the inbox keeps them for next time."""
        if conn.inflight:
            self.carry_out(on_connection_lost(conn.inflight.values(), peer_id=peer_id, node=self._node))
            conn.inflight.clear()

    def carry_out(self, effects: Iterable[DeliveryEffect]) -> None:
        """Write what a delivery's transitions call for, in one packet nobody waits on."""
        cmds = [self.effect_cmd(effect) for effect in effects]
        if cmds:
            self._store.writer.submit(cmds, wait=False)

    def effect_cmd(self, effect: DeliveryEffect) -> Command:
        """The store command of a delivery effect (the ask's close uses it for its own too)."""
        if isinstance(effect, Confirm):
            return self._store.confirm_cmd(effect.peer_id, effect.seq)
        return self._store.trace_cmd(effect.trace_id, list(effect.stages), message=effect.message)

    async def _undeliverable(self, entries: list[InboxEntry]) -> set[int]:
        """The seqs of inbox entries no longer to be delivered (an ask closed while it waited)."""
        dropped: set[int] = set()
        for undeliverable in self.delivery_filters:
            dropped |= await undeliverable(entries)
        return dropped

    # ---- a session with no connection ---------------------------------------------------------

    def grew(self, peer_id: str) -> None:
        """A message was queued for a peer with no connection here: wake its waiting readers."""
        for woken in self._readers.get(peer_id, ()):
            woken.set()

    async def wait(self, peer: PeerRecord, timeout_s: float) -> None:
        """Returns once the peer's inbox holds something, or after `timeout_s`: woken by a
        message queued on this node, and looking again every INBOX_RECHECK_S for one queued
        through another node of the mesh. It only reads, so a caller may stop waiting at any
        moment and nothing is taken (`take` does that, after)."""
        deadline_ms = self._now_ms() + timeout_s * 1000
        readers = self._readers.setdefault(peer.peer_id, set())
        woken = asyncio.Event()
        readers.add(woken)
        try:
            for _ in range(int(timeout_s / INBOX_RECHECK_S) + 2):
                woken.clear()
                left = (deadline_ms - self._now_ms()) / 1000
                if left <= 0 or (await self._store.inbox_lengths([peer.peer_id]))[peer.peer_id]:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, INBOX_RECHECK_S)):
                        await woken.wait()
        finally:
            readers.discard(woken)
            if not readers:
                self._readers.pop(peer.peer_id, None)

    async def take(self, peer: PeerRecord, limit: int) -> InboxTaken:
        """Deliver up to `limit` queued messages in the answer, for a peer with no connection
        (an agent session outside tmux, read by its Stop hook): each is confirmed and its trace
        ends `received` (reason `taken`) in the same write, so none is handed out twice."""
        if peer.peer_id in self._connections:
            raise HubError(ErrorCode.CONFLICT, f"{peer.address} is connected; its messages are delivered over its "
                           "connection", {"peer_id": peer.peer_id})
        (rows,) = await self._store.writer.write(self._store.inbox_page_cmd(peer.peer_id, 0, limit))
        now = self._now_ms()
        deliveries: list[Deliver] = []
        batch = Batch()
        entries = self._store.parse_inbox(rows)
        dropped = await self._undeliverable(entries)
        for entry in entries:
            if entry.expires_at <= now:
                continue  # the sweeper records it as expired
            batch.extend([self._store.confirm_cmd(peer.peer_id, entry.seq)])
            if entry.seq in dropped:
                continue
            deliveries.append(decode_as(deliver_frame(entry.seq, entry.payload), Deliver))
            batch.extend([self._store.trace_cmd(entry.trace_id, [
                stage_entry(Stage.SENT, now, self._node, peer_id=peer.peer_id, seq=entry.seq),
                stage_entry(Stage.RECEIVED, now, self._node, peer_id=peer.peer_id, reason=Reason.TAKEN)])])
        left = batch.add(self._store.inbox_length_cmd(peer.peer_id))
        replies = await self._store.writer.write(*batch.commands)
        return InboxTaken(deliveries=deliveries, remaining=int(batch.reply(replies, left)))

    # ---- expiry -------------------------------------------------------------------------------

    async def sweep_expired(self) -> int:
        """Remove queued deliveries past their time-to-live and end their traces as expired;
        listeners (the ask service) hear of each, to tell whoever is waiting. It looks at the
        inboxes whose oldest delivery is due: every path that queues a delivery tells this node
        when it falls due, so the work grows with the inboxes that hold something to expire,
        not with the peers. A full round looks at every inbox this node keeps, for what nobody
        here was told of: the first round (what an earlier life of the hub queued), the round
        after a store write failed (it may have queued something all the same), and in a mesh
        every FULL_SWEEP_ROUNDS (what a node that died had queued)."""
        now = self._now_ms()
        failures = self._store.writer.failures
        full = (self._sweeps == 0 or failures != self._failures_seen
                or (bool(self._store.mesh_node) and self._sweeps % FULL_SWEEP_ROUNDS == 0))
        self._failures_seen = failures
        self._sweeps += 1
        if full:
            kept_here = [peer_id for peer_id, peer in self._registry.by_id.items() if peer.node in ("", self._node)]
            peer_ids = [*kept_here, *(self._due.keys() - set(kept_here))]
            taken = dict(self._due)
            self._due.clear()
        else:
            peer_ids = [peer_id for peer_id, due in self._due.items() if due <= now]
            taken = {peer_id: self._due.pop(peer_id) for peer_id in peer_ids}
        if not peer_ids:
            return 0
        results: list = []
        try:
            for start in range(0, len(peer_ids), SWEEP_CHUNK):
                chunk = peer_ids[start:start + SWEEP_CHUNK]
                results += await self._store.writer.write(*(self._store.expire_head_cmd(p, now) for p in chunk))
        except HubError:   # what was not looked at is still due next round
            for peer_id in peer_ids[len(results):]:
                due = taken.get(peer_id)
                if due is not None:
                    self._due[peer_id] = min(due, self._due.get(peer_id, due))
            if not results:
                raise
        expired: list[Expired] = []
        for peer_id, reply in zip(peer_ids, results):
            head = self._store.parse_expired(reply)
            next_due = now if head.failed else head.next_due
            if next_due:   # what was queued meanwhile may be due sooner
                self._due[peer_id] = min(next_due, self._due.get(peer_id, next_due))
            expired += [(peer_id, trace_id, kind) for trace_id, kind in head.removed]
        if not expired:
            return 0
        cmds = [self._store.trace_cmd(trace_id, [stage_entry(Stage.EXPIRED, now, self._node, peer_id=peer_id,
                                                             reason=Reason.QUEUE_TTL, of=kind)])
                for peer_id, trace_id, kind in expired]
        for peer_id, trace_id, _ in expired:  # a receipt that comes now is late, not final
            conn = self._connections.get(peer_id)
            if conn is not None:
                for message_id in [m for m, d in conn.inflight.items() if d.trace_id == trace_id]:
                    del conn.inflight[message_id]
        await self._store.writer.write(*cmds)
        for listener in self.expiry_listeners:
            listener(expired)
        return len(expired)
