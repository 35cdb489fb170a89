"""Presence through heartbeats, and one slow peer never stalling another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import orjson
import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from tests.support import HubProcess, eventually, recv, recv_until, send, wait_until

HEARTBEAT = 0.5


class SocketPeer:
    """A peer on a plain socket that speaks WebSocket through websockets' sans-io client, so the
    test chooses the bytes of every write: how its pongs travel (alone, with a frame, wrong)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol):
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self.pings = 0
        self.frames: list[dict] = []

    @classmethod
    async def join(cls, hub: HubProcess, name: str) -> SocketPeer:
        host, port = hub.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        peer = cls(reader, writer, ClientProtocol(parse_uri(hub.ws_url)))
        request = peer.protocol.connect()
        request.headers["Authorization"] = f"Bearer {hub.token}"
        peer.protocol.send_request(request)
        writer.write(b"".join(peer.protocol.data_to_send()))
        while peer.protocol.state is not State.OPEN:
            await peer._read(None)
        peer.protocol.send_text(b'{"type": "hello", "name": "%s", "circle": "default"}' % name.encode())
        writer.write(b"".join(peer.protocol.data_to_send()))
        while not peer.frames:
            await peer._read(None)
        assert peer.frames.pop(0)["type"] == "welcome"
        return peer

    async def read_until_pinged(self, pings: int, answer: Callable[[bytes], bytes] | None = None) -> None:
        """Read until the hub has pinged `pings` times, answering each ping with the bytes
        `answer(pong)` (by default the pong alone in its write); EOFError once the hub hangs up."""
        while self.pings < pings:
            await self._read(answer)

    async def _read(self, answer: Callable[[bytes], bytes] | None) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise EOFError("the hub closed the connection")
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                self.pings += 1
                pong = b"".join(self.protocol.data_to_send())
                self.writer.write(answer(pong) if answer else pong)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.frames.append(orjson.loads(event.data))
            elif isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                raise EOFError("the hub closed the connection")

    def close(self) -> None:
        self.writer.close()


def _with_a_frame(pong: bytes) -> bytes:
    """The pong and an application frame, in one write."""
    ping = ClientProtocol(parse_uri("ws://127.0.0.1/ws"), state=State.OPEN)
    ping.send_text(b'{"type": "ping"}')
    return pong + b"".join(ping.data_to_send())


def _wrong(pong: bytes) -> bytes:
    """The pong with one bit of its payload changed: no longer the ping's payload."""
    return pong[:-1] + bytes([pong[-1] ^ 1])


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


