"""Presence through heartbeats, and one slow peer never stalling another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import eventually, recv, recv_until, send, wait_until

HEARTBEAT = 0.5


def test_a_frozen_peer_goes_offline_within_the_stated_bound_and_gets_its_mail_after(start_hub):
    hub = start_hub("--heartbeat", str(HEARTBEAT))
    peer = subprocess.Popen([sys.executable, "-m", "tests.peer_process", hub.url, "frozen", hub.token],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout.readline().startswith("ready ")
        assert hub.peers()["frozen"]["status"] == "online"
        os.kill(peer.pid, signal.SIGSTOP)
        # stated bound: 2 x heartbeat after the last pong; a margin for the machine's scheduling
        wait_until(lambda: hub.peers()["frozen"]["status"] == "offline", 2 * HEARTBEAT + 3, "offline")
        sent = hub.post("/messages", {"to": "frozen", "text": "while you slept"}).json()
        assert sent["state"] == "queued"
        os.kill(peer.pid, signal.SIGCONT)  # its SDK reconnects and receives the queued message
        line = peer.stdout.readline()
        assert line.strip() == f"got {sent['message_id']}"
        wait_until(lambda: hub.peers()["frozen"]["status"] == "online", 10, "back online")
    finally:
        peer.kill()
        peer.wait(10)


def test_a_slow_consumer_is_cut_and_does_not_stall_others(start_hub):
    hub = start_hub("--limit", "outbox_frames=16")
    big = "x" * 60_000
    count = 200  # 12 MB against a 64 KiB receive buffer: the hub's outbox must fill

    async def scenario():
        slow, _ = await hub.raw_peer("slow", max_queue=1, rcvbuf=65536)  # reads one frame, then stops
        async with hub.client("sender") as sender, hub.client("fast") as fast:
            for i in range(count):
                await sender.notify("slow", big)
                await sender.notify("fast", str(i))
            got = [await fast.receive(10) for _ in range(count)]
            assert [g["text"] for g in got] == [str(i) for i in range(count)]
        await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["slow"]["status"] == "offline"), 10)
        peer = hub.peers()["slow"]
        assert peer["status_reason"] == "slow_consumer"
        assert peer["pending"] == count  # nothing confirmed: every message waits in its inbox
        await slow.close()
    asyncio.run(scenario())


async def test_outbox_close_code_is_4008(start_hub):
    hub = start_hub("--limit", "outbox_frames=4")
    slow, _ = await hub.raw_peer("slow", max_queue=1, rcvbuf=65536)
    async with hub.client("sender") as sender:
        for _ in range(200):
            await sender.notify("slow", "y" * 60_000)
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["slow"]["status"] == "offline"), 10)
    # It reads again within a heartbeat: what was in flight, then the close with its code.
    with pytest.raises(ConnectionClosed):
        for _ in range(1000):
            await recv(slow, timeout=5)
    assert slow.close_code == 4008 and slow.close_reason == "slow_consumer"


async def test_replaced_connection_is_closed_with_4009(hub):
    first, welcome = await hub.raw_peer("alice")
    second, again = await hub.raw_peer("alice", token=welcome["token"])
    assert again["peer_id"] == welcome["peer_id"]
    await first.wait_closed()
    assert first.close_code == 4009
    await send(second, {"type": "ping", "id": "still"})
    assert (await recv_until(second, "pong"))["ref"] == "still"
    assert hub.peers()["alice"]["status"] == "online"
