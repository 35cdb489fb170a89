"""The async hub client (websockets): hello/welcome, notify with `accepted`, deliveries with
automatic receipts and de-duplication, and reconnect with backoff, jitter and resume.

    async with HubClient("alice", hub_token=token, address=find_hub()) as alice:
        accepted = await alice.notify("bob", "build is green")
        frame = await alice.receive()       # a `deliver` frame as a dict; receipt sent for you

Deliveries are at-least-once on the wire; the client hands each `message_id` to the
application once (it remembers the last `dedup_window` ids) and resumes after a reconnect
from the last sequence number the application received.

With `alternates` (other nodes of the same mesh), a reconnect that fails on one address tries
the next: a peer whose node died comes back on another and gets its inbox there.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Self

import msgspec
import orjson
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from schemas.codec import decode_hub_frame
from transports.discovery import HubAddress, find_hub

log = logging.getLogger(__name__)


class HubRefused(Exception):
    """The hub answered with an `error` frame (or refused the connection)."""

    def __init__(self, code: str, message: str, details: dict | None = None, close_code: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details, self.close_code = code, message, details or {}, close_code


def hub_frame(raw: str | bytes) -> dict[str, Any]:
    """A frame from the hub, decoded and checked against its schemas struct (schemas.frames),
    handed to the application as plain data. A frame this version does not describe (a newer
    hub's) is passed on as it is, and logged."""
    try:
        return msgspec.to_builtins(decode_hub_frame(raw))
    except msgspec.ValidationError as exc:
        data = orjson.loads(raw)
        log.warning("a %r frame from the hub that this client does not describe: %s", data.get("type"), exc)
        return data


def _frame(frame_type: str, **fields: Any) -> dict[str, Any]:
    """A client frame with the fields that are set (None means: leave it out)."""
    return {"type": frame_type, **{k: v for k, v in fields.items() if v is not None}}


class HubClient:
    def __init__(self, name: str, circle: str = "default", role: str = "agent", *,
                 address: HubAddress | None = None, alternates: Sequence[HubAddress] = (),
                 hub_token: str | None = None, token: str | None = None,
                 auto_receipt: bool = True, reconnect: bool = True, dedup_window: int = 10_000,
                 backoff_s: tuple[float, float] = (0.1, 5.0), max_frame_bytes: int = 1024 * 1024,
                 max_queue: int = 1024):
        """`max_queue` bounds the deliveries (and, apart, the people's and bridges' events)
        received and not yet taken: when it is full the client stops reading its socket, so a
        consumer that falls behind is held at the hub, whose bounded outbox then closes it as a
        slow consumer (4008) and keeps its messages in its inbox, instead of this process
        growing without bound."""
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.name, self.circle, self.role = name, circle, role
        self.address = address or find_hub()
        self._addresses = [self.address, *alternates]
        self.hub_token = hub_token
        self.token = token
        self.auto_receipt = auto_receipt
        self.reconnect = reconnect
        self.backoff_s = backoff_s
        self.max_frame_bytes = max_frame_bytes
        self.peer_id: str | None = None
        self.welcome: dict | None = None
        self.last_seq: int | None = None
        self.reconnects = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedup_window = dedup_window
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future] = {}
        self.max_queue = max_queue
        self._deliveries: asyncio.Queue[dict] = asyncio.Queue(max_queue)
        self._decisions: dict[str, asyncio.Future] = {}
        self._events: asyncio.Queue[dict] = asyncio.Queue(max_queue)   # `question`, `question_decided`, `bridge_call`
        self._confirming: set[asyncio.Task[None]] = set()    # receipts sent again for duplicates
        self._reader: asyncio.Task | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.closed_with: tuple[int | None, str] | None = None

    # ---- life --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> dict:
        self.welcome = await self._open()
        self._reader = asyncio.create_task(self._read_forever(), name=f"hub-client {self.name}")
        return self.welcome

    async def finished(self) -> None:
        """Returns when the client stopped for good: closed, or refused by the hub on reconnect."""
        if self._reader is not None:
            await asyncio.wait({self._reader})

    async def bye(self, reason: str) -> None:
        """Tell the hub why this peer leaves (it goes offline with that reason), then close."""
        self._closing = True
        try:
            async with asyncio.timeout(5):
                await self.send_frame({"type": "bye", "reason": reason})
        except (TimeoutError, ConnectionClosed, OSError):
            pass
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader})
            if not self._reader.cancelled():
                self._reader.exception()   # retrieved: a reader that failed has said so already
        if self._ws is not None:
            await self._ws.close()
        self._fail_waiting(ConnectionError("client closed"))

    async def _open(self) -> dict:
        headers = {"Authorization": f"Bearer {self.hub_token}"} if self.hub_token else {}
        if self.address.uds:
            ws = await unix_connect(self.address.uds, self.address.ws_url, additional_headers=headers,
                                    max_size=self.max_frame_bytes, ping_interval=None)
        else:
            ws = await connect(self.address.ws_url, additional_headers=headers, max_size=self.max_frame_bytes,
                               ping_interval=None)
        hello: dict[str, Any] = {"type": "hello", "name": self.name, "circle": self.circle, "role": self.role}
        if self.token:
            hello["token"] = self.token
        if self.last_seq is not None:
            hello["resume"] = self.last_seq
        try:
            await ws.send(orjson.dumps(hello).decode())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when a
            # cancellation lands as the answer arrives, and a close() during a reconnect is lost.
            async with asyncio.timeout(10):
                first = hub_frame(await ws.recv())
        except ConnectionClosed as exc:
            raise HubRefused("closed", "the hub closed the connection during hello",
                             close_code=exc.rcvd.code if exc.rcvd else None) from exc
        except BaseException:   # timed out or cancelled: the half-open connection goes too
            ws.transport.abort()
            raise
        if first.get("type") == "error":
            await ws.close()
            err = first["error"]
            raise HubRefused(err["code"], err["message"], err.get("details"))
        self._ws = ws
        self.peer_id = first["peer_id"]
        self.token = first["token"]
        self._connected.set()
        return first

    # ---- sending -----------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        """Send one frame; while a reconnect is under way, once it is back. A client that
        stopped for good (closed, or the connection ended with reconnect off) raises
        ConnectionError at once instead of waiting for a connection that will not come."""
        if not self._connected.is_set() and (self._closing or self._reader is None or self._reader.done()):
            raise ConnectionError(f"{self.name} is not connected to the hub (closed with {self.closed_with})")
        await self._connected.wait()
        assert self._ws is not None
        await self._ws.send(orjson.dumps(frame).decode())

    async def request(self, frame: dict, timeout: float = 10.0) -> dict:
        """Send a frame with a fresh `id` and wait for the frame that echoes it as `ref`."""
        frame_id = frame.setdefault("id", f"{self.name}-{next(self._ids)}")
        future = asyncio.get_running_loop().create_future()
        self._waiting[frame_id] = future
        try:
            async with asyncio.timeout(timeout):   # sending too: a connection being re-made may not come back
                await self.send_frame(frame)
                reply = await future
        finally:
            self._waiting.pop(frame_id, None)
        if reply.get("type") == "error":
            err = reply["error"]
            raise HubRefused(err["code"], err["message"], err.get("details"))
        return reply

    async def notify(self, to: str, text: str, *, idempotency_key: str | None = None,
                     attachments: list[str] | None = None, timeout: float = 10.0) -> dict:
        """`attachments`: ids of files this peer uploaded (POST /attachments)."""
        frame = _frame("notify", to=to, text=text, idempotency_key=idempotency_key, attachments=attachments or None)
        return await self.request(frame, timeout)

    async def ask(self, to: str | list[str], text: str, *, timeout_s: float | None = None,
                  queue_if_offline: bool = False, question: dict | None = None,
                  idempotency_key: str | None = None, attachments: list[str] | None = None,
                  timeout: float = 10.0) -> dict:
        """Ask; returns `accepted` with the correlation id. The reply, answer or expiry comes
        later through `receive()` as a `deliver` with the same correlation id."""
        frame = _frame("ask", to=to, text=text, timeout_s=timeout_s, question=question,
                       idempotency_key=idempotency_key, attachments=attachments or None)
        if queue_if_offline:
            frame["queue_if_offline"] = True
        return await self.request(frame, timeout)

    async def ack(self, correlation_id: str, text: str | None = None, *, idempotency_key: str | None = None,
                  attachments: list[str] | None = None, timeout: float = 10.0) -> dict:
        frame = _frame("ack", correlation_id=correlation_id, text=text, idempotency_key=idempotency_key,
                       attachments=attachments or None)
        return await self.request(frame, timeout)

    async def answer(self, correlation_id: str, *, option_id: str | None = None, text: str | None = None,
                     outcome: str | None = None, idempotency_key: str | None = None,
                     attachments: list[str] | None = None, timeout: float = 10.0) -> dict:
        frame = _frame("answer", correlation_id=correlation_id, option_id=option_id, text=text, outcome=outcome,
                       idempotency_key=idempotency_key, attachments=attachments or None)
        return await self.request(frame, timeout)

    async def ask_blocking(self, tool_name: str, tool_input: dict, tool_use_id: str, *, session_id: str = "",
                           cwd: str | None = None, hook_timeout_s: float | None = None,
                           timeout_s: float | None = None, prompt: str | None = None,
                           options: list[dict] | None = None, timeout: float | None = None) -> tuple[dict, dict]:
        """A tool-permission question: returns (`accepted`, `decision`) once it is decided."""
        frame = _frame("ask_blocking", tool_name=tool_name, tool_input=tool_input, tool_use_id=tool_use_id,
                       session_id=session_id, cwd=cwd, hook_timeout_s=hook_timeout_s, timeout_s=timeout_s,
                       prompt=prompt, options=options)
        frame_id = frame["id"] = f"{self.name}-{next(self._ids)}"
        decided = asyncio.get_running_loop().create_future()
        self._decisions[frame_id] = decided
        try:
            accepted = await self.request(frame)
            async with asyncio.timeout(timeout):
                return accepted, await decided
        finally:
            self._decisions.pop(frame_id, None)

    async def decide(self, correlation_id: str, decision: str | None = None, *, option_id: str | None = None,
                     reason: str | None = None, content_hash: str | None = None, timeout: float = 10.0) -> dict:
        """For people: allow or deny a tool-permission question; returns the `decision` frame."""
        frame = _frame("decide", correlation_id=correlation_id, decision=decision, option_id=option_id, reason=reason,
                       content_hash=content_hash)
        return await self.request(frame, timeout)

    async def next_event(self, timeout: float | None = None) -> dict:
        """For people: the next `question` (waiting for an answer) or `question_decided` frame;
        for pane bridges: the next `bridge_call`."""
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def ping(self, timeout: float = 10.0) -> dict:
        return await self.request({"type": "ping"}, timeout)

    async def set_presence(self, status: str) -> None:
        await self.send_frame({"type": "presence", "status": status})

    async def receipt(self, message_id: str, status: str = "received", reason: str | None = None) -> None:
        frame = {"type": "receipt", "message_id": message_id, "status": status}
        if reason:
            frame["reason"] = reason
        await self.send_frame(frame)

    # ---- receiving ---------------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> dict:
        """The next new delivery; with auto_receipt, its receipt is sent before returning."""
        async with asyncio.timeout(timeout):
            frame = await self._deliveries.get()
        seq = frame.get("seq")
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq or 0, seq)
        if self.auto_receipt:
            try:
                await self.receipt(frame["message_id"])
            except (ConnectionClosed, ConnectionError):
                pass  # the hub redelivers it after the reconnect; we will drop the repeat
        return frame

    def pending_deliveries(self) -> int:
        return self._deliveries.qsize()

    async def _read_forever(self) -> None:
        while True:
            try:
                assert self._ws is not None
                async for raw in self._ws:
                    queue, frame = self._dispatch(hub_frame(raw))
                    if queue is not None:
                        await queue.put(frame)   # waits while the queue is full: the socket is not read
                self.closed_with = (self._ws.close_code, self._ws.close_reason or "")
            except ConnectionClosed as exc:
                self.closed_with = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            self._connected.clear()
            self._fail_waiting(ConnectionError(f"connection closed {self.closed_with}"))
            if self._closing or not self.reconnect:
                return
            await self._reconnect()
            if self._closing:   # closed while reconnecting: the new connection is not read
                return

    async def _reconnect(self) -> None:
        base, cap = self.backoff_s
        for attempt in itertools.count():
            delay = min(cap, base * (2 ** min(attempt, 16))) * random.uniform(0.5, 1.0)
            await asyncio.sleep(delay)
            if attempt:  # the address that failed may be a node that is gone: try the next one
                self.address = self._addresses[(self._addresses.index(self.address) + 1) % len(self._addresses)]
            try:
                self.welcome = await self._open()
                self.reconnects += 1
                return
            except HubRefused as exc:
                if exc.code in ("unauthorized", "forbidden", "peer_deleted"):
                    log.error("hub refused %s for good: %s", self.name, exc)
                    raise
                log.info("reconnect of %s refused: %s", self.name, exc)
            except (TimeoutError, OSError, InvalidStatus, ConnectionClosed) as exc:
                log.debug("reconnect of %s failed: %s", self.name, exc)

    def _dispatch(self, frame: dict) -> tuple[asyncio.Queue[dict] | None, dict]:
        """Answer what waits for this frame; a delivery or an event is returned with the queue
        it goes to (the reader puts it there, waiting while that queue is full)."""
        kind = frame.get("type")
        if kind == "deliver":
            message_id = frame.get("message_id", "")
            if message_id in self._seen:
                if self.auto_receipt:  # the hub did not get our receipt: confirm again, drop it
                    task = asyncio.get_running_loop().create_task(self._quiet_receipt(message_id))
                    self._confirming.add(task)
                    task.add_done_callback(self._confirming.discard)
                return None, frame
            self._seen[message_id] = None
            if len(self._seen) > self._dedup_window:
                self._seen.popitem(last=False)
            return self._deliveries, frame
        if kind in ("question", "question_decided", "bridge_call"):
            return self._events, frame
        ref = frame.get("ref")
        if kind == "decision" and ref in self._decisions:
            decided = self._decisions.pop(ref)
            if not decided.done():
                decided.set_result(frame)
            return None, frame
        if ref is not None and ref in self._waiting:
            future = self._waiting.pop(ref)
            if not future.done():
                future.set_result(frame)
        elif kind == "error":
            log.warning("hub error for %s: %s", self.name, frame.get("error"))
        return None, frame

    async def _quiet_receipt(self, message_id: str) -> None:
        try:
            await self.receipt(message_id)
        except (ConnectionClosed, OSError):
            pass

    def _fail_waiting(self, exc: Exception) -> None:
        """The connection closed: requests and held questions fail (a question is then denied
        by whoever waits on it; the hub records `waiter_lost`)."""
        for future in [*self._waiting.values(), *self._decisions.values()]:
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()
        self._decisions.clear()