def test_a_peer_whose_process_dies_is_offline_at_once_not_after_the_heartbeat(start_hub):
    """The heartbeat only bounds peers that stop answering (frozen, unreachable): a process that
    ends has its socket closed by the kernel, and the hub sees that at once."""
    hub = start_hub()   # the default heartbeat: 20 s
    peer = subprocess.Popen([sys.executable, "-m", "tests.peer_process", hub.url, "doomed", hub.token],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout.readline().startswith("ready ")
        assert hub.peers()["doomed"]["status"] == "online"
        peer.kill()
        wait_until(lambda: hub.peers()["doomed"]["status"] == "offline", 5, "offline well within one heartbeat")
        assert hub.peers()["doomed"]["status_reason"] == "disconnected"
    finally:
        peer.kill()
        peer.wait(10)


@pytest.mark.parametrize("answer", [None, _with_a_frame], ids=["pong alone", "pong with a frame"])
def test_a_quiet_peer_that_answers_every_ping_stays_online(start_hub, answer):
    hub = start_hub("--heartbeat", str(HEARTBEAT))

    async def scenario():
        peer = await SocketPeer.join(hub, "quiet")
        try:   # five heartbeats: two and a half times the bound
            await asyncio.wait_for(peer.read_until_pinged(5, answer), 5 * HEARTBEAT + 5)
            assert hub.peers()["quiet"]["status"] == "online"
            if answer is _with_a_frame:   # the frames that rode with the pongs were answered
                await asyncio.wait_for(peer.read_until_pinged(6, answer), 2 * HEARTBEAT + 5)
                assert [f["type"] for f in peer.frames][:5] == ["pong"] * 5
        finally:
            peer.close()

    asyncio.run(scenario())


def test_a_peer_whose_pongs_do_not_match_the_ping_is_cut_within_the_stated_bound(start_hub):
    hub = start_hub("--heartbeat", str(HEARTBEAT))

    async def scenario():
        peer = await SocketPeer.join(hub, "wrong")
        try:
            with pytest.raises(EOFError):
                await asyncio.wait_for(peer.read_until_pinged(100, _wrong), 2 * HEARTBEAT + 3)
            assert peer.pings >= 1
        finally:
            peer.close()
        wait_until(lambda: hub.peers()["wrong"]["status"] == "offline", 5, "offline")

    asyncio.run(scenario())


async def test_frames_packed_in_one_write_are_all_answered_in_order_and_an_unmasked_one_is_refused(hub):
    """What a peer's socket mostly gets is read without websockets' parser: whole text frames,
    any number to a write, of every header size, with the frame after them cut short. An
    unmasked frame (a client's must be masked, RFC 6455 5.1) still closes the socket with 1002."""
    peer = await SocketPeer.join(hub, "packer")
    try:
        frames = [{"type": "ping", "id": "short"}, {"type": "ping", "id": "medium", "pad": "m" * 300},
                  {"type": "ping", "id": "last"}]
        for frame in frames:
            peer.protocol.send_text(orjson.dumps(frame))
        data = b"".join(peer.protocol.data_to_send())
        peer.writer.write(data[:-3])   # two whole frames and most of the third
        for _ in range(20):
            if len(peer.frames) == 2:
                break
            await asyncio.wait_for(peer._read(None), 10)
        peer.writer.write(data[-3:])
        while len(peer.frames) < 3:
            await asyncio.wait_for(peer._read(None), 10)
        assert peer.frames == [{"type": "pong", "ref": "short"}, {"type": "pong", "ref": "medium"},
                               {"type": "pong", "ref": "last"}]

        # Unmasked, and shaped so that a reader taking its first four bytes for a mask would
        # find a whole ping in it: it must be refused, not answered.
        unmasked = b"\0\0\0\0" + b'{"type": "ping", "id": "bare"}'
        peer.writer.write(bytes([0x81, len(unmasked)]) + unmasked + b"    ")
        close, answered = None, []
        for _ in range(20):
            chunk = await asyncio.wait_for(peer.reader.read(65536), 10)
            if not chunk:
                break
            peer.protocol.receive_data(chunk)
            for event in peer.protocol.events_received():
                if event.opcode is Opcode.CLOSE:
                    close = Close.parse(event.data)
                elif event.opcode is Opcode.TEXT:
                    answered.append(orjson.loads(event.data))
            if close is not None:
                break
        assert close is not None and close.code == 1002, close
        assert answered == [], "nothing of an unmasked frame may be read"
    finally:
        peer.close()


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


async def test_256_operations_may_wait_for_the_store_and_the_257th_holds_the_frames_behind_it(hub):
    """With the store stopped nothing is answered: 256 notifies wait and a ping behind them is
    still answered; the 257th must wait for room, so the ping behind it is answered only after
    the first `accepted` frees a place. Then all 257 are accepted, in the order sent."""
    async with hub.client("bob"):
        ws, _ = await hub.raw_peer("alice", max_queue=None)
        store = hub.store_pid()
        assert store is not None
        os.kill(store, signal.SIGSTOP)
        try:
            for n in range(256):
                await send(ws, {"type": "notify", "id": f"n{n}", "to": "bob", "text": f"message {n}"})
            await send(ws, {"type": "ping", "id": "at-limit"})
            assert await recv(ws, 4) == {"type": "pong", "ref": "at-limit"}
            await send(ws, {"type": "notify", "id": "n256", "to": "bob", "text": "message 256"})
            await send(ws, {"type": "ping", "id": "past-limit"})
            with pytest.raises(TimeoutError):   # held behind the 257th while nothing is answered
                await recv(ws, 0.5)
        finally:
            os.kill(store, signal.SIGCONT)
        frames = [await recv(ws) for _ in range(258)]
        order = [f["ref"] for f in frames]
        assert [r for r in order if r.startswith("n")] == [f"n{n}" for n in range(257)]
        assert all(f["type"] == "accepted" for f in frames if f["ref"].startswith("n"))
        assert order.index("past-limit") > order.index("n0")
        await ws.close()
