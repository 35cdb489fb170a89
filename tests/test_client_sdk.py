"""The Python client SDK against a real hub: its receive queue is bounded, so the hub's
slow-consumer protection holds end to end and nothing piles up in the client's process."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import eventually
from transports.client import HubClient
from transports.discovery import HubAddress


async def test_a_client_that_stops_taking_deliveries_holds_at_most_max_queue_and_is_cut_at_the_hub(start_hub):
    hub = start_hub("--limit", "outbox_frames=16")
    big = "x" * 60_000
    count = 400  # 24 MB: more than the kernel's loopback buffers, websockets' own queue and the outbox hold
    texts = [f"{i} {big}" for i in range(count)]
    slow = hub.client("slow", max_queue=4, reconnect=False)
    await slow.connect()
    async with hub.client("sender") as sender:
        for text in texts:
            assert (await sender.notify("slow", text))["state"] in ("delivered", "queued")
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["slow"]["status"] == "offline"), 30, "cut")
    peer = hub.peers()["slow"]
    assert peer["status_reason"] == "slow_consumer"
    assert slow.pending_deliveries() == 4  # taken from the socket, never more than max_queue

    # It takes what it holds and what was on its way, then sees the hub's close.
    first = []
    for _ in range(count):
        try:
            first.append((await slow.receive(5))["text"])
        except TimeoutError:
            break
    assert slow.closed_with == (4008, "slow_consumer")
    with pytest.raises(ConnectionError, match="not connected"):   # reconnect is off: it says so at once
        await asyncio.wait_for(slow.ping(), 5)
    assert 4 <= len(first) < count and first == texts[:len(first)]

    # Its receipts came after the cut, so every message waits in its inbox; the next connection
    # gets them all, in order, without being cut again: the hub replays a backlog longer than
    # the outbox a page at a time, as fast as the peer reads.
    assert hub.peers()["slow"]["pending"] == count
    async with hub.client("slow", max_queue=4) as again:
        rest = [(await again.receive(10))["text"] for _ in range(count)]
        assert again.reconnects == 0
    assert rest == texts
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["slow"]["pending"] == 0), 10, "all confirmed")


async def test_max_queue_below_one_is_refused(start_hub):
    hub = start_hub()
    with pytest.raises(ValueError, match="max_queue"):
        hub.client("nobody", max_queue=0)


def test_the_client_reads_the_hubs_frames_through_the_schemas_structs(caplog):
    """Each frame is decoded as its schemas struct before the application sees it; one this
    version does not describe (a newer hub's) is handed on as it came, and logged."""
    from transports.client import hub_frame
    deliver = (b'{"type":"deliver","seq":3,"kind":"notify","message_id":"' + b"a" * 32 + b'","sent_at":1,'
               b'"from":{"peer_id":"' + b"b" * 32 + b'","name":"bob","circle":"default"},"text":"hi"}')
    assert hub_frame(deliver) == {"type": "deliver", "kind": "notify", "message_id": "a" * 32, "sent_at": 1,
                                  "from": {"peer_id": "b" * 32, "name": "bob", "circle": "default"}, "text": "hi",
                                  "seq": 3}
    assert hub_frame(b'{"type":"pong","ref":"p1"}') == {"type": "pong", "ref": "p1"}
    with caplog.at_level("WARNING"):
        assert hub_frame(b'{"type":"rainbow","colours":7}') == {"type": "rainbow", "colours": 7}
    assert "'rainbow' frame from the hub that this client does not describe" in caplog.text


class CuttingProxy:
    """A loopback TCP proxy in front of the hub. It names the hub in the Host header (the hub
    answers only to its own address), cuts the first connection once the hub has welcomed it,
    so that the client reconnects, and on every later connection calls `on_welcome` just after
    passing the hub's welcome on to the client."""

    def __init__(self, hub_port: int, on_welcome):
        self.hub_port = hub_port
        self.on_welcome = on_welcome
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, client_reader, client_writer) -> None:
        self.connections += 1
        first = self.connections == 1
        hub_reader, hub_writer = await asyncio.open_connection("127.0.0.1", self.hub_port)

        async def pump(reader, writer, from_hub: bool) -> None:
            try:
                while chunk := await reader.read(65536):
                    if not from_hub:
                        chunk = chunk.replace(b"Host: 127.0.0.1:%d" % self.port, b"Host: 127.0.0.1:%d" % self.hub_port)
                    writer.write(chunk)
                    if from_hub and b'"type":"welcome"' in chunk:
                        if first:
                            break
                        self.on_welcome()
            except ConnectionError:
                pass
            finally:
                writer.close()

        up = asyncio.create_task(pump(client_reader, hub_writer, False))
        await pump(hub_reader, client_writer, True)
        up.cancel()
        hub_writer.close()


async def test_close_while_the_client_reconnects_ends_it_whenever_the_cancellation_lands(start_hub):
    """close() during a reconnect returns and leaves no connection behind, wherever in the
    hello exchange its cancellation lands: here after 0 to 11 turns of the event loop from the
    moment the hub's welcome is on its way to the client (on Python 3.11 asyncio.wait_for
    dropped a cancellation that landed as the awaited answer came, and the reader read on)."""
    hub = start_hub()
    port = int(hub.url.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    for turns in range(12):
        closing: list[asyncio.Task] = []

        def close_after(n: int, client) -> None:
            if n:
                loop.call_soon(close_after, n - 1, client)
            else:
                closing.append(loop.create_task(client.close()))

        name = f"reconnecting-{turns}"
        proxy = CuttingProxy(port, lambda: close_after(turns, client))
        proxy_port = await proxy.start()
        client = HubClient(name, hub_token=hub.token, address=HubAddress(f"http://127.0.0.1:{proxy_port}"),
                           backoff_s=(0.01, 0.02))
        try:
            await client.connect()
            await eventually(lambda: closing, 10, "the reconnect's welcome")
            async with asyncio.timeout(5):
                await closing[0]
            async with asyncio.timeout(1):
                await client.finished()   # its reader ended too
            await eventually(lambda: asyncio.to_thread(lambda: hub.peers()[name]["status"] == "offline"), 10,
                             f"{name} offline")
            assert proxy.connections == 2
        finally:
            proxy.server.close()
