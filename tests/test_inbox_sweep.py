"""The inbox expiry sweep against a real embedded store, in process, round by round.

The sweep looks only at inboxes whose oldest delivery is due, so idle peers cost the store
nothing. It looks at every inbox in its first round, in the round after a store write failed,
and in a mesh every FULL_SWEEP_ROUNDS (what a node that died had queued). The store's own
command counters say how many store writes (expiry scripts, trace appends) each round made."""

from __future__ import annotations

import asyncio

import pytest

from hub.core.errors import HubError
from hub.core.peers import PeerRecord
from hub.core.trace import Stage, stage_entry
from hub.runtime.events import EventLog
from hub.runtime.inboxes import FULL_SWEEP_ROUNDS, Inboxes
from hub.runtime.presence import Presences
from hub.runtime.registry import PeerRegistry
from hub.store.connect import open_client
from hub.store.embedded import EmbeddedStore
from hub.store.state import StoreState
from hub.store.writer import GroupCommitWriter, load_scripts
from schemas.errors import ErrorCode
from tests.support import eventually

PEERS = 40
EXPIRE_HEAD_COUNT = 100   # entries one expiry script removes from one inbox at most


class Clock:
    """The hub's clock in milliseconds, set by the test (the store is told the time by the hub)."""

    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
async def node(tmp_path, request):
    """One hub node on its own store; parametrized with a node name, one node of a mesh."""
    store = EmbeddedStore(tmp_path / "home")
    await asyncio.to_thread(store.start)
    client = open_client(store.url)
    writer_client = open_client(store.url, per_reply_timeout=False)
    await load_scripts(client)
    writer = GroupCommitWriter(writer_client)
    writer.start()
    state = StoreState(client, writer, mesh_node=getattr(request, "param", ""))
    registry, connections, clock = PeerRegistry(), {}, Clock()
    presence = Presences(state, registry, connections, EventLog(state), "n1", clock)
    inboxes = Inboxes(state, registry, connections, presence, node="n1", now_ms=clock, sweep_interval_s=60)
    peers = []
    for i in range(PEERS):
        peer = registry.put(PeerRecord(peer_id=f"{i:032x}", name=f"p{i}", circle="c", role="agent",
                                       token_digest=f"{i:064x}", created_at=1, last_seen=1))
        await writer.write(*state.save_peer_cmds(peer))
        peers.append(peer)
    yield state, inboxes, clock, peers, store
    state.flush_trace_events()
    await writer.close()
    await client.aclose()
    await writer_client.aclose()
    await asyncio.to_thread(store.stop)


async def store_writes(state: StoreState) -> int:
    """Script calls and trace appends the store has run so far: each expiry script is an EVALSHA,
    each stage added to a trace an RPUSHX."""
    stats = await state.client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "rpushx"))


async def queue(state: StoreState, inboxes: Inboxes, peer: PeerRecord, expires_at: int, *, here: bool = True) -> None:
    """A delivery queued for `peer`; `here=False`: by another node (this one never hears of it)."""
    message_id = f"{expires_at:032x}"
    (seq, _) = await state.writer.write(
        state.enqueue_cmd(peer.peer_id, message_id, b"{}", expires_at, message_id, "notify"),
        state.trace_cmd(message_id, [stage_entry(Stage.ACCEPTED, 1, "n1", kind="notify")], 3600))
    if here:
        inboxes.hand_over(peer, seq, message_id, b"{}", message_id, expires_at)


async def rounds(state: StoreState, inboxes: Inboxes, count: int) -> list[tuple[int, int]]:
    """(store writes, deliveries expired) of each of `count` sweeps."""
    done = []
    for _ in range(count):
        before = await store_writes(state)
        expired = await inboxes.sweep_expired()
        done.append((await store_writes(state) - before, expired))
    return done


async def test_a_hub_alone_on_its_store_looks_at_idle_inboxes_only_when_it_starts(node):
    state, inboxes, *_ = node
    done = await rounds(state, inboxes, 2 * FULL_SWEEP_ROUNDS + 1)
    assert done == [(PEERS, 0)] + [(0, 0)] * (2 * FULL_SWEEP_ROUNDS)


@pytest.mark.parametrize("node", ["n1"], indirect=True)
async def test_a_node_of_a_mesh_looks_at_every_inbox_each_full_round_and_at_none_between(node):
    state, inboxes, *_ = node
    done = await rounds(state, inboxes, 2 * FULL_SWEEP_ROUNDS)
    assert done[0] == (PEERS, 0) and done[FULL_SWEEP_ROUNDS] == (PEERS, 0)
    assert [d for i, d in enumerate(done) if i % FULL_SWEEP_ROUNDS] == [(0, 0)] * (2 * FULL_SWEEP_ROUNDS - 2)


