"""Attachments in the store: metadata, the per-peer and hub totals, who may download, which
messages still carry each one, and the directory of hub nodes (where a file can be fetched).

The bytes are not here: they are files on the disk of the node that took the upload. Writes
that must hold together (commit against the totals, remove, grant) are one script each on the
`{attachments}` slot; grants are commands for the group-commit writer, so they ride in the same
pipeline as the message that carries the attachment.
"""

from __future__ import annotations

import orjson

from hub.core.ids import new_token
from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.state import as_text
from hub.store.writer import Command

INBOX_PAGE = 500   # inbox entries one look at an inbox reads (about 1 ms of the store's time)



@maps_store_errors
class AttachmentStore:
    def __init__(self, client: StoreClient, node: str):
        self.client = client
        self.node = node
        # a read through the read client: loaded again when a server forgot it (a restarted
        # store, or a replica promoted in a cluster)
        self._inbox_holds = client.register_script(scripts.INBOX_HOLDS)

    # ---- uploads and removal ---------------------------------------------------------------

    async def used(self, uploader: str) -> tuple[int, int]:
        """Bytes stored by `uploader`, and by everyone."""
        peer, total = await self.client.hmget(keys.ATTACHMENTS_USED, uploader, "*")
        return int(peer or 0), int(total or 0)

    async def commit(self, meta: dict, peer_limit: int, hub_limit: int) -> str:
        """'ok', or the total ('peer' / 'hub') the upload would pass."""
        result = await self.client.evalsha(
            scripts.SHA["COMMIT_ATTACHMENT"], 4, keys.ATTACHMENTS, keys.ATTACHMENTS_USED, keys.ATTACHMENTS_EXPIRY,
            keys.attachments_of_node(self.node), meta["id"], orjson.dumps(meta), meta["uploader"], meta["size"],
            peer_limit, hub_limit, meta["expires_at"])
        return as_text(result)

    async def delete(self, attachment_id: str) -> bool:
        removed = await self.client.evalsha(
            scripts.SHA["DELETE_ATTACHMENT"], 6, keys.ATTACHMENTS, keys.ATTACHMENTS_USED, keys.ATTACHMENTS_EXPIRY,
            keys.attachments_of_node(self.node), keys.attachment_readers(attachment_id),
            keys.attachment_refs(attachment_id), attachment_id)
        return bool(removed)

    # ---- metadata and access -----------------------------------------------------------------

    async def read(self, attachment_id: str) -> dict | None:
        raw = await self.client.hget(keys.ATTACHMENTS, attachment_id)
        return orjson.loads(raw) if raw else None

    async def read_many(self, attachment_ids: list[str]) -> list[dict | None]:
        if not attachment_ids:
            return []
        rows = await self.client.hmget(keys.ATTACHMENTS, attachment_ids)
        return [orjson.loads(raw) if raw else None for raw in rows]

    async def is_reader(self, attachment_id: str, peer_id: str) -> bool:
        return bool(await self.client.sismember(keys.attachment_readers(attachment_id), peer_id))

    @staticmethod
    def grant_cmd(attachment_id: str, readers: list[str], refs: list[str]) -> Command:
        return ("EVALSHA", scripts.SHA["GRANT_ATTACHMENT"], 3, keys.ATTACHMENTS, keys.attachment_readers(attachment_id),
                keys.attachment_refs(attachment_id), attachment_id, len(readers), *readers, *refs)

    # ---- retention ---------------------------------------------------------------------------

    async def expired(self, now_ms: int, count: int = 100) -> list[str]:
        rows = await self.client.zrangebyscore(keys.ATTACHMENTS_EXPIRY, "-inf", now_ms, start=0, num=count)
        return replies.texts(rows)

    async def postpone(self, attachment_id: str, until_ms: int) -> None:
        await self.client.zadd(keys.ATTACHMENTS_EXPIRY, {attachment_id: until_ms}, xx=True)

    async def refs(self, attachment_id: str) -> list[str]:
        return [as_text(r) for r in await self.client.smembers(keys.attachment_refs(attachment_id))]

    async def inbox_holds(self, peer_id: str, message_id: str) -> bool:
        """Whether a delivery of `message_id` still waits in the peer's inbox; looked for a page
        at a time (each page one short script), so a long inbox never holds the store."""
        after = 0
        while True:
            found, after = await self._inbox_holds(keys=[keys.inbox(peer_id)], args=[message_id, after, INBOX_PAGE])
            if found or not after:
                return bool(found)

    async def ask_state(self, asker_id: str, correlation_id: str) -> str | None:
        state = await self.client.hget(keys.ask(asker_id, correlation_id), "state")
        return as_text(state) if state is not None else None

    async def node_ids(self) -> set[str]:
        return {as_text(r) for r in await self.client.smembers(keys.attachments_of_node(self.node))}


    # ---- nodes -------------------------------------------------------------------------------

    async def announce(self, url: str, pid: int, started_at: int) -> str:
        """Say where this node answers; returns the mesh key (made by the first node)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(keys.NODES, self.node, orjson.dumps({"url": url, "pid": pid, "started_at": started_at}))
        pipe.hsetnx(keys.MESH, "key", new_token())
        pipe.hget(keys.MESH, "key")
        *_, key = await pipe.execute()
        return as_text(key)

    async def node_url(self, node: str) -> str | None:
        raw = await self.client.hget(keys.NODES, node)
        return orjson.loads(raw)["url"] if raw else None
