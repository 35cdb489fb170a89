"""The yardstick: a bare websockets relay doing the hub's notify work without a store.

It speaks the same frames (hello -> welcome, notify -> accepted + deliver, ask -> accepted +
deliver, ack -> accepted + reply deliver, receipt, ping -> pong, ask_blocking -> accepted and a
`question` to every connected person, decide -> `decision` to the asker; with no person
connected, ask_blocking is decided at once, standing in for a policy), routes by name from
memory, and writes nothing anywhere. Whatever the hub costs beyond
this is the price of durability, traces, identity and safety.
Run: python -m bench.relay PORT [PING_INTERVAL] [--durable [--asks]] (prints "ready PORT STORE_PID" when
listening; it pings each connection every PING_INTERVAL seconds, by default websockets' 20, and
gives up on one that has not answered within as long, as the hub does with `--heartbeat`).

`--durable` is the same relay keeping promise 1 (accepted means durable), the inbox of promise
2 and the trace of promise 3 in the least work it can: it starts its own embedded store (the
hub's, same settings: append-only file, fsync every second) and, before it delivers or
acknowledges a notify, ask or ack, appends it to the recipient's inbox (one `XADD`, awaited)
and starts its trace with `accepted` and `sent` in the same packet (`RPUSH`, `EXPIRE`); a
reply appends `replied` to its ask's trace. A receipt deletes the inbox entry and appends
`received` (`XDEL`, `RPUSHX`), awaited by nobody and lingering up to 2 ms for a packet to
share. The writes go through the hub's own group-commit writer. No scripts, no seq from the
store, no identity, limits, ask records or dashboard events: what the hub spends beyond this
is not the promises' price but its own.

`--asks` (with `--durable`) also keeps, on this one node, what an ask promises across a restart,
again in the least work: each inbox entry's id is the per-peer seq its delivery carries
(`<seq>-0`: promise 2's resume reads from it); an ask writes its record, with its deadline and
retention, and enters its asker's open-asks index (`HSET`, `PEXPIREAT`, `ZADD`: the deadline of
promise 3 and the count of promise 10 survive a restart) in its delivery's packet; a reply closes
it once (checked in memory: one process serves every peer) and writes the close in the reply's
packet (`HSET`, `ZREM`); a deadline that passes closes it as expired and queues the asker's
notice. An asker past the hub's default limit on open asks is refused. Still no scripts: a hub
shares its store with other nodes, and its scripts are what keeps those writes right when
several processes make them; one process needs none.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from websockets.asyncio.server import ServerConnection, serve

from hub.store.connect import open_client
from hub.store.embedded import EmbeddedStore
from hub.store.writer import GroupCommitWriter

PING_INTERVAL_S = 20.0   # websockets' default
TRACE_RETENTION_S = 7 * 24 * 3600
ASK_RETENTION_MS = 24 * 3600 * 1000   # an ask's record outlives its deadline by this much
PENDING_ASKS_PER_PEER = 1000          # the hub's default limit on one asker's open asks


class Inboxes:
    """The durable relay's writes, through the hub's own group-commit writer (one packet per
    loop turn, a write nobody awaits lingering as the hub's do), so the yardstick and the hub
    differ in what they write, not in how. With `keeps_asks` an entry's id is its seq, and
    asks write their record and its close."""

    def __init__(self, writer: GroupCommitWriter, keeps_asks: bool = False):
        self.writer = writer
        self.keeps_asks = keeps_asks
        self.entries: dict[str, tuple[str, bytes, str]] = {}   # message id -> (recipient, inbox entry id, trace)

    async def append(self, recipient: str, message_id: str, payload: bytes, seq: int,
                     opens: OpenAsk | None = None, closes: OpenAsk | None = None, outcome: bytes = b"replied") -> None:
        """The message is in the recipient's inbox (and the store's append-only file), and its
        trace holds `accepted` and `sent` (an ask's trace is its correlation id's, as in the hub);
        an ask it `opens` is recorded, one it `closes` (a reply, or an expiry's notice) is closed,
        with `outcome` as its trace's stage."""
        trace = f"trace:{opens.correlation_id if opens is not None else message_id}"
        entry_id = f"{seq}-0" if self.keeps_asks else "*"
        commands: list[tuple] = [("XADD", f"inbox:{recipient}", entry_id, "m", message_id, "p", payload),
                                 ("RPUSH", trace, *stages(b"accepted", b"sent")), ("EXPIRE", trace, TRACE_RETENTION_S)]
        if opens is not None and self.keeps_asks:
            record = f"ask:{opens.correlation_id}"
            commands += [("HSET", record, "asker", opens.asker, "recipient", opens.recipient,
                          "deadline", opens.deadline_ms, "state", "pending"),
                         ("PEXPIREAT", record, opens.deadline_ms + ASK_RETENTION_MS),
                         ("ZADD", f"asks:{opens.asker}", opens.deadline_ms, opens.correlation_id)]
        if closes is not None:
            commands.append(("RPUSHX", f"trace:{closes.correlation_id}", *stages(outcome)))
            if self.keeps_asks:
                commands += [("HSET", f"ask:{closes.correlation_id}", "state", outcome,
                              "closed_at", time.time_ns() // 1_000_000),
                             ("ZREM", f"asks:{closes.asker}", closes.correlation_id)]
        entry, *_ = await self.writer.submit(commands)
        self.entries[message_id] = (recipient, entry, trace)

    def confirm(self, message_id: str) -> None:
        if (found := self.entries.pop(message_id, None)) is not None:
            recipient, entry, trace = found
            self.writer.submit([("XDEL", f"inbox:{recipient}", entry), ("RPUSHX", trace, *stages(b"received"))],
                               wait=False)


@dataclass(frozen=True, slots=True)
class OpenAsk:
    correlation_id: str
    asker: str       # names: the relay routes by name
    recipient: str
    deadline_ms: int


def stages(*names: bytes) -> list[bytes]:
    """Trace stages as the relay writes them: name, time, node."""
    at = str(time.time_ns() // 1_000_000).encode()
    return [b'{"stage":"' + name + b'","at":' + at + b',"node":"relay"}' for name in names]


class Relay:
    def __init__(self, inboxes: Inboxes | None = None):
        self.inboxes = inboxes   # --durable: messages are written before they are delivered or accepted
        self.keeps_asks = inboxes is not None and inboxes.keeps_asks
        self.peers: dict[str, ServerConnection] = {}
        self.seq: dict[str, itertools.count] = {}
        self.asks: dict[str, OpenAsk] = {}  # correlation id -> the open ask
        self.open_asks: dict[str, int] = {}  # asker name -> how many of its asks are open (--asks)
        self.deadlines: dict[str, asyncio.TimerHandle] = {}  # correlation id -> its expiry (--asks)
        self.expiring: set[asyncio.Task] = set()   # expiries being written (the loop keeps only weak references)
        self.people: set[ServerConnection] = set()
        self.questions: dict[str, tuple[ServerConnection, str]] = {}  # correlation id -> (asker, frame id)

    def next_seq(self, name: str) -> int:
        return next(self.seq[name]) if name in self.seq else 0   # 0: a name that never said hello

    def open_ask(self, ask: OpenAsk) -> None:
        self.asks[ask.correlation_id] = ask
        if self.keeps_asks:
            self.open_asks[ask.asker] = self.open_asks.get(ask.asker, 0) + 1
            delay_s = max(0.0, ask.deadline_ms / 1000 - time.time())
            self.deadlines[ask.correlation_id] = asyncio.get_running_loop().call_later(
                delay_s, self._start_expiry, ask.correlation_id)

    def _start_expiry(self, cid: str) -> None:
        task = asyncio.ensure_future(self.expire(cid))
        self.expiring.add(task)
        task.add_done_callback(self.expiring.discard)

    def close_ask(self, cid: str) -> OpenAsk | None:
        """The open ask, taken out once: None when it is unknown or already closed."""
        ask = self.asks.pop(cid, None)
        if ask is not None and self.keeps_asks:
            self.open_asks[ask.asker] -= 1
            self.deadlines.pop(cid).cancel()
        return ask

    async def expire(self, cid: str) -> None:
        """A deadline passed: the ask is closed as expired and its asker gets the notice."""
        ask = self.close_ask(cid)
        if ask is None or self.inboxes is None:
            return
        message_id, seq = secrets.token_hex(16), self.next_seq(ask.asker)
        deliver = orjson.dumps({"type": "deliver", "seq": seq, "kind": "expired", "message_id": message_id,
                                "correlation_id": cid, "sent_at": 0,
                                "from": {"peer_id": "hub", "name": "hub", "circle": "default"}})
        await self.inboxes.append(ask.asker, message_id, deliver, seq, closes=ask, outcome=b"expired")
        if (target := self.peers.get(ask.asker)) is not None:
            await target.send(deliver.decode())

    async def handler(self, ws: ServerConnection) -> None:
        hello = orjson.loads(await ws.recv())
        name = hello["name"]
        peer_id = secrets.token_hex(16)
        self.peers[name] = ws
        self.seq.setdefault(name, itertools.count(1))
        if hello.get("role") == "person":
            self.people.add(ws)
        await ws.send(orjson.dumps({"type": "welcome", "peer_id": peer_id, "name": name, "circle": "default",
                                    "token": secrets.token_urlsafe(32)}).decode())
        sender = {"peer_id": peer_id, "name": name, "circle": "default"}
        try:
            async for raw in ws:
                frame = orjson.loads(raw)
                kind = frame["type"]
                if kind == "notify":
                    message_id, seq = secrets.token_hex(16), self.next_seq(frame["to"])
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": seq,
                        "kind": "notify", "message_id": message_id, "text": frame["text"], "sent_at": 0,
                        "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(frame["to"], message_id, deliver, seq)
                    target = self.peers.get(frame["to"])
                    state = "queued"
                    if target is not None:
                        await target.send(deliver.decode())
                        state = "delivered"
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "state": state}).decode())
                elif kind == "ask":
                    if self.keeps_asks and self.open_asks.get(name, 0) >= PENDING_ASKS_PER_PEER:
                        await ws.send(refusal(frame, "too_many_pending_asks"))
                        continue
                    message_id, cid, seq = secrets.token_hex(16), secrets.token_hex(16), self.next_seq(frame["to"])
                    ask = OpenAsk(cid, name, frame["to"],
                                  time.time_ns() // 1_000_000 + int(frame.get("timeout_s", 300) * 1000))
                    self.open_ask(ask)
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": seq,
                        "kind": "ask", "message_id": message_id, "correlation_id": cid, "text": frame["text"],
                        "deadline": 0, "sent_at": 0, "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(frame["to"], message_id, deliver, seq, opens=ask)
                    target = self.peers.get(frame["to"])
                    if target is not None:
                        await target.send(deliver.decode())
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "correlation_id": cid, "state": "delivered", "deadline": 0}).decode())
                elif kind == "ack":
                    cid = frame["correlation_id"]
                    if (closed := self.close_ask(cid)) is None:
                        await ws.send(refusal(frame, "ask_not_found"))
                        continue
                    asker = closed.asker
                    message_id, seq = secrets.token_hex(16), self.next_seq(asker)
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": seq, "kind": "reply", "message_id": message_id,
                        "correlation_id": cid, "text": frame.get("text"), "sent_at": 0, "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(asker, message_id, deliver, seq, closes=closed)
                    target = self.peers.get(asker)
                    if target is not None:
                        await target.send(deliver.decode())
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame.get("id"), "message_id": message_id,
                                                "correlation_id": cid, "state": "delivered",
                                                "ask_state": "replied"}).decode())
                elif kind == "ask_blocking":
                    cid = secrets.token_hex(16)
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": cid,
                                                "correlation_id": cid, "state": "queued", "deadline": 0}).decode())
                    if not self.people:
                        await ws.send(orjson.dumps({"type": "decision", "ref": frame["id"], "correlation_id": cid,
                                                    "decision": "allow", "answered_by": "policy",
                                                    "reason": "relay"}).decode())
                        continue
                    self.questions[cid] = (ws, frame["id"])
                    question = orjson.dumps({"type": "question", "correlation_id": cid, "state": "pending",
                                             "tool_name": frame["tool_name"], "tool_input": frame["tool_input"],
                                             "tool_use_id": frame["tool_use_id"], "asker": sender}).decode()
                    for person in list(self.people):
                        await person.send(question)
                elif kind == "decide":
                    cid = frame["correlation_id"]
                    asker, ref = self.questions.pop(cid)
                    decision = {"correlation_id": cid, "decision": frame["decision"], "answered_by": "human",
                                "reason": frame.get("reason", "")}
                    await asker.send(orjson.dumps({"type": "decision", "ref": ref, **decision}).decode())
                    await ws.send(orjson.dumps({"type": "decision", "ref": frame.get("id"), **decision}).decode())
                elif kind == "receipt":
                    if self.inboxes is not None:
                        self.inboxes.confirm(frame["message_id"])
                elif kind == "ping":
                    await ws.send(orjson.dumps({"type": "pong", "ref": frame.get("id")}).decode())
        finally:
            self.people.discard(ws)
            if self.peers.get(name) is ws:
                del self.peers[name]


