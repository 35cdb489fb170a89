"""The yardstick: a bare websockets relay doing the hub's notify work without a store.

It speaks the same frames (hello -> welcome, notify -> accepted + deliver, ask -> accepted +
deliver, ack -> accepted + reply deliver, receipt, ping -> pong, ask_blocking -> accepted and a
`question` to every connected person, decide -> `decision` to the asker; with no person
connected, ask_blocking is decided at once, standing in for a policy), routes by name from
memory, and writes nothing anywhere. Whatever the hub costs beyond
this is the price of durability, traces, identity and safety.
Run: python -m bench.relay PORT [PING_INTERVAL] [--durable] (prints "ready PORT STORE_PID" when
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
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
import time
from pathlib import Path

import orjson
from websockets.asyncio.server import ServerConnection, serve

from hub.store.connect import open_client
from hub.store.embedded import EmbeddedStore
from hub.store.writer import GroupCommitWriter

PING_INTERVAL_S = 20.0   # websockets' default
TRACE_RETENTION_S = 7 * 24 * 3600


class Inboxes:
    """The durable relay's writes, through the hub's own group-commit writer (one packet per
    loop turn, a write nobody awaits lingering as the hub's do), so the yardstick and the hub
    differ in what they write, not in how."""

    def __init__(self, writer: GroupCommitWriter):
        self.writer = writer
        self.entries: dict[str, tuple[str, bytes]] = {}   # message id -> (recipient, inbox entry id)

    async def append(self, recipient: str, message_id: str, payload: bytes, closes: str | None = None) -> None:
        """The message is in the recipient's inbox (and the store's append-only file), and its
        trace holds `accepted` and `sent` (a reply also closes its ask's trace: `closes`)."""
        trace = f"trace:{message_id}"
        commands = [("XADD", f"inbox:{recipient}", "*", "m", message_id, "p", payload),
                    ("RPUSH", trace, *stages(b"accepted", b"sent")), ("EXPIRE", trace, TRACE_RETENTION_S)]
        if closes is not None:
            commands.append(("RPUSHX", f"trace:{closes}", *stages(b"replied")))
        entry, *_ = await self.writer.submit(commands)
        self.entries[message_id] = (recipient, entry)

    def confirm(self, message_id: str) -> None:
        if (found := self.entries.pop(message_id, None)) is not None:
            self.writer.submit([("XDEL", f"inbox:{found[0]}", found[1]),
                                ("RPUSHX", f"trace:{message_id}", *stages(b"received"))], wait=False)


def stages(*names: bytes) -> list[bytes]:
    """Trace stages as the relay writes them: name, time, node."""
    at = str(time.time_ns() // 1_000_000).encode()
    return [b'{"stage":"' + name + b'","at":' + at + b',"node":"relay"}' for name in names]


class Relay:
    def __init__(self, inboxes: Inboxes | None = None):
        self.inboxes = inboxes   # --durable: messages are written before they are delivered or accepted
        self.peers: dict[str, ServerConnection] = {}
        self.seq: dict[str, itertools.count] = {}
        self.asks: dict[str, str] = {}  # correlation id -> asker name
        self.people: set[ServerConnection] = set()
        self.questions: dict[str, tuple[ServerConnection, str]] = {}  # correlation id -> (asker, frame id)

    def next_seq(self, name: str) -> int:
        return next(self.seq[name]) if name in self.seq else 0   # 0: a name that never said hello

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
                    message_id = secrets.token_hex(16)
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": self.next_seq(frame["to"]),
                        "kind": "notify", "message_id": message_id, "text": frame["text"], "sent_at": 0,
                        "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(frame["to"], message_id, deliver)
                    target = self.peers.get(frame["to"])
                    state = "queued"
                    if target is not None:
                        await target.send(deliver.decode())
                        state = "delivered"
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "state": state}).decode())
                elif kind == "ask":
                    message_id, cid = secrets.token_hex(16), secrets.token_hex(16)
                    self.asks[cid] = name
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": self.next_seq(frame["to"]),
                        "kind": "ask", "message_id": message_id, "correlation_id": cid, "text": frame["text"],
                        "deadline": 0, "sent_at": 0, "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(frame["to"], message_id, deliver)
                    target = self.peers.get(frame["to"])
                    if target is not None:
                        await target.send(deliver.decode())
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "correlation_id": cid, "state": "delivered", "deadline": 0}).decode())
                elif kind == "ack":
                    cid = frame["correlation_id"]
                    asker = self.asks.pop(cid)
                    message_id = secrets.token_hex(16)
                    deliver = orjson.dumps({
                        "type": "deliver", "seq": self.next_seq(asker), "kind": "reply", "message_id": message_id,
                        "correlation_id": cid, "text": frame.get("text"), "sent_at": 0, "from": sender})
                    if self.inboxes is not None:
                        await self.inboxes.append(asker, message_id, deliver, closes=cid)
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


async def main(port: int, ping_interval: float, durable: bool) -> None:
    store = inboxes = None
    if durable:   # the store dies with this process (the hub's launcher asks the kernel for that)
        store = EmbeddedStore(Path(tempfile.mkdtemp(prefix="rw-relay-")))
        await asyncio.to_thread(store.start)
        writer = GroupCommitWriter(open_client(store.url, per_reply_timeout=False), owns_client=True)
        writer.start()
        inboxes = Inboxes(writer)
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
    args = parser.parse_args()
    asyncio.run(main(args.port, args.ping_interval, args.durable))