async def test_a_delivery_queued_here_is_looked_at_once_it_is_due_and_only_then(node):
    state, inboxes, clock, peers, _ = node
    await rounds(state, inboxes, 1)   # the full round at start
    await queue(state, inboxes, peers[3], clock.ms + 5_000)
    assert await rounds(state, inboxes, 2) == [(0, 0), (0, 0)]   # not due yet: no script runs
    clock.ms += 5_000
    assert await rounds(state, inboxes, 1) == [(2, 1)]   # its inbox's expiry script, and the trace's stage
    assert await rounds(state, inboxes, 1) == [(0, 0)]   # the inbox is empty: no longer looked at
    stages = await state.read_trace(f"{clock.ms:032x}")
    assert [s["stage"] for s in stages] == ["accepted", "expired"] and stages[-1]["reason"] == "queue_ttl"


@pytest.mark.parametrize("node", ["n1"], indirect=True)
async def test_what_another_node_queued_expires_in_the_next_full_round(node):
    state, inboxes, clock, peers, _ = node
    await rounds(state, inboxes, 1)
    await queue(state, inboxes, peers[7], clock.ms - 1, here=False)
    done = await rounds(state, inboxes, FULL_SWEEP_ROUNDS)
    assert done[:-1] == [(0, 0)] * (FULL_SWEEP_ROUNDS - 1)
    assert done[-1] == (PEERS + 1, 1)   # the full round: every inbox, and the one trace stage
    assert await state.inbox_lengths([peers[7].peer_id]) == {peers[7].peer_id: 0}


async def test_after_a_failed_store_write_the_next_round_looks_at_every_inbox(node):
    state, inboxes, clock, peers, store = node
    await rounds(state, inboxes, 1)
    await queue(state, inboxes, peers[5], clock.ms - 1, here=False)   # queued, but the hub never heard
    assert await rounds(state, inboxes, 2) == [(0, 0), (0, 0)]
    await asyncio.to_thread(store.stop)
    with pytest.raises(HubError):
        await state.writer.write(("PING",))
    await asyncio.to_thread(store.start)
    await eventually(lambda: state.writer.write(("PING",)), 10, "the writer on the restarted store")
    assert await rounds(state, inboxes, 2) == [(PEERS + 1, 1), (0, 0)]   # every inbox, once
    assert await state.inbox_lengths([peers[5].peer_id]) == {peers[5].peer_id: 0}


async def test_the_full_round_learns_what_is_due_later_in_every_inbox(node):
    state, inboxes, clock, peers, _ = node
    await queue(state, inboxes, peers[1], clock.ms + 3_000, here=False)
    assert await rounds(state, inboxes, 1) == [(PEERS, 0)]   # the first round is full: it sees the head's time
    clock.ms += 3_000
    assert await rounds(state, inboxes, 1) == [(2, 1)]       # so it expires on time, not a full round later


@pytest.mark.parametrize(("waiting", "second_round"), [(EXPIRE_HEAD_COUNT, (0, 0)),
                                                       (EXPIRE_HEAD_COUNT + 1, (2, 1))])
async def test_an_inbox_with_more_expired_than_one_script_removes_is_looked_at_again(node, waiting, second_round):
    state, inboxes, clock, peers, _ = node
    await rounds(state, inboxes, 1)
    for i in range(waiting):
        await queue(state, inboxes, peers[0], clock.ms + 1 + i)
    clock.ms += waiting + 1
    first = await rounds(state, inboxes, 1)
    assert first == [(1 + EXPIRE_HEAD_COUNT, EXPIRE_HEAD_COUNT)]
    assert await rounds(state, inboxes, 1) == [second_round]
    assert await state.inbox_lengths([peers[0].peer_id]) == {peers[0].peer_id: 0}


async def test_a_round_the_store_missed_leaves_what_was_due_for_the_next(node):
    state, inboxes, clock, peers, store = node
    await rounds(state, inboxes, 1)
    await queue(state, inboxes, peers[2], clock.ms + 1)
    clock.ms += 1
    await asyncio.to_thread(store.stop)
    with pytest.raises(HubError) as missed:
        await inboxes.sweep_expired()
    assert missed.value.code is ErrorCode.STORE_UNAVAILABLE
    await asyncio.to_thread(store.start)   # the same data, from its append-only file
    await eventually(lambda: state.writer.write(("PING",)), 10, "the writer on the restarted store")
    assert await inboxes.sweep_expired() == 1   # still due: looked at, and expired
    assert await state.inbox_lengths([peers[2].peer_id]) == {peers[2].peer_id: 0}
