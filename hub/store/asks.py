"""Asks in the store: the ask record, its deadline, the pending indexes, and closing it.

Commands are returned for the group-commit writer; reads are direct (REST lookups, start-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.state import as_text
from hub.store.writer import Command


def _record(raw: dict) -> dict:
    """The stored hash as one flat dict of strings: the body's fields and the changing ones."""
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    return {**orjson.loads(fields.pop("body")), **fields}


@dataclass(frozen=True, slots=True)
class CloseReply:
    """What the close script says: `ok` with the asker's notice's seq (0: no notice queued),
    or why not (`missing`, `forbidden`, or the state the ask was already in)."""
    status: str
    seq: int


def parse_close(reply: object) -> CloseReply:
    status, seq = replies.status_and(reply)
    return CloseReply(status, int(seq) if status == "ok" and isinstance(seq, int | bytes | str) else 0)


@maps_store_errors
class AskStore:
    def __init__(self, client: StoreClient):
        self.client = client

    @staticmethod
    def create_cmds(record: dict[str, str], retention_s: int) -> list[Command]:
        """The ask hash holds what never changes as one JSON `body`, beside the fields the close
        script reads and writes (`state`, `recipient`, later `closed_at` and `result`)."""
        asker, cid, recipient = record["asker"], record["correlation_id"], record["recipient"]
        created, deadline = record["created_at"], record["deadline"]
        body = orjson.dumps({k: v for k, v in record.items() if k != "state"})
        return [("EVALSHA", scripts.SHA["CREATE_ASK"], 3, keys.ask(asker, cid), keys.asks_outbound(asker),
                 keys.deadlines(asker), int(deadline) + retention_s * 1000, cid, created, deadline,
                 "body", body, "state", record["state"], "recipient", recipient)]

    @staticmethod
    def group_cmds(group_id: str, asker: str, cids: list[str], retention_s: int) -> list[Command]:
        return [("SET", keys.ask_group(group_id), orjson.dumps({"asker": asker, "children": cids}), "EX", retention_s)]

    @staticmethod
    def close_cmd(asker: str, cid: str, *, state: str, closed_at: int, result: dict, closer: str,
                  notice_id: str = "", notice: bytes = b"", notice_expires_at: int = 0, notice_kind: str = "",
                  mesh_node: str = "", by: str = "") -> Command:
        """`mesh_node`: this node's name when the store is shared (the asker's node is woken
        for the notice), '' when alone. `by`: the closing process (node/instance)."""
        return ("EVALSHA", scripts.SHA["CLOSE_ASK"], 6, keys.ask(asker, cid), keys.peer(asker), keys.inbox(asker),
                keys.asks_outbound(asker), keys.deadlines(asker), keys.asks_closing(asker), state, closed_at,
                orjson.dumps(result), closer, notice_id, notice, notice_expires_at, cid, notice_kind, mesh_node, asker,
                by)

    @staticmethod
    def closed_cmd(asker: str, cid: str, by: str) -> Command:
        """The close's final trace stage is written (in the same batch as this)."""
        return ("ZREM", keys.asks_closing(asker), f"{cid}|{by}")

    async def closings(self, askers: list[str]) -> list[tuple[str, str, str]]:
        """(asker, correlation id, closing process) of closes whose final stage may be missing."""
        pipe = self.client.pipeline(transaction=False)
        for asker in askers:
            pipe.zrange(keys.asks_closing(asker), 0, -1)
        rows = await pipe.execute()
        found = []
        for asker, members in zip(askers, rows):
            for member in members:
                cid, _, by = as_text(member).partition("|")
                found.append((asker, cid, by))
        return found

    @staticmethod
    def unindex_cmd(recipient: str, cid: str) -> Command:
        """After a close: the recipient's inbound index (the asker's side is done by the close)."""
        return ("ZREM", keys.asks_inbound(recipient), cid)

    async def owner(self, cid: str) -> str | None:
        """Who asked: the first stage of the ask's trace names the asker."""
        first = await self.client.lindex(keys.trace(cid), 0)
        return orjson.loads(first).get("from_peer") if first else None

    async def read(self, cid: str, asker: str | None = None) -> dict | None:
        asker = asker or await self.owner(cid)
        if asker is None:
            return None
        raw = await self.client.hgetall(keys.ask(asker, cid))
        return _record(raw) if raw else None

    async def read_many(self, cids: list[str]) -> list[dict]:
        if not cids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for cid in cids:
            pipe.lindex(keys.trace(cid), 0)
        owners = [orjson.loads(first).get("from_peer") if first else None for first in await pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for cid, owner in zip(cids, owners):
            pipe.hgetall(keys.ask(replies.text_or_none(owner) or "-", cid))
        rows = await pipe.execute()
        return [_record(row) for row in rows if row]

    async def states(self, asks: list[tuple[str, str]]) -> list[str | None]:
        """The state of each (asker, correlation id), None when the store no longer has it."""
        pipe = self.client.pipeline(transaction=False)
        for asker, cid in asks:
            pipe.hget(keys.ask(asker, cid), "state")
        return [as_text(state) if state else None for state in await pipe.execute()]

    async def inbound_counts(self, peer_ids: list[str]) -> dict[str, int]:
        """How many open asks wait on each peer's reply (the inbound index, every node's asks)."""
        pipe = self.client.pipeline(transaction=False)
        for peer_id in peer_ids:
            pipe.zcard(keys.asks_inbound(peer_id))
        return dict(zip(peer_ids, (int(n) for n in await pipe.execute())))

    async def open_deadlines(self, askers: list[str]) -> list[tuple[str, int]]:
        """(correlation id, deadline) of every open ask of these askers."""
        pipe = self.client.pipeline(transaction=False)
        for asker in askers:
            pipe.zrange(keys.deadlines(asker), 0, -1, withscores=True)
        rows = [row for per_asker in await pipe.execute() for row in per_asker]
        return [(as_text(cid), int(score)) for cid, score in rows]

    async def pending_ids(self, peer_id: str, direction: str, offset: int, limit: int) -> tuple[list[str], int]:
        """Open asks of a peer, oldest first; direction inbound or outbound. Returns (ids, total)."""
        key = keys.asks_inbound(peer_id) if direction == "inbound" else keys.asks_outbound(peer_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(key, offset, offset + limit - 1)
        pipe.zcard(key)
        ids, total = await pipe.execute()
        return [as_text(i) for i in ids], int(total)

    async def group(self, group_id: str) -> dict | None:
        raw = await self.client.get(keys.ask_group(group_id))
        return orjson.loads(raw) if raw else None
