"""Group commit on one pipelined connection: every store write of a loop turn goes out in one
packet, and packets do not wait for each other's replies.

Callers `submit` a batch of commands and may await its results. A sender task packs whatever
accumulated since its last send into one write; a reader task reads the replies in order and
resolves each batch. Because the store answers one connection in order, batches are applied
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
from typing import Any, Literal, Protocol, overload

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
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

    def start(self) -> None: ...

    async def close(self) -> None: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[True] = True) -> asyncio.Future[list[Any]]: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[False]) -> None: ...

    def submit(self, commands: Sequence[Command], *, wait: bool = True) -> asyncio.Future[list[Any]] | None: ...

    async def write(self, *commands: Command) -> list[Any]: ...


def replicas_behind(wanted: int, confirmed: int) -> HubError:
    return HubError(ErrorCode.STORE_UNAVAILABLE,
                    f"the store copied the write to {confirmed} of the {wanted} replica(s) required "
                    f"(--replica-acks) within {REPLICA_WAIT_MS} ms", {"retry": True})


class GroupCommitWriter:
    def __init__(self, client: redis.Redis, max_commands: int = 2048, max_in_flight: int = 16_384,
                 timeout_s: float = 5.0, *, replica_acks: int = 0, owns_client: bool = False):
        self._client = client
        self._owns_client = owns_client        # closed with the writer
        self._replica_acks = replica_acks      # WAIT for this many replicas before answering awaited batches
        self._max_commands = max_commands      # per packet
        self._max_in_flight = max_in_flight    # commands sent and not yet answered
        self._timeout_s = timeout_s            # a store that answers nothing for this long is down
        self._background_wake = False
        self._pending: list[_Batch] = []
        self._wakeup = asyncio.Event()
        self._in_flight: deque[tuple[list[_Batch], float, bool]] = deque()   # packets sent, when, ended by WAIT
        self._in_flight_commands = 0
        self._replies_due = asyncio.Event()
        self._all_answered = asyncio.Event()   # set while nothing sent waits for its reply
        self._all_answered.set()
        self._room = asyncio.Event()
        self._room.set()
        self._conn = None  # the writer's own store connection, taken from its client's pool
        self._sender: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._closed = False
        self.observe: Callable[[int, float], None] | None = None   # (commands, seconds) per answered packet

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_forever(), name="store-writer")
        self._reader = asyncio.create_task(self._read_forever(), name="store-reader")

    async def close(self) -> None:
        """Flush what was submitted and wait for its replies, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._sender is not None:
            await self._sender
        if self._in_flight and self._reader is not None and not self._reader.done():
            answered = asyncio.ensure_future(self._all_answered.wait())
            await asyncio.wait({answered, self._reader}, return_when=asyncio.FIRST_COMPLETED)
            answered.cancel()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._drop_connection()
        if self._owns_client:
            await self._client.aclose()

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[True] = True) -> asyncio.Future[list[Any]]: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[False]) -> None: ...

    def submit(self, commands: Sequence[Command], *, wait: bool = True) -> asyncio.Future[list[Any]] | None:
        """Queue commands for the next packet: a future for their replies, or (wait=False) a
        write nobody awaits, whose failure is logged."""
        if self._closed:
            raise unavailable(RuntimeError("writer closed"))
        loop = asyncio.get_running_loop()
        future = loop.create_future() if wait else None
        self._pending.append((commands, future))
        if wait or self._closed:
            self._wakeup.set()
        elif not self._background_wake:
            # A write nobody awaits (a trace stage, a receipt) lingers up to BACKGROUND_LINGER_S
            # for an awaited one to share its packet (the next notify's, when one message is in
            # flight per sender): one store round trip per message instead of two.
            self._background_wake = True
            loop.call_later(BACKGROUND_LINGER_S, self._wake_for_background)
        return future

    def _wake_for_background(self) -> None:
        self._background_wake = False
        self._wakeup.set()

    async def write(self, *commands: Command) -> list[Any]:
        return await self.submit(commands)

    # ---- sending -----------------------------------------------------------------------------

    async def _send_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await self._room.wait()
                taken, size = 0, 0
                for commands, _ in self._pending:
                    taken += 1
                    size += len(commands)
                    if size >= self._max_commands:
                        break
                batches, self._pending = self._pending[:taken], self._pending[taken:]
                await self._send(batches)
            if self._closed and not self._pending:
                return

    async def _send(self, batches: list[_Batch]) -> None:
        flat = [cmd for commands, _ in batches for cmd in commands]
        waits = self._replica_acks > 0 and any(future is not None for _, future in batches)
        if waits:
            flat.append(("WAIT", self._replica_acks, REPLICA_WAIT_MS))
        try:
            conn = await self._connection()
            await conn.send_packed_command(pack(flat), check_health=False)
        except _StoreDown as exc:
            log.warning("store write of %d commands failed: %s", len(flat), exc)
            await self._fail(batches, exc)
            return
        self._in_flight.append((batches, time.perf_counter(), waits))
        self._all_answered.clear()
        self._in_flight_commands += len(flat)
        if self._in_flight_commands >= self._max_in_flight:
            self._room.clear()
        self._replies_due.set()

    async def _connection(self):
        if self._conn is None:
            conn = await self._client.connection_pool.get_connection()
            self._conn = conn
            try:
                await load_scripts_on(conn)  # a store that restarted has forgotten them
            except BaseException:
                await self._drop_connection()
                raise
        return self._conn

    # ---- reading -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        while True:
            while not self._in_flight:
                self._all_answered.set()
                self._replies_due.clear()
                await self._replies_due.wait()
            batches, sent_at, waits = self._in_flight[0]
            count = sum(len(commands) for commands, _ in batches)
            try:
                async with asyncio.timeout(self._timeout_s):
                    results = await self._read_replies(count + waits)
            except _StoreDown as exc:
                log.warning("store did not answer %d commands: %s", count, exc)
                await self._fail_in_flight(exc)
                continue
            self._in_flight.popleft()
            if self.observe is not None:
                self.observe(count, time.perf_counter() - sent_at)
            self._in_flight_commands -= count
            if self._in_flight_commands < self._max_in_flight:
                self._room.set()
            if waits and not self._replicas_confirmed(batches, results.pop()):
                continue
            flat = [cmd for commands, _ in batches for cmd in commands]
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)
                       or (isinstance(r, ResponseError) and str(r).startswith("NOSCRIPT"))]
            if missing:  # scripts flushed under us (SCRIPT FLUSH): load them and redo those commands
                log.warning("store forgot its scripts; loading them again")
                await load_scripts(self._client)
                for i in missing:
                    try:
                        results[i] = await self._client.execute_command(*flat[i])
                    except ResponseError as exc:
                        results[i] = exc
            self._resolve(batches, results)

    def _replicas_confirmed(self, batches: list[_Batch], confirmed: Any) -> bool:
        """True when the packet's WAIT saw enough replicas; else its awaited batches fail."""
        if isinstance(confirmed, int) and confirmed >= self._replica_acks:
            return True
        log.warning("store write confirmed by %s of %d replicas", confirmed, self._replica_acks)
        error = replicas_behind(self._replica_acks, confirmed if isinstance(confirmed, int) else 0)
        for _, future in batches:
            if future is not None and not future.done():
                future.set_exception(error)
        return False

    async def _read_replies(self, count: int) -> list:
        conn = self._conn
        if conn is None:
            raise RedisConnectionError("no store connection")
        results = []
        for _ in range(count):
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:  # an error reply answers that command only
                results.append(exc)
        return results

    @staticmethod
    def _resolve(batches: list[_Batch], results: list) -> None:
        offset = 0
        for commands, future in batches:
            part = results[offset:offset + len(commands)]
            offset += len(commands)
            if future is None:
                for item in part:
                    if isinstance(item, Exception):
                        log.warning("background store write failed: %s", item)
            elif not future.done():
                future.set_result(part)

    # ---- failure -----------------------------------------------------------------------------

    async def _fail_in_flight(self, exc: BaseException) -> None:
        """The reply stream is lost: every batch sent on this connection fails."""
        failed = [batches for batches, _, _ in self._in_flight]
        self._in_flight.clear()
        self._in_flight_commands = 0
        self._room.set()
        await self._drop_connection()
        for batches in failed:
            await self._fail(batches, exc)

    @staticmethod
    async def _fail(batches: list[_Batch], exc: BaseException) -> None:
        error = unavailable(exc)
        for _, future in batches:
            if future is not None and not future.done():
                future.set_exception(error)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
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
