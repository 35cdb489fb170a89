"""The yardstick: a bare websockets relay doing the hub's notify work without a store.

It speaks the same frames (hello -> welcome, notify -> accepted + deliver, ask -> accepted +
deliver, ack -> accepted + reply deliver, receipt, ping -> pong, ask_blocking -> accepted and a
`question` to every connected person, decide -> `decision` to the asker; with no person
connected, ask_blocking is decided at once, standing in for a policy), routes by name from
memory, and writes nothing anywhere. Whatever the hub costs beyond
this is the price of durability, traces, identity and safety.
Run: python -m bench.relay PORT [PING_INTERVAL] (prints "ready PORT" when listening; it pings
each connection every PING_INTERVAL seconds, by default websockets' 20, and gives up on one that
has not answered within as long, as the hub does with `--heartbeat`).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import sys

import orjson
from websockets.asyncio.server import ServerConnection, serve

PING_INTERVAL_S = 20.0   # websockets' default


class Relay:
    def __init__(self):
        self.peers: dict[str, ServerConnection] = {}
        self.seq: dict[str, itertools.count] = {}
        self.asks: dict[str, str] = {}  # correlation id -> asker name
        self.people: set[ServerConnection] = set()
        self.questions: dict[str, tuple[ServerConnection, str]] = {}  # correlation id -> (asker, frame id)

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
                    target = self.peers.get(frame["to"])
                    state = "queued"
                    if target is not None:
                        await target.send(orjson.dumps({
                            "type": "deliver", "seq": next(self.seq[frame["to"]]), "kind": "notify",
                            "message_id": message_id, "text": frame["text"], "sent_at": 0, "from": sender}).decode())
                        state = "delivered"
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "state": state}).decode())
                elif kind == "ask":
                    message_id, cid = secrets.token_hex(16), secrets.token_hex(16)
                    self.asks[cid] = name
                    target = self.peers.get(frame["to"])
                    if target is not None:
                        await target.send(orjson.dumps({
                            "type": "deliver", "seq": next(self.seq[frame["to"]]), "kind": "ask", "message_id": message_id,
                            "correlation_id": cid, "text": frame["text"], "deadline": 0, "sent_at": 0,
                            "from": sender}).decode())
                    await ws.send(orjson.dumps({"type": "accepted", "ref": frame["id"], "message_id": message_id,
                                                "correlation_id": cid, "state": "delivered", "deadline": 0}).decode())
                elif kind == "ack":
                    cid = frame["correlation_id"]
                    asker = self.asks.pop(cid)
                    message_id = secrets.token_hex(16)
                    target = self.peers.get(asker)
                    if target is not None:
                        await target.send(orjson.dumps({
                            "type": "deliver", "seq": next(self.seq[asker]), "kind": "reply", "message_id": message_id,
                            "correlation_id": cid, "text": frame.get("text"), "sent_at": 0, "from": sender}).decode())
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
                elif kind == "ping":
                    await ws.send(orjson.dumps({"type": "pong", "ref": frame.get("id")}).decode())
        finally:
            self.people.discard(ws)
            if self.peers.get(name) is ws:
                del self.peers[name]


async def main(port: int, ping_interval: float) -> None:
    relay = Relay()
    async with serve(relay.handler, "127.0.0.1", port, compression=None, max_size=1 << 20,
                     ping_interval=ping_interval, ping_timeout=ping_interval) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"ready {bound}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0, float(sys.argv[2]) if len(sys.argv) > 2 else PING_INTERVAL_S))
