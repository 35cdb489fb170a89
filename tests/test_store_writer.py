"""The group-commit writer against a real embedded store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from hub.core.errors import HubError
from hub.store import scripts
from hub.store.connect import open_client
from hub.store.embedded import EmbeddedStore
from hub.store.resp import pack
from hub.store.state import EVENT_BATCH_S, ROW_EVENT_BATCH_S, StoreState
from hub.store.writer import BACKGROUND_LINGER_S, GroupCommitWriter
from schemas.codec import encode
from schemas.dashboard import MessagePreview
from schemas.errors import ErrorCode
from schemas.frames import PeerRef
from schemas.rest import TraceStage
from tests.support import eventually


@pytest.fixture
async def store(tmp_path):
    embedded = EmbeddedStore(tmp_path / "home")
    await asyncio.to_thread(embedded.start)
    yield embedded
    await asyncio.to_thread(embedded.stop)


@pytest.fixture
async def writer(store):
    client = open_client(store.url, per_reply_timeout=False)
    w = GroupCommitWriter(client, timeout_s=2)
    w.start()
    yield w
    await w.close()
    await client.aclose()


async def test_pipelined_batches_are_applied_and_answered_in_submission_order(writer):
    futures = [writer.submit([("RPUSH", "order", str(i)), ("LLEN", "order")]) for i in range(200)]
    results = await asyncio.gather(*futures)
    assert [r[1] for r in results] == list(range(1, 201))
    (items,) = await writer.write(("LRANGE", "order", 0, -1))
    assert items == [str(i).encode() for i in range(200)]


async def test_an_error_reply_fails_only_its_own_command(writer):
    ok, bad, after = await writer.write(("SET", "k", "v"), ("INCR", "k"), ("GET", "k"))
    assert ok == b"OK" and isinstance(bad, Exception) and after == b"v"


async def test_background_writes_go_out_on_their_own(writer):
    writer.submit([("SET", "bg", "1")], wait=False)
    await eventually(lambda: writer.write(("GET", "bg")), 5, "the background write")


async def test_scripts_are_loaded_on_the_writers_connection(writer):
    (seq,) = await writer.write(("EVALSHA", scripts.SHA["ENQUEUE"], 2, "p", "i", "m", "x", 1, "t", "k"))
    assert seq == -1  # no such peer: the script ran and said so


async def test_a_dead_store_fails_writes_and_a_restarted_one_is_used_again(store, writer):
    await writer.write(("SET", "before", "1"))
    await asyncio.to_thread(store.stop)
    with pytest.raises(HubError) as down:
        await writer.write(("SET", "during", "1"))
    assert down.value.code is ErrorCode.STORE_UNAVAILABLE
    await asyncio.to_thread(store.start)
    before, during = await writer.write(("GET", "before"), ("GET", "during"))
    assert before == b"1" and during is None  # the append-only file kept the accepted write
    (seq,) = await writer.write(("EVALSHA", scripts.SHA["ENQUEUE"], 2, "p", "i", "m", "x", 1, "t", "k"))
    assert seq == -1  # scripts loaded again on the new connection


async def test_a_frozen_store_fails_the_writes_in_flight_at_the_timeout_and_is_used_again_once_thawed(store, writer):
    await writer.write(("SET", "before", "1"))
    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(HubError) as down:
            await asyncio.wait_for(writer.write(("SET", "during", "1")), 30)
        assert down.value.code is ErrorCode.STORE_UNAVAILABLE
    finally:
        os.kill(store.process.pid, signal.SIGCONT)
    (before,) = await writer.write(("GET", "before"))
    assert before == b"1"


async def test_replies_longer_than_one_read_are_put_together(writer):
    big = os.urandom(3 << 20)
    ok, value, length = await writer.write(("SET", "big", big), ("GET", "big"), ("STRLEN", "big"))
    assert (ok, value, length) == (b"OK", big, len(big))


async def test_packets_hold_at_most_max_commands_and_beyond_max_in_flight_wait_for_room(store):
    client = open_client(store.url, per_reply_timeout=False)
    small = GroupCommitWriter(client, max_commands=4, max_in_flight=8)
    packets: list[int] = []
    small.observe = lambda commands, _seconds: packets.append(commands)
    small.start()
    try:
        sent = asyncio.gather(*(small.submit([("RPUSH", "bounded", str(i))]) for i in range(100)))
        results = await asyncio.wait_for(sent, 30)
    finally:
        await small.close()
        await client.aclose()
    assert [r[0] for r in results] == list(range(1, 101))
    assert packets == [4] * 25


async def test_scripts_flushed_under_the_writer_are_loaded_again_and_later_answers_wait_their_turn(store, writer):
    await writer.write(("PING",))  # connected, the scripts loaded on connecting
    admin = open_client(store.url)
    await admin.script_flush()
    await admin.aclose()
    loop = asyncio.get_running_loop()
    answered: list[int] = []
    futures: list[asyncio.Future] = []

    def submit(index: int, commands: list) -> None:
        future = writer.submit(commands)
        future.add_done_callback(lambda _: answered.append(index))
        futures.append(future)

    submit(0, [("EVALSHA", scripts.SHA["ENQUEUE"], 2, "p", "i", "m", "x", 1, "t", "k")])
    # Queued behind the writer's flush of the script: these go out in a packet of their own,
    # answered while the scripts are being loaded again.
    loop.call_soon(lambda: [submit(i, [("RPUSH", "after", str(i))]) for i in range(1, 21)])
    await eventually(lambda: len(futures) == 21, 5, "the second packet")
    results = await asyncio.gather(*futures)
    assert results[0] == [-1]  # the script ran once loaded again: no such peer
    assert [r[0] for r in results[1:]] == list(range(1, 21))
    assert answered == list(range(21))


class HeldClock:
    """The running loop's clock held still: it moves only by `advance`, so which packet carries
    what does not depend on this machine's speed (`release` gives the loop its clock back)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.now = self.loop.time()
        self.loop.time = lambda: self.now   # type: ignore[method-assign]

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def release(self) -> None:
        del self.loop.time

    @staticmethod
    async def turns(count: int = 5) -> None:
        """Loop turns, in which a timer due by now fires."""
        for _ in range(count):
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def counting_writer(store) -> AsyncIterator[tuple[GroupCommitWriter, Any, list[int]]]:
    """A writer on the store (with its client) that records each answered packet's command count."""
    client = open_client(store.url, per_reply_timeout=False)
    writer = GroupCommitWriter(client)
    packets: list[int] = []
    writer.observe = lambda commands, _seconds: packets.append(commands)
    writer.start()
    try:
        await writer.write(("PING",))   # connected
        yield writer, client, packets
    finally:
        await writer.close()
        await client.aclose()


