"""Group commit on one pipelined connection: every store write of a loop turn goes out in one
packet, and packets do not wait for each other's replies.

Callers `submit` a batch of commands and may await its results. At the end of the loop turn
everything submitted during it is packed into one write; the connection's replies are parsed by
callback as they arrive (hiredis) and resolve each batch, with no task or coroutine per reply.
Because the store answers one connection in order, batches are applied
in submission order, and a background write (a trace stage) never holds up the next awaited
one by a round trip. A broken or silent store fails every batch in flight with
`store_unavailable`: nothing is reported as written that was not.

With `replica_acks` N > 0, a packet that carries an awaited batch ends with `WAIT N`: its
batches are answered only once N replicas have every write before it, so what the hub accepted
survives the primary's loss (a replica promoted in its place has it). When fewer replicas
confirm in time, the awaited batches fail with `store_unavailable` (they may be applied: the
caller's retry with the same idempotency key is answered from the first attempt).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, overload

import hiredis
import redis.asyncio as redis
from redis._parsers import BaseParser  # redis-py's mapping of error replies to its exception classes
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.core.errors import HubError
from hub.store import scripts
from hub.store.connect import StoreClient, unavailable
from hub.store.resp import pack
from schemas.errors import ErrorCode

log = logging.getLogger(__name__)

Command = tuple
_Batch = tuple[Sequence[Command], "asyncio.Future[list] | None"]
_StoreDown = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError, EOFError)
REPLICA_WAIT_MS = 2000   # how long a packet's WAIT gives the replicas before its batches fail
BACKGROUND_LINGER_S = 0.002   # how long a write nobody awaits may wait for a packet to share


class Writer(Protocol):
    """What the hub writes through: a GroupCommitWriter, or a ClusterWriter (one per primary)."""
    observe: Callable[[int, float], None] | None
    failures: int   # awaited or not, batches that failed: the hub cannot tell what the store did of them

    def start(self) -> None: ...

    async def close(self) -> None: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[True] = True,
               linger: bool = False) -> asyncio.Future[list[Any]]: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[False], linger: bool = False) -> None: ...

    def submit(self, commands: Sequence[Command], *, wait: bool = True,
               linger: bool = False) -> asyncio.Future[list[Any]] | None: ...

    async def write(self, *commands: Command) -> list[Any]: ...


def replicas_behind(wanted: int, confirmed: int) -> HubError:
    return HubError(ErrorCode.STORE_UNAVAILABLE,
                    f"the store copied the write to {confirmed} of the {wanted} replica(s) required "
                    f"(--replica-acks) within {REPLICA_WAIT_MS} ms", {"retry": True})


@dataclass(slots=True)
class _Packet:
    """Batches that went out in one write, and what answers them."""
    batches: list[_Batch]
    commands: int       # the batches' commands
    replies: int        # the replies that answer the packet: its commands, and its WAIT if any
    waits: bool         # ended by WAIT: its last reply counts the replicas that have it
    sent_at: float      # perf_counter, for `observe`


class _StoreLink(asyncio.Protocol):
    """One store connection of a writer, read by callback: hiredis parses each reply as its bytes
    arrive and a packet whose replies are complete is handed to the writer at once. No reader
    task and no coroutine per reply: a loop turn is saved on every round trip."""

    def __init__(self, conn: Any, writer: GroupCommitWriter):
        self.conn = conn                          # redis-py's connection, given back to its pool after
        self.packets: deque[_Packet] = deque()    # sent, not yet answered, oldest first
        self.replies_due = 0                      # replies the packets in flight are waiting for
        self.waiting_since = 0.0                  # monotonic: when the oldest packet began to wait
        self.paused = False                       # the socket's send buffer is full
        self.gone = False
        self._writer = writer
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self._replies: list[Any] = []
        # redis-py opened the connection (address, TLS, AUTH, SELECT) and the scripts were loaded
        # on it; from here on this protocol reads its socket and redis-py's reader stays idle.
        self.transport: asyncio.Transport = conn._writer.transport
        self.transport.set_protocol(self)

    def send(self, packet: _Packet, data: bytes) -> None:
        if not self.packets:
            self.waiting_since = time.monotonic()
        self.packets.append(packet)
        self.replies_due += packet.replies
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        try:
            while not self.gone and (reply := parser.gets()) is not False:
                if not self.packets:
                    raise InvalidResponse("the store sent a reply to nothing the hub asked")
                self._replies.append(reply)
                head = self.packets[0]
                if len(self._replies) == head.replies:
                    replies, self._replies = self._replies, []
                    self.packets.popleft()
                    self.replies_due -= head.replies
                    self.waiting_since = time.monotonic()
                    self._writer.answered(self, head, replies)
        except InvalidResponse as exc:
            self.abort(exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._writer.flush_soon()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or RedisConnectionError("the store closed the connection"))

    def abort(self, exc: BaseException) -> None:
        """Give up on the connection: every packet in flight on it fails with `exc`."""
        if not self.gone:
            self.transport.abort()
            self._end(exc)

    def _end(self, exc: BaseException) -> None:
        if not self.gone:
            self.gone = True
            self._writer.link_lost(self, exc)


class GroupCommitWriter:
    def __init__(self, client: redis.Redis, max_commands: int = 2048, max_in_flight: int = 16_384,
                 timeout_s: float = 5.0, *, replica_acks: int = 0, owns_client: bool = False):
        self._client = client
        self._owns_client = owns_client        # closed with the writer
        self._replica_acks = replica_acks      # WAIT for this many replicas before answering awaited batches
        self._max_commands = max_commands      # per packet
        self._max_in_flight = max_in_flight    # replies due before the next packet waits for room
        self._timeout_s = timeout_s            # a store that answers nothing for this long is down
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Batch] = []
        self._flush_due = False                # a flush is scheduled for the end of this loop turn
        self._background_timer: asyncio.TimerHandle | None = None   # sends what lingers, at the latest
        self._link: _StoreLink | None = None
        self._connecting: asyncio.Task | None = None
        self._silence_check: asyncio.TimerHandle | None = None
        self._held: deque[tuple[_Packet, list[Any]]] | None = None   # answers behind a script reload
        self._chores: set[asyncio.Task] = set()  # connections given back, scripts loaded again
        self._drained = asyncio.Event()        # after close: nothing is left to send or to answer
        self._closed = False
        self.observe: Callable[[int, float], None] | None = None   # (commands, seconds) per answered packet
        self.failures = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Flush what was submitted and wait for its replies, then stop."""
        self._closed = True
        self._flush()
        self._note_if_drained()
        await self._drained.wait()
        if self._silence_check is not None:
            self._silence_check.cancel()
        link, self._link = self._link, None
        if link is not None:
            link.gone = True
            link.transport.close()
            await self._give_back(link.conn)
        await asyncio.gather(*self._chores, return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[True] = True,
               linger: bool = False) -> asyncio.Future[list[Any]]: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[False], linger: bool = False) -> None: ...

    def submit(self, commands: Sequence[Command], *, wait: bool = True,
               linger: bool = False) -> asyncio.Future[list[Any]] | None:
        """Queue commands for the next packet: a future for their replies, or (wait=False) a
        write nobody awaits, whose failure is logged. A write nobody awaits, or one whose
        caller waits on nothing but its failure (`linger`), may wait BACKGROUND_LINGER_S for
        a packet to share."""
        loop = self._loop
        if self._closed or loop is None:
            raise unavailable(RuntimeError("writer closed" if self._closed else "writer not started"))
        future = loop.create_future() if wait else None
        self._pending.append((commands, future))
        if wait and not linger:
            self.flush_soon()
        elif self._background_timer is None:
            # A write nobody awaits (a trace stage, a receipt) lingers up to BACKGROUND_LINGER_S
            # for an awaited one to share its packet (the next notify's, when one message is in
            # flight per sender): one store round trip per message instead of two.
            self._background_timer = loop.call_later(BACKGROUND_LINGER_S, self._background_flush)
        return future

    async def write(self, *commands: Command) -> list[Any]:
        return await self.submit(commands)

    # ---- sending -----------------------------------------------------------------------------

    def flush_soon(self) -> None:
        """Send what is pending at the end of this loop turn: everything submitted during the
        turn shares one packet."""
        if not self._flush_due and self._loop is not None:
            self._flush_due = True
            self._loop.call_soon(self._flush)

    def _background_flush(self) -> None:
        self._background_timer = None
        self.flush_soon()

    def _flush(self) -> None:
        self._flush_due = False
        if not self._pending:
            return
        link = self._link
        if link is None:
            if self._connecting is None and self._loop is not None:
                self._connecting = self._loop.create_task(self._connect(), name="store-writer-connect")
            return
        while self._pending and not link.paused and link.replies_due < self._max_in_flight:
            taken = size = 0
            for commands, _ in self._pending:
                taken += 1
                size += len(commands)
                if size >= self._max_commands:
                    break
            if taken == len(self._pending):
                batches, self._pending = self._pending, []
            else:
                batches, self._pending = self._pending[:taken], self._pending[taken:]
            self._send(link, batches, size)
        if not self._pending and self._background_timer is not None:
            # what lingered went with this packet: the next write to linger gets its full time
            self._background_timer.cancel()
            self._background_timer = None

    def _send(self, link: _StoreLink, batches: list[_Batch], size: int) -> None:
        flat = [cmd for commands, _ in batches for cmd in commands] if len(batches) > 1 else list(batches[0][0])
        waits = self._replica_acks > 0 and any(future is not None for _, future in batches)
        if waits:
            flat.append(("WAIT", self._replica_acks, REPLICA_WAIT_MS))
        link.send(_Packet(batches, size, size + waits, waits, time.perf_counter()), pack(flat))
        if self._silence_check is None and self._loop is not None:
            self._silence_check = self._loop.call_later(self._timeout_s, self._check_silence)

    async def _connect(self) -> None:
        conn = None
        try:
            conn = await self._client.connection_pool.get_connection()
            await load_scripts_on(conn)  # a store that restarted has forgotten them
            self._link = _StoreLink(conn, self)
        except (*_StoreDown, ResponseError, InvalidResponse) as exc:
            if conn is not None:
                await self._give_back(conn)
            failed, self._pending = self._pending, []
            log.warning("store write of %d commands failed: %s", sum(len(c) for c, _ in failed), exc)
            self._fail(failed, exc)
        finally:
            self._connecting = None
        self._flush()
        self._note_if_drained()

    def _check_silence(self) -> None:
        self._silence_check = None
        link = self._link
        if link is None or not link.packets or self._loop is None:
            return
        silent_for = time.monotonic() - link.waiting_since
        if silent_for >= self._timeout_s:
            link.abort(RedisTimeoutError(f"the store answered nothing for {self._timeout_s:g} s"))
        else:
            self._silence_check = self._loop.call_later(self._timeout_s - silent_for, self._check_silence)

    # ---- answers -----------------------------------------------------------------------------

    def answered(self, link: _StoreLink, packet: _Packet, replies: list[Any]) -> None:
        """The link read every reply of `packet` (called by the link, in the order sent)."""
        if self.observe is not None:
            self.observe(packet.commands, time.perf_counter() - packet.sent_at)
        if self._pending and not self._flush_due:
            self.flush_soon()  # the packet freed room in flight
        if self._held is not None:  # an earlier packet is waiting for its scripts to be loaded again
            self._held.append((packet, replies))
            return
        self._settle(packet, replies)
        if self._closed:
            self._note_if_drained()

    def _settle(self, packet: _Packet, replies: list[Any]) -> None:
        errors = any(isinstance(reply, Exception) for reply in replies)
        if errors:
            down = next((reply for reply in replies if isinstance(reply, RedisConnectionError)), None)
            if down is not None:  # LOADING and the like: the store cannot serve this connection
                self._fail(packet.batches, down)
                if self._link is not None:
                    self._link.abort(down)
                return
        if packet.waits and not self._replicas_confirmed(packet.batches, replies.pop()):
            return
        if errors:
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)
                       or (isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"))]
            if missing:  # scripts flushed under us (SCRIPT FLUSH): load them and redo those commands
                self._held = deque()
                self._chore(self._redo_with_scripts(packet, replies, missing))
                return
        self._resolve(packet.batches, replies)

    async def _redo_with_scripts(self, packet: _Packet, replies: list[Any], missing: list[int]) -> None:
        log.warning("store forgot its scripts; loading them again")
        flat = [cmd for commands, _ in packet.batches for cmd in commands]
        try:
            await load_scripts(self._client)
            for i in missing:
                try:
                    replies[i] = await self._client.execute_command(*flat[i])
                except ResponseError as exc:
                    replies[i] = exc
        except _StoreDown as exc:
            self._fail(packet.batches, exc)
        else:
            self._resolve(packet.batches, replies)
        held, self._held = self._held or deque(), None
        while held:  # answers that came meanwhile, in order (another reload holds the rest again)
            later, later_replies = held.popleft()
            if self._held is not None:
                self._held.append((later, later_replies))
            else:
                self._settle(later, later_replies)
        self._note_if_drained()

    def _replicas_confirmed(self, batches: list[_Batch], confirmed: Any) -> bool:
        """True when the packet's WAIT saw enough replicas; else its awaited batches fail."""
        if isinstance(confirmed, int) and confirmed >= self._replica_acks:
            return True
        log.warning("store write confirmed by %s of %d replicas", confirmed, self._replica_acks)
        self.failures += 1
        error = replicas_behind(self._replica_acks, confirmed if isinstance(confirmed, int) else 0)
        for _, future in batches:
            if future is not None and not future.done():
                future.set_exception(error)
        return False

    @staticmethod
    def _resolve(batches: list[_Batch], results: list) -> None:
        parts: list[tuple[_Batch, list]] = []
        if len(batches) == 1:
            parts.append((batches[0], results))
        else:
            offset = 0
            for batch in batches:
                parts.append((batch, results[offset:offset + len(batch[0])]))
                offset += len(batch[0])
        for (_, future), part in parts:
            if future is None:
                for item in part:
                    if isinstance(item, Exception):
                        log.warning("background store write failed: %s", item)
            elif not future.done():
                future.set_result(part)

    # ---- failure -----------------------------------------------------------------------------

    def link_lost(self, link: _StoreLink, exc: BaseException) -> None:
        """The link's reply stream is gone: every packet in flight on it fails; what is pending
        goes out on a new connection."""
        if self._link is link:
            self._link = None
            self._chore(self._give_back(link.conn))
        failed, link.packets = list(link.packets), deque()
        link.replies_due = 0
        if failed:
            log.warning("store did not answer %d commands: %s", sum(p.commands for p in failed), exc)
        for packet in failed:
            self._fail(packet.batches, exc)
        if self._pending:
            self.flush_soon()
        self._note_if_drained()

    def _fail(self, batches: list[_Batch], exc: BaseException) -> None:
        if batches:
            self.failures += 1
        error = unavailable(exc)
        for _, future in batches:
            if future is not None and not future.done():
                future.set_exception(error)

    # ---- housekeeping ------------------------------------------------------------------------

    def _note_if_drained(self) -> None:
        if (self._closed and not self._pending and self._connecting is None and self._held is None
                and (self._link is None or not self._link.packets)):
            self._drained.set()

    def _chore(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _give_back(self, conn: Any) -> None:
        """Close a connection the writer took from its client's pool and return it there."""
        try:
            await conn.disconnect(nowait=True)
        except (*_StoreDown, RuntimeError):
            pass
        await self._client.connection_pool.release(conn)


async def load_scripts(client: StoreClient) -> None:
    for name, body in scripts.ALL.items():
        sha = await client.script_load(body)
        sha = sha.decode() if isinstance(sha, bytes) else sha
        if sha != scripts.SHA[name]:
            raise RuntimeError(f"store computed a different SHA for script {name}")


async def load_scripts_on(conn) -> None:
    """SCRIPT LOAD on one raw connection (the writer's, before it sends anything)."""
    if not conn.is_connected:
        await conn.connect()
    for body in scripts.ALL.values():
        await conn.send_command("SCRIPT", "LOAD", body)
        await conn.read_response()
