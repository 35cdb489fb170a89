"""At-least-once with dedup, resume, durability across SIGKILL, and queue expiry."""

from __future__ import annotations

import asyncio

from tests.support import eventually, process_gone, recv_until, send


async def test_unconfirmed_delivery_is_sent_again_after_reconnect(hub):
    alice, _ = await hub.raw_peer("alice")
    bob, b = await hub.raw_peer("bob")
    await send(alice, {"type": "notify", "id": "n1", "to": "bob", "text": "do not lose me"})
    first = await recv_until(bob, "deliver")
    await bob.close()  # no receipt
    bob, again = await hub.raw_peer("bob", token=b["token"])
    assert again["position"] == {"last_seq": 1, "pending": 1}
    redelivered = await recv_until(bob, "deliver")
    assert redelivered == first
    await send(bob, {"type": "receipt", "message_id": first["message_id"], "status": "received"})
    stages = await eventually(lambda: asyncio.to_thread(
        lambda: (s := hub.get(f"/traces/{first['message_id']}").json()["stages"]) and s[-1]["stage"] == "received" and s),
        10, "received")
    assert [s["stage"] for s in stages] == ["accepted", "routed", "sent", "sent", "received"]


async def test_resume_cursor_confirms_what_the_peer_already_has(hub):
    alice, _ = await hub.raw_peer("alice")
    bob, b = await hub.raw_peer("bob")
    for i in range(3):
        await send(alice, {"type": "notify", "id": f"n{i}", "to": "bob", "text": str(i)})
    frames = [await recv_until(bob, "deliver") for _ in range(3)]
    await bob.close()  # receipts lost for all three, but the peer has seq 1 and 2
    bob, _ = await hub.raw_peer("bob", token=b["token"], resume=2)
    redelivered = await recv_until(bob, "deliver")
    assert redelivered["seq"] == 3 and redelivered["message_id"] == frames[2]["message_id"]
    trace = hub.get(f"/traces/{frames[0]['message_id']}").json()
    assert trace["stages"][-1]["stage"] == "received" and trace["stages"][-1]["reason"] == "resumed"


async def test_the_sdk_hands_each_message_to_the_application_once(hub):
    async with hub.client("alice") as alice:
        bob = hub.client("bob", auto_receipt=False)
        await bob.connect()
        sent = [await alice.notify("bob", f"m{i}") for i in range(3)]
        got = [await bob.receive(10) for _ in range(3)]
        bob.last_seq = None  # forget the cursor, as a crashed consumer would: everything comes again
        await bob._ws.close()  # the connection drops; the SDK reconnects by itself
        await eventually(lambda: bob.reconnects == 1, 15, "reconnect")
        more = await alice.notify("bob", "after reconnect")
        fresh = await bob.receive(10)
        assert fresh["message_id"] == more["message_id"]  # the three repeats were dropped
        assert bob.pending_deliveries() == 0
        assert [g["message_id"] for g in got] == [s["message_id"] for s in sent]
        await bob.close()


def test_a_notify_accepted_before_sigkill_is_delivered_after_restart(hub):
    async def before():
        bob = hub.client("bob", reconnect=False)
        await bob.connect()
        await bob.close()
        async with hub.client("alice", reconnect=False) as alice:
            await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["bob"]["status"] == "offline"), 10)
            return bob.token, [await alice.notify("bob", f"survive {i}") for i in range(20)]

    token, accepted = asyncio.run(before())
    store_pid = hub.store_pid()
    hub.kill()
    assert process_gone(hub.pid)
    hub.restart()
    assert hub.store_pid() != store_pid

    async def after():
        async with hub.client("bob", token=token) as bob:
            got = [await bob.receive(10) for _ in range(20)]
        return got

    got = asyncio.run(after())
    assert [g["message_id"] for g in got] == [a["message_id"] for a in accepted]
    assert [g["seq"] for g in got] == list(range(1, 21))
    assert hub.peers()["bob"]["status"] == "offline"


def test_queued_messages_expire_after_their_time_to_live(start_hub):
    hub = start_hub("--queue-ttl", "1", "--sweep-interval", "0.2")

    async def scenario():
        bob = hub.client("bob")
        await bob.connect()
        await bob.close()
        async with hub.client("alice") as alice:
            await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["bob"]["status"] == "offline"), 10)
            accepted = await alice.notify("bob", "too late")
        trace = await eventually(lambda: asyncio.to_thread(
            lambda: (t := hub.get(f"/traces/{accepted['message_id']}").json())["final"] == "expired" and t), 10)
        assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "queued", "expired"]
        assert trace["stages"][-1]["reason"] == "queue_ttl"
        assert hub.peers()["bob"]["pending"] == 0
        async with hub.client("bob", token=bob.token) as again:
            assert again.welcome["position"]["pending"] == 0
    asyncio.run(scenario())


async def test_late_receipt_lands_in_the_trace_without_a_second_final_stage(hub):
    alice, _ = await hub.raw_peer("alice")
    bob, b = await hub.raw_peer("bob")
    await send(alice, {"type": "notify", "id": "n1", "to": "bob", "text": "x"})
    frame = await recv_until(bob, "deliver")
    await bob.close()
    bob, _ = await hub.raw_peer("bob", token=b["token"], resume=1)  # confirmed by the cursor
    await send(bob, {"type": "receipt", "message_id": frame["message_id"], "status": "injected"})
    await send(bob, {"type": "ping", "id": "sync"})
    assert (await recv_until(bob, "pong"))["ref"] == "sync"
    trace = await eventually(lambda: asyncio.to_thread(
        lambda: (t := hub.get(f"/traces/{frame['message_id']}").json())["stages"][-1]["stage"] == "late_receipt" and t),
        10)
    assert trace["stages"][-1]["status"] == "injected"
    finals = [s["stage"] for s in trace["stages"] if s["stage"] in ("received", "injected", "failed", "expired")]
    assert finals == ["received"] and trace["final"] == "received"  # the resume cursor settled it; once


async def test_a_failed_receipt_ends_the_trace_with_its_reason(hub):
    alice, _ = await hub.raw_peer("alice")
    bob, _ = await hub.raw_peer("bob")
    await send(alice, {"type": "notify", "id": "n1", "to": "bob", "text": "x"})
    frame = await recv_until(bob, "deliver")
    await send(bob, {"type": "receipt", "message_id": frame["message_id"], "status": "failed", "reason": "pane_gone"})
    trace = await eventually(lambda: asyncio.to_thread(
        lambda: (t := hub.get(f"/traces/{frame['message_id']}").json())["final"] and t), 10)
    assert trace["final"] == "failed" and trace["stages"][-1]["reason"] == "pane_gone"