@contextlib.asynccontextmanager
async def traced_quiet_spell(store, watched: bool) -> AsyncIterator[tuple[HeldClock, GroupCommitWriter, Any,
                                                                          list[int], StoreState]]:
    """The loop's clock held, a counting writer, and a StoreState whose dashboards are `watched`,
    after a trace's first stage in a quiet spell (its event went in the packet that carried it)."""
    clock = HeldClock()
    try:
        async with counting_writer(store) as (writer, client, packets):
            state = StoreState(client, writer)
            state.events_watched = lambda: watched
            await writer.write(state.trace_cmd("t1", [TraceStage(stage="accepted", at=1, node="n1")], 60))
            yield clock, writer, client, packets, state
    finally:
        clock.release()


async def test_a_write_awaited_only_for_its_failure_shares_the_next_packet_or_goes_alone_after_its_linger(store):
    async with counting_writer(store) as (writer, _, packets):
        lingering = writer.submit([("SET", "closed", "1")], linger=True)
        urgent: list[asyncio.Future] = []
        asyncio.get_running_loop().call_soon(lambda: urgent.append(writer.submit([("GET", "closed")])))
        await eventually(lambda: urgent, 5, "the awaited write")
        assert await asyncio.gather(lingering, urgent[0]) == [[b"OK"], [b"1"]]
        alone = await asyncio.wait_for(writer.submit([("INCR", "n")], linger=True), 5)
        assert alone == [1]
    assert packets == [1, 2, 1]