def refusal(frame: dict, code: str) -> str:
    """The error frame the hub would send for `frame` (its code only: the relay writes no message)."""
    return orjson.dumps({"type": "error", "ref": frame.get("id"),
                         "error": {"code": code, "message": code, "details": {}}}).decode()


async def main(port: int, ping_interval: float, durable: bool, keeps_asks: bool) -> None:
    store = inboxes = None
    if durable:   # the store dies with this process (the hub's launcher asks the kernel for that)
        store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="rw-relay-")))
        await asyncio.to_thread(store.start)
        writer = GroupCommitWriter(open_client(store.url, per_reply_timeout=False), owns_client=True)
        writer.start()
        inboxes = Inboxes(writer, keeps_asks)
    relay = Relay(inboxes)
    async with serve(relay.handler, "127.0.0.1", port, compression=None, max_size=1 << 20,
                     ping_interval=ping_interval, ping_timeout=ping_interval) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"ready {bound} {store.process.pid if store and store.process else 0}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("ping_interval", type=float, nargs="?", default=PING_INTERVAL_S)
    parser.add_argument("--durable", action="store_true", help="write each message before delivering it")
    parser.add_argument("--asks", action="store_true",
                        help="with --durable: also write each ask's record, its close and its seq")
    args = parser.parse_args()
    if args.asks and not args.durable:
        parser.error("--asks keeps what an ask promises in the store: it needs --durable")
    asyncio.run(main(args.port, args.ping_interval, args.durable, args.asks))
