"""The attachment service: uploads streamed to this node's disk, the references messages carry,
who may download, and retention.

Files live in `<home>/attachments/<node>/`, each under the id the hub minted (`<id>.part`
while it arrives). An upload is counted as it streams and stopped at the first byte over the
tightest limit; it is renamed into place, then committed to the store against the totals.
Every way this can stop halfway leaves something the sweep recognises: a `.part` file that no
upload is writing, a file without metadata, or metadata without a file. The sweep also removes
expired attachments that no pending message carries (metadata first, then the file). File work
runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from hub.core.attachments import (
    AttachmentPolicy,
    BytesInFlight,
    Room,
    clean_content_type,
    clean_filename,
    not_found,
    over_limit,
    parse_ref,
    quota_error,
    upload_room,
)
from hub.core.errors import HubError
from hub.core.ids import is_hex128, new_peer_id
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.runtime.periodic import every
from hub.store.attachments import AttachmentStore
from schemas.errors import ErrorCode
from schemas.rest import AttachmentCreated

log = logging.getLogger(__name__)

FLUSH_BYTES = 256 * 1024    # an upload holds at most this much in memory before writing it out
PART_SUFFIX = ".part"
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Located:
    """Where a download comes from: `path` on this node's disk, or `url` of the node that has it."""
    meta: dict
    path: Path | None = None
    url: str | None = None


def brief(meta: dict) -> dict:
    """What a delivery carries about an attachment."""
    return {key: meta[key] for key in ("id", "filename", "size", "content_type", "sha256")}


class _PartFile:
    """The file an upload is written to, with its running hash; used from worker threads."""

    def __init__(self, path: Path):
        self.path = path
        self.digest = hashlib.sha256()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def finish(self, final: Path) -> str:
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = -1
        os.replace(self.path, final)
        return self.digest.hexdigest()

    def discard(self, final: Path) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for path in (self.path, final):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class Upload:
    """One upload in progress: `write` the file's bytes as they arrive, then `commit`."""

    def __init__(self, service: AttachmentService, uploader: Sender, attachment_id: str, room: Room,
                 part: _PartFile, used: tuple[int, int]):
        self.service = service
        self.uploader = uploader
        self.id = attachment_id
        self.room = room
        self.part = part
        self.size = 0
        self.used = used            # (the uploader's, the hub's) stored bytes when the upload began
        self.taken = 0              # bytes it holds in the node's BytesInFlight
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.room.limit:
            raise over_limit(self.room, self.service.policy, self.size)
        policy = self.service.policy
        passed = self.service.in_flight.take(self.uploader.key_owner, len(data), policy.max_peer_bytes - self.used[0],
                                             policy.max_hub_bytes - self.used[1])
        if passed is not None:
            raise quota_error(passed, policy)
        self.taken += len(data)
        self._buffer += data
        if len(self._buffer) >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            data, self._buffer = bytes(self._buffer), bytearray()
            await anyio.to_thread.run_sync(self.part.write, data)

    async def commit(self, filename: str, content_type: str | None) -> AttachmentCreated:
        service = self.service
        await self._flush()
        final = service.folder / self.id
        sha256 = await anyio.to_thread.run_sync(self.part.finish, final)
        now = service.hub.now_ms()
        meta: dict[str, Any] = {"id": self.id, "filename": clean_filename(filename), "size": self.size,
                "content_type": clean_content_type(content_type), "sha256": sha256,
                "uploader": self.uploader.key_owner, "uploader_name": self.uploader.ref["name"],
                "node": service.hub.node, "created_at": now, "expires_at": now + service.policy.ttl_s * 1000}
        verdict = await service.store.commit(meta, service.policy.max_peer_bytes, service.policy.max_hub_bytes)
        if verdict != "ok":
            raise quota_error(verdict, service.policy)
        return AttachmentCreated(id=self.id, filename=meta["filename"], size=self.size,
                                 content_type=meta["content_type"], sha256=sha256, expires_at=meta["expires_at"])


