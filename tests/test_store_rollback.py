"""A store that went back: a failover without replica acks (`--replica-acks 0`) loses the writes
the dying primary had not copied yet, so the promoted replica gives a peer's seqs again from an
earlier one. The peer's cursor and the connection's last pushed seq are then ahead of the store.
What the hub does keeps later messages from being skipped as "already had" (docs/cluster.md).

The store here is a real Valkey put in the state such a failover leaves: a peer's `next_seq`
lower than the seqs it was given, as the replica had it."""

from __future__ import annotations

from hub.store import keys
from tests.support import eventually, recv_until, send, store_client
from tests.test_mesh import seen


async def go_back(store_url: str, peer_id: str, to_seq: int) -> None:
    """The store as a replica that missed the last writes has it: the peer was last given `to_seq`,
    and its inbox (empty here) never had a later entry."""
    client = store_client(store_url)
    try:
        assert await client.xlen(keys.inbox(peer_id)) == 0
        await client.delete(keys.inbox(peer_id))   # its last id goes back too
        await client.hset(keys.peer(peer_id), "next_seq", to_seq)
    finally:
        await client.aclose()


async def inbox_holds(store_url: str, peer_id: str, count: int, what: str) -> None:
    client = store_client(store_url)
    try:
        await eventually(lambda: _has_length(client, keys.inbox(peer_id), count), 10, what)
    finally:
        await client.aclose()


async def _has_length(client, key: str, count: int) -> bool:
    return await client.xlen(key) == count


async def three_received(alice, bob, bob_id: str, store_url: str) -> None:
    """alice sends bob three notifies; bob has them (seq 1-3) and confirms each, which empties his inbox."""
    for i in range(3):
        await send(alice, {"type": "notify", "id": f"n{i}", "to": "bob", "text": f"m{i}"})
    for seq in (1, 2, 3):
        frame = await recv_until(bob, "deliver")
        assert frame["seq"] == seq
        await send(bob, {"type": "receipt", "message_id": frame["message_id"], "status": "received"})
    await inbox_holds(store_url, bob_id, 0, "bob's receipts to empty his inbox")


async def test_a_resume_cursor_ahead_of_the_store_confirms_nothing_and_moves_the_seqs_past_it(start_hub, store_process):
    hub = start_hub("--redis-url", store_process.url)
    alice, _ = await hub.raw_peer("alice")
    bob, b = await hub.raw_peer("bob")
    await three_received(alice, bob, b["peer_id"], store_process.url)
    await bob.close()
    await go_back(store_process.url, b["peer_id"], 1)   # seqs 2 and 3 were lost
    await send(alice, {"type": "notify", "id": "late", "to": "bob", "text": "after the failover"})
    await inbox_holds(store_process.url, b["peer_id"], 1, "the message to wait in bob's inbox")

    # bob comes back saying he has everything up to 3: the store has given only 2
    bob, again = await hub.raw_peer("bob", token=b["token"], resume=3)
    assert again["position"] == {"last_seq": 3, "pending": 1}
    late = await recv_until(bob, "deliver")
    assert (late["seq"], late["text"]) == (2, "after the failover")
    await send(bob, {"type": "receipt", "message_id": late["message_id"], "status": "received"})
    await send(alice, {"type": "notify", "id": "next", "to": "bob", "text": "next"})
    following = await recv_until(bob, "deliver")
    assert (following["seq"], following["text"]) == (4, "next")   # past bob's cursor: a later resume keeps it


async def test_a_peer_on_another_node_gets_a_seq_the_store_gives_again(start_hub, store_process):
    n1 = start_hub("--redis-url", store_process.url, "--node", "n1")
    n2 = start_hub("--redis-url", store_process.url, "--node", "n2")
    alice, _ = await n1.raw_peer("alice")
    bob, b = await n2.raw_peer("bob")
    await seen(n1, "bob", status="online", node="n2")
    await three_received(alice, bob, b["peer_id"], store_process.url)
    await go_back(store_process.url, b["peer_id"], 1)   # seqs 2 and 3 were lost

    # n2 pushed bob seqs up to 3; the store now gives 2, 3 and 4 again to new messages
    for i, text in enumerate(["after the failover", "and another", "and one more"]):
        await send(alice, {"type": "notify", "id": f"late{i}", "to": "bob", "text": text})
    got = [await recv_until(bob, "deliver") for _ in range(3)]
    assert [(f["seq"], f["text"]) for f in got] == [(2, "after the failover"), (3, "and another"),
                                                    (4, "and one more")]
