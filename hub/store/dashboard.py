"""The dashboard's state in the store: one-time sign-in links, browser sessions, and reads of
the hub's event stream (`rw:events`), which every node appends to and every node tails.

Links and sessions are kept by the digest of their secret, with the store's own expiry, so any
node of a mesh honours a link another node printed, and a session outlives a hub restart.
A link is taken with GETDEL: it works once, on whichever node sees it first.
"""

from __future__ import annotations

from redis.exceptions import ResponseError

from hub.core.ids import token_digest
from hub.store import keys, replies
from hub.store.connect import StoreClient, maps_store_errors, publish_verb
from hub.store.state import as_text, bus_message

StreamEntry = tuple[str, str, bytes]   # (stream id, kind, JSON data)


def _entries(rows: list[tuple[str, dict[bytes, bytes]]]) -> list[StreamEntry]:
    return [(entry_id, replies.text(fields[b"k"]), fields[b"d"]) for entry_id, fields in rows]


@maps_store_errors
class DashboardStore:
    def __init__(self, client: StoreClient, tail_client: StoreClient, mesh_node: str = ""):
        self.client = client
        self.tail_client = tail_client   # no per-reply deadline: it holds blocking reads
        self.mesh_node = mesh_node       # set when other nodes share the store: they hear of sign-outs

    # ---- sign-in -----------------------------------------------------------------------------

    async def save_link(self, code: str, ttl_s: int) -> None:
        await self._save(keys.dashboard_link(token_digest(code)), ttl_s)

    async def take_link(self, code: str) -> bool:
        """True once per link, and only before it expires."""
        return await self.client.getdel(keys.dashboard_link(token_digest(code))) is not None

    async def save_session(self, secret: str, page_key: str, ttl_s: int) -> None:
        """A browser session: its cookie's secret names it, and it keeps the digest of the key
        only the signed-in page holds (both digests; neither secret is stored)."""
        await self._save(keys.dashboard_session(token_digest(secret)), ttl_s, token_digest(page_key).encode())

    async def _save(self, key: str, ttl_s: int, value: bytes = b"1") -> None:
        await self.client.set(key, value, ex=ttl_s)

    async def session_record(self, secret: str) -> tuple[str, int]:
        """(the digest of the session's page key, the ms it has left); ("", 0) when it is unknown or over."""
        key = keys.dashboard_session(token_digest(secret))
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        value, left = await pipe.execute()
        if value is None or int(left) <= 0:
            return "", 0
        return as_text(value), int(left)

    async def drop_session(self, secret: str) -> None:
        """End a session; the other nodes are told (by the secret's digest) to forget it too."""
        digest = token_digest(secret)
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(keys.dashboard_session(digest))
        if self.mesh_node:
            pipe.execute_command(publish_verb(self.client), keys.BUS, bus_message("signout", self.mesh_node, digest))
        await pipe.execute()

    # ---- the event stream --------------------------------------------------------------------

    async def events_after(self, cursor: str, count: int) -> list[StreamEntry]:
        """Up to `count` events after `cursor` (exclusive), oldest first."""
        rows = await self.client.xrange(keys.EVENTS, min=f"({cursor}", max="+", count=count)
        return _entries(replies.stream_entries(rows))

    async def last_events(self, count: int) -> list[StreamEntry]:
        """The newest `count` events, oldest first."""
        rows = await self.client.xrevrange(keys.EVENTS, max="+", min="-", count=count)
        return _entries(replies.stream_entries(rows)[::-1])

    async def bounds(self) -> tuple[str | None, str]:
        """(the oldest event's id or None when the stream is empty, the last id ever added)."""
        try:
            first = await self.client.xrange(keys.EVENTS, min="-", max="+", count=1)
            info = await self.client.xinfo_stream(keys.EVENTS)
        except ResponseError:  # no stream yet
            return None, "0-0"
        entries = replies.stream_entries(first)
        return (entries[0][0] if entries else None), replies.text(info["last-generated-id"])

    async def wait_for_events(self, cursor: str, count: int, block_ms: int) -> list[StreamEntry]:
        """Events after `cursor`, waiting up to `block_ms` for the first one."""
        reply = await self.tail_client.xread({keys.EVENTS: cursor}, count=count, block=block_ms)
        return _entries(replies.xread_entries(reply, keys.EVENTS))