async def test_a_write_lingers_its_own_full_time_after_an_awaited_packet_carried_the_one_before(store):
    """What lingered goes with the awaited packet that carries it, and its timer with it: a write
    that lingers after that waits its own full linger for a packet to share, instead of being
    sent alone when the earlier write's time runs out."""
    clock = HeldClock()
    try:
        async with counting_writer(store) as (writer, _, packets):
            first = writer.submit([("SET", "a", "1")], linger=True)
            assert await asyncio.gather(first, writer.submit([("GET", "a")])) == [[b"OK"], [b"1"]]
            clock.advance(BACKGROUND_LINGER_S * 0.75)
            second = writer.submit([("SET", "b", "1")], linger=True)
            clock.advance(BACKGROUND_LINGER_S * 0.5)   # past the first write's linger, within the second's
            await clock.turns()
            assert await asyncio.gather(second, writer.submit([("GET", "b")])) == [[b"OK"], [b"1"]]
    finally:
        clock.release()
    assert packets == [1, 2, 2]


async def test_a_trace_starts_with_its_retention_and_later_stages_are_added_only_while_it_lasts(writer):
    """The first write of a trace sets its retention; a later stage (a late receipt) appends to
    the trace while it lasts and adds nothing, not even a trace without an expiry, once it is gone."""
    unannounced = StoreState.unannounced_trace_cmd
    accepted, sent = [TraceStage(stage="accepted", at=1, node="n1")], [TraceStage(stage="sent", at=2, node="n1")]
    assert await writer.write(unannounced("t1", accepted, start_ttl_s=60), ("TTL", "rw:trace:{t1}")) == [1, 60]
    assert await writer.write(unannounced("t1", sent), ("TTL", "rw:trace:{t1}")) == [2, 60]
    assert await writer.write(("LRANGE", "rw:trace:{t1}", 0, -1)) == [[encode(accepted[0]), encode(sent[0])]]
    assert await writer.write(unannounced("gone", sent), ("EXISTS", "rw:trace:{gone}")) == [0, 0]


@pytest.mark.parametrize("watched", [True, False])
async def test_the_dashboard_events_go_at_once_only_while_a_dashboard_may_be_waiting(store, watched):
    """Trace stages gathered for the dashboards' event stream are written when the batch's
    timer runs out: at once while a dashboard may be watching; else the entry lingers for the
    next packet to share (a dashboard that subscribes meanwhile still reads it from the stream)."""
    async with traced_quiet_spell(store, watched) as (clock, writer, _, packets, state):
        clock.advance(EVENT_BATCH_S / 5)
        await writer.write(state.trace_cmd("t1", [TraceStage(stage="sent", at=2, node="n1")]))
        clock.advance(EVENT_BATCH_S)   # the batch's time is up: its timer writes the second event
        await clock.turns()
        await writer.write(("PING",))
        (entries,) = await writer.write(("XLEN", "rw:events"))
    assert entries == 2
    assert packets == ([1, 2, 1, 1, 1, 1] if watched else [1, 2, 1, 2, 1])


@pytest.mark.parametrize(("row", "watched"), [(True, True), (False, True), (True, False)])
async def test_an_event_that_puts_a_message_on_the_page_waits_a_shorter_batch(store, row, watched):
    """Stages alone wait up to EVENT_BATCH_S after the last entry; a stage that brings a
    message's row (its preview) waits at most ROW_EVENT_BATCH_S while a dashboard may be
    watching, and takes what was gathered with it."""
    async with traced_quiet_spell(store, watched) as (clock, writer, client, packets, state):
        clock.advance(ROW_EVENT_BATCH_S / 2)
        await writer.write(state.trace_cmd("t1", [TraceStage(stage="sent", at=2, node="n1")]))
        preview = MessagePreview(kind="notify", message_id="0" * 32, to="b", at=3,
                                 from_=PeerRef(peer_id="1" * 32, name="a", circle="default"))
        await writer.write(state.trace_cmd("t2", [TraceStage(stage="accepted", at=3, node="n1")], 60,
                                           message=preview if row else None))
        clock.advance(ROW_EVENT_BATCH_S)
        await clock.turns()
        (entries,) = await writer.write(("XLEN", "rw:events"))
        last = (await client.xrevrange("rw:events", count=1))[0][1][b"d"]
    sooner = row and watched
    assert entries == (2 if sooner else 1)
    assert [t["trace_id"] for t in orjson.loads(last)] == (["t1", "t2"] if sooner else ["t1"])
    assert packets == ([1, 2, 1, 1, 1, 1] if sooner else [1, 2, 1, 1, 1])


def test_resp_encoding():
    assert pack([("SET", "k", b"\x00v"), ("EXPIRE", "k", 10)]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\x00v\r\n*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n")
    with pytest.raises(TypeError):
        pack([("SET", "k", None)])