class AttachmentService:
    def __init__(self, hub: Hub, store: AttachmentStore, policy: AttachmentPolicy, folder: Path, *, url: str):
        self.hub = hub
        self.store = store
        self.policy = policy
        self.folder = folder
        self.url = url                      # where the other nodes reach this one
        self.mesh_key = ""                  # what they show it (and it shows them)
        self._active: set[str] = set()      # ids of uploads in progress on this node
        self.in_flight = BytesInFlight()    # their bytes, so that parallel uploads share one quota
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        await anyio.to_thread.run_sync(lambda: self.folder.mkdir(mode=0o700, parents=True, exist_ok=True))
        self.mesh_key = await self.store.announce(self.url, os.getpid(), self.hub.now_ms())
        await self.sweep()
        self._sweeper = asyncio.create_task(every(self.policy.sweep_interval_s, self.sweep, "attachment sweep"),
                                            name="attachment-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    # ---- uploads -----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def upload(self, uploader: Sender) -> AsyncIterator[Upload]:
        """An upload to write into; whatever stops it before `commit` returns leaves no file."""
        peer_used, hub_used = await self.store.used(uploader.key_owner)
        room = upload_room(self.policy, peer_used, hub_used)
        attachment_id = new_peer_id()
        self._active.add(attachment_id)
        part = None
        upload: Upload | None = None
        committed = False
        try:
            part = await anyio.to_thread.run_sync(_PartFile, self.folder / (attachment_id + PART_SUFFIX))
            upload = Upload(self, uploader, attachment_id, room, part, (peer_used, hub_used))
            yield upload
            committed = True
        finally:
            if upload is not None:
                self.in_flight.give_back(uploader.key_owner, upload.taken)
            if part is not None and not committed:
                await anyio.to_thread.run_sync(part.discard, self.folder / attachment_id)
            self._active.discard(attachment_id)

    # ---- references --------------------------------------------------------------------------

    async def resolve(self, sender: Sender, attachment_ids: list[str]) -> list[dict]:
        """The briefs of attachments a message may carry: each must exist and be the sender's own."""
        unique = list(dict.fromkeys(attachment_ids))
        found = await self.store.read_many(unique)
        for attachment_id, meta in zip(unique, found):
            if meta is None or meta["uploader"] != sender.key_owner:
                raise not_found(attachment_id)
        return [brief(meta) for meta in found if meta is not None]

    # ---- downloads ---------------------------------------------------------------------------

    async def locate(self, reader: Sender, attachment_id: str) -> Located:
        """Where `reader` downloads the attachment from; the uploader, a peer that was sent a
        message carrying it, and people may."""
        meta = await self.store.read(attachment_id) if is_hex128(attachment_id) else None
        if meta is None:
            raise not_found(attachment_id)
        if not (reader.is_person or meta["uploader"] == reader.key_owner
                or await self.store.is_reader(attachment_id, reader.key_owner)):
            raise HubError(ErrorCode.FORBIDDEN, "only the uploader, peers sent a message carrying this attachment, "
                           "and people may download it", {"id": attachment_id})
        if meta["node"] == self.hub.node:
            return Located(meta, path=await self.local_path(meta))
        url = await self.store.node_url(meta["node"])
        if url is None:
            raise node_unreachable(meta)
        return Located(meta, url=f"{url.rstrip('/')}/internal/attachments/{attachment_id}")

    async def local_path(self, meta: dict) -> Path:
        """This node's file of an attachment; one whose file is gone is removed (it cannot be had)."""
        path = self.folder / meta["id"]
        if not await anyio.to_thread.run_sync(path.is_file):
            log.warning("attachment %s has no file on this node; removing its metadata", meta["id"])
            await self.store.delete(meta["id"])
            raise not_found(meta["id"])
        return path

    async def local_meta(self, attachment_id: str) -> dict:
        """For another node: the metadata of an attachment whose file is here."""
        meta = await self.store.read(attachment_id) if is_hex128(attachment_id) else None
        if meta is None or meta["node"] != self.hub.node:
            raise not_found(attachment_id)
        return meta

    # ---- retention ---------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Remove this node's expired attachments that no pending message carries, and every
        stray file or metadata an interrupted upload or removal left; returns how many went."""
        removed = 0
        now = self.hub.now_ms()
        expired = await self.store.expired(now, SWEEP_BATCH)
        for attachment_id, meta in zip(expired, await self.store.read_many(expired)):
            if meta is not None and meta["node"] != self.hub.node:
                continue  # its own node removes it, file and all
            if meta is not None and await self._carried(attachment_id):
                # kept while carried, and for a TTL (at least a sweep) after: the recipient of a
                # message that waited past the TTL still has time to download what it carries
                keep_s = max(self.policy.sweep_interval_s, self.policy.ttl_s)
                await self.store.postpone(attachment_id, now + int(keep_s * 1000))
                continue
            await self._remove(attachment_id)
            removed += 1
        return removed + await self._tidy()

    async def _carried(self, attachment_id: str) -> bool:
        """Whether a message carrying the attachment is still pending: an open ask, or a
        delivery still waiting in an inbox."""
        for ref in await self.store.refs(attachment_id):
            parsed = parse_ref(ref)
            if parsed is None:
                continue
            kind, owner, item = parsed
            if kind == "ask" and await self.store.ask_state(owner, item) == "pending":
                return True
            if kind == "inbox" and await self.store.inbox_holds(owner, item):
                return True
        return False

    async def _remove(self, attachment_id: str) -> None:
        await self.store.delete(attachment_id)   # metadata first: a file without it is found below
        await anyio.to_thread.run_sync(_unlink, self.folder / attachment_id)

    async def _tidy(self) -> int:
        """Files no upload is writing and no metadata names go; metadata whose file is gone goes."""
        names = await anyio.to_thread.run_sync(_listing, self.folder)
        active = set(self._active)
        parts = [n for n in names if n.endswith(PART_SUFFIX) and n[:-len(PART_SUFFIX)] not in active]
        files = [n for n in names if is_hex128(n) and n not in active]
        metas = await self.store.read_many(files)
        strays = parts + [name for name, meta in zip(files, metas) if meta is None]
        owned = await self.store.node_ids()
        lost = [i for i in owned - set(files) if i not in self._active]
        # an upload may have committed since the listing: only what is still not there is lost
        lost = [i for i in lost if not await anyio.to_thread.run_sync((self.folder / i).is_file)]
        for name in strays:
            log.info("removing stray attachment file %s", name)
            await anyio.to_thread.run_sync(_unlink, self.folder / name)
        for attachment_id in lost:
            log.warning("attachment %s lost its file; removing its metadata", attachment_id)
            await self.store.delete(attachment_id)
        return len(strays) + len(lost)


def node_unreachable(meta: dict) -> HubError:
    return HubError(ErrorCode.ATTACHMENT_UNAVAILABLE,
                    f"attachment {meta['id']} is on hub node {meta['node']}, which cannot be reached now",
                    {"id": meta["id"], "node": meta["node"]})


def _listing(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
