"""uvicorn's sans-io WebSocket protocol with flow control by a high-water mark, kept alive by
one wheel for every connection.

The stock protocol stops reading the socket after every message until the app receives it,
and starts again on every receive: two `epoll_ctl` system calls per incoming frame, a large
share of a small request's cost (bench/RESULTS.md). This one stops reading only when
`HIGH_WATER` messages wait for the app, so a peer that floods is still held back by TCP, and
resumes (as the stock protocol does) once the app has taken them all.

Its keepalive pings come from a `KeepaliveWheel` (hub.server.keepalive) instead of two timers
per connection; uvicorn passes the wheel in through the `ws` factory (`partial(..., keepalive=)`).

It also writes the hub's outgoing frames without ASGI's one-message-per-await `send`: the app
finds the protocol in the scope's extension `FRAMES` and hands it every frame one connection
has ready in a loop turn (`write_texts`), framed here (RFC 6455 5.2: a server's frames are not
masked; no extension is negotiated, compression being off) and written in one `transport.write`.
Closing still goes through ASGI.

After the hello, the app may take the messages as they are parsed (`on_message`, a plain
callback) instead of from ASGI's queue, and hear of the connection's loss (`on_lost`): a peer's
socket then needs no task of its own reading it (hub.server.peer_session). The app pauses and
resumes reading itself (`hold_reading`, `release_reading`) while it holds messages back.

What a peer's socket mostly gets is read without websockets' parser, whose generators, frame
objects and event list were a tenth of a busy hub's CPU: whole, masked, unfragmented text frames
under 64 KiB (to `on_message`) and the pong of the wheel's ping, taken only while the parser
waits for a new frame. Anything else, from its first byte on, goes to the parser, which then
starts on a frame boundary as it expects: its checks (masking, sizes, UTF-8, control frames,
fragments, close) stay the one authority. Autobahn's cases run on both ways in (tests/test_fuzz).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import apply_mask
from websockets.http11 import Request
from websockets.protocol import Protocol, State
from websockets.streams import StreamReader

from hub.server.keepalive import KeepaliveWheel

HIGH_WATER = 32
FRAMES = "repowire.frames"   # the scope extension: {"protocol": this connection's protocol}

_TEXT_FIN = 0x81              # FIN + opcode 1 (text)
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_PONG = 0x8A                  # FIN + opcode 10 (pong)
_FRAME_LOOP = Protocol.parse.__code__            # websockets' parser of frames, once the handshake is done
_FRAME_START = StreamReader.at_eof.__code__      # where that parser waits for a frame to start


def between_frames(conn: Protocol) -> bool:
    """Whether websockets' parser has read every byte it was given and waits for a new frame
    (not for the rest of one). Any other state, or a version of websockets whose parser is
    shaped otherwise, says False: the caller then feeds the parser."""
    outer, waiting = None, conn.parser
    while (inner := getattr(waiting, "gi_yieldfrom", None)) is not None:
        outer, waiting = waiting, inner
    return getattr(waiting, "gi_code", None) is _FRAME_START and getattr(outer, "gi_code", None) is _FRAME_LOOP


class _NoQueue:
    """ASGI's receive queue once the app takes messages by callback: the disconnects the
    protocol still announces there are heard through `on_lost` instead."""

    def put_nowait(self, event: Any) -> None:
        pass

    def empty(self) -> bool:
        return True


_NO_QUEUE: Any = _NoQueue()


def _drop_message(data: str | bytes) -> None:
    pass


def text_frame_header(size: int) -> bytes:
    """The header of one unmasked, unfragmented text frame of `size` bytes (RFC 6455 5.2)."""
    if size < 126:
        return _SHORT.pack(_TEXT_FIN, size)
    if size < 65536:
        return _MEDIUM.pack(_TEXT_FIN, 126, size)
    return _LONG.pack(_TEXT_FIN, 127, size)


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, keepalive: KeepaliveWheel | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.keepalive = keepalive
        self.writable_callback: Callable[[], object] | None = None
        self.on_message: Callable[[str | bytes], object] | None = None
        self.on_lost: Callable[[], object] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.close_sent:   # the app runs: let it write frames directly
            self.scope["extensions"][FRAMES] = {"protocol": self}

    # ---- frames from the app, without ASGI -------------------------------------------------

    def write_texts(self, frames: Sequence[bytes]) -> bool:
        """Write text frames (UTF-8) in one system call; False once the connection is closing
        or gone (nothing is written)."""
        if self.close_sent or self.disconnected or self.conn.state is not State.OPEN or self.transport.is_closing():
            return False
        if self.conn.extensions:   # never with compression off; kept correct regardless
            for frame in frames:
                self.conn.send_text(frame)
            self.transport.write(b"".join(self.conn.data_to_send()))
            return True
        parts: list[bytes] = []
        for frame in frames:
            parts.append(text_frame_header(len(frame)))
            parts.append(frame)
        self.transport.write(b"".join(parts))
        return True

    def takes_more(self) -> bool:
        """Below the transport's high-water mark (or gone, which `write_texts` answers)."""
        return self.writable.is_set()

    def when_writable(self, callback: Callable[[], object]) -> None:
        self.writable_callback = callback

    def resume_writing(self) -> None:
        super().resume_writing()
        self._call_writable()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._call_writable()
        if self.on_lost is not None:
            self.on_lost()

    # ---- messages to a callback, without ASGI ----------------------------------------------

    def take_messages(self, on_message: Callable[[str | bytes], object], on_lost: Callable[[], object]) -> None:
        """From now on, hand messages to `on_message` as they are parsed; first those ASGI's
        queue holds (a disconnect among them is `on_lost`)."""
        self.on_message, self.on_lost = on_message, on_lost
        self.release_reading()   # (ASGI's flow control may have paused it; on_message may hold it again)
        queued, self.queue = self.queue, _NO_QUEUE   # its four deques are 3 KB a connection
        while not queued.empty():
            event = queued.get_nowait()
            if event["type"] == "websocket.receive":
                on_message(event.get("text") or event.get("bytes") or b"")
            else:
                on_lost()
        # The upgrade's request and response are done with (3 KB a connection).
        del self.request, self.response

    def stop_taking_messages(self) -> None:
        """The app is done with the connection: messages still coming are dropped (ASGI's
        queue is gone; the hub is closing the socket)."""
        self.on_message, self.on_lost = _drop_message, None

    def hold_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def release_reading(self) -> None:
        if self.read_paused and not self.transport.is_closing():
            self.read_paused = False
            self.transport.resume_reading()

    def _call_writable(self) -> None:
        callback, self.writable_callback = self.writable_callback, None
        if callback is not None:
            callback()

    def drop(self) -> None:
        """Cut the transport at once (for a peer that stopped reading)."""
        self.transport.abort()

    # ---- reading frames ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """The frames the hub mostly gets are taken here without websockets' parser, while it
        waits for a new frame (`_take_frames`); the rest of what the socket gave goes to it."""
        if (self.conn.state is State.OPEN and not self.close_sent and self.conn.current_size is None
                and between_frames(self.conn)):
            data = self._take_frames(data)
            if not data:
                return
        super().data_received(data)

    def _take_frames(self, data: bytes) -> bytes:
        """Take the whole frames at the start of `data` that need nothing of the parser: the
        pong of the wheel's ping, and (once the app takes messages by callback) unfragmented
        text frames under 64 KiB within the size limits, masked as a client's must be. What is
        left, from the first frame that is anything else or not whole, is returned for the
        parser, which then starts on a frame's first byte as it expects."""
        at, size = 0, len(data)
        while size - at >= 6:
            first, second = data[at], data[at + 1]
            length = second & 0x7F
            if second & 0x80 == 0 or length == 127:   # unmasked (the parser fails it), or 64 KiB and more
                break
            head = 6
            if length == 126:
                if size - at < 8:
                    break
                length, head = (data[at + 2] << 8) | data[at + 3], 8
            start, end = at + head, at + head + length
            if end > size:
                break
            mask = data[start - 4:start]
            if first == _TEXT_FIN:
                if self.on_message is None or not self.fits(length):
                    break
                try:
                    text = apply_mask(data[start:end], mask).decode()
                except UnicodeDecodeError:   # the parser closes with 1007, as for any bad text
                    break
                at = end
                self.on_message(text)
                if self.close_sent or self.conn.state is not State.OPEN:   # the app closed: the parser reads on
                    break
            elif (first == _PONG and length == 4 and self.keepalive is not None
                  and self.pending_ping_payload is not None
                  and apply_mask(data[start:end], mask) == self.pending_ping_payload):
                at = end
                self.last_ping_rtt = self.loop.time() - self.ping_sent_at
                self.pending_ping_payload = None
            else:
                break
        return data[at:] if at else data

    def fits(self, length: int) -> bool:
        """Within the parser's limits for a message and for a frame (websockets' Protocol)."""
        most, fragment = self.conn.max_message_size, self.conn.max_fragment_size
        return (most is None or length <= most) and (fragment is None or length <= fragment)

    # ---- keepalive, by the wheel -----------------------------------------------------------

    def start_keepalive(self) -> None:
        if self.keepalive is None:
            super().start_keepalive()
        elif self.ping_interval:
            self.keepalive.add(self)

    def stop_keepalive(self) -> None:
        if self.keepalive is not None:
            self.keepalive.discard(self)
        super().stop_keepalive()

    def keepalive_due(self) -> bool:
        """The wheel's turn for this connection: give up on a peer that has not answered the
        ping sent one interval ago, or send the tick's ping (the stock `handle_pong` clears
        the ping it answers; with no pong timer it arms nothing)."""
        if self.close_sent or self.transport.is_closing() or self.conn.state is not State.OPEN:
            return False
        if self.pending_ping_payload is not None:
            self.keepalive_timeout()
            return False
        wheel = self.keepalive
        assert wheel is not None
        self.pending_ping_payload = wheel.ping_payload
        self.ping_sent_at = wheel.ticked_at
        self.transport.write(wheel.ping_frame)
        return True

    # ---- flow control ----------------------------------------------------------------------

    def send_receive_event_to_app(self) -> None:
        if self.on_message is not None:
            self._hand_to_app()
            return
        paused = self.read_paused
        self.read_paused = True  # the stock method pauses unless it believes it already has
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() >= HIGH_WATER:
            self.read_paused = True
            self.transport.pause_reading()

    def _hand_to_app(self) -> None:
        assert self.on_message is not None
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:   # as the stock protocol answers it
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            self.on_message(text)
        else:
            self.on_message(data)
