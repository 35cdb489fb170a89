"""The keepalive wheel, in process: one timer pings every connection once per interval, the
connections of a slot in one loop turn, and forgets a connection that is done. And when a pong
may be read without websockets' parser: only between frames."""

from __future__ import annotations

import asyncio

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from hub.server.keepalive import SLOTS, KeepaliveWheel
from hub.server.ws_protocol import between_frames
from tests.support import eventually

INTERVAL_S = 0.2


class Peer:
    """A connection as the wheel sees it: it counts its pings, and is done after `lives`."""

    def __init__(self, pinged: asyncio.Event, lives: int = 1_000, fails: bool = False):
        self.pings: list[float] = []
        self.lives = lives
        self.fails = fails
        self.pinged = pinged

    def keepalive_due(self) -> bool:
        self.pings.append(asyncio.get_running_loop().time())
        self.pinged.set()
        if self.fails:
            raise OSError("the transport broke")
        return len(self.pings) < self.lives


async def test_every_connection_is_pinged_once_per_interval_those_added_together_in_one_turn():
    wheel, pinged = KeepaliveWheel(INTERVAL_S), asyncio.Event()
    together = [Peer(pinged) for _ in range(50)]
    for peer in together:
        wheel.add(peer)
    await eventually(lambda: all(len(p.pings) >= 3 for p in together), 10, "three pings each")
    firsts = [p.pings[0] for p in together]
    assert max(firsts) - min(firsts) < INTERVAL_S / SLOTS / 2   # one tick pinged them all
    gaps = [b - a for p in together for a, b in zip(p.pings, p.pings[1:])]
    assert all(abs(gap - INTERVAL_S) < INTERVAL_S / 2 for gap in gaps)   # no ping twice per interval
    for peer in together:
        wheel.discard(peer)
    assert len(wheel) == 0


async def test_a_connection_done_or_broken_is_forgotten_and_the_others_go_on():
    wheel, pinged = KeepaliveWheel(INTERVAL_S), asyncio.Event()
    done, broken, alive = Peer(pinged, lives=1), Peer(pinged, fails=True), Peer(pinged)
    for peer in (done, broken, alive):
        wheel.add(peer)
    await eventually(lambda: len(alive.pings) >= 3, 10, "three pings of the live one")
    assert len(done.pings) == 1 and len(broken.pings) == 1
    assert len(wheel) == 1
    wheel.discard(alive)
    assert len(wheel) == 0


def test_the_parser_is_between_frames_only_once_it_has_read_a_whole_frame():
    client, server = ClientProtocol(parse_uri("ws://127.0.0.1/ws")), ServerProtocol()
    assert not between_frames(server)   # still reading the handshake
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    server.send_response(server.accept(server.events_received()[0]))
    client.receive_data(b"".join(server.data_to_send()))
    assert server.state is State.OPEN and between_frames(server)
    client.send_text(b"0123456789")
    frame = b"".join(client.data_to_send())
    for cut in (1, 2, 6, 7, len(frame) - 1):   # inside the header, after the mask, inside the payload
        server.receive_data(frame[:cut])
        assert not between_frames(server), cut
        server.receive_data(frame[cut:])
        assert between_frames(server), cut
    assert [event.data for event in server.events_received()] == [b"0123456789"] * 5
    server.receive_eof()
    assert not between_frames(server)
