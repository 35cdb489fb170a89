"""Operations run once per idempotency key: a retry with the same content gets the first result
(`replayed: true`), one with other content is `conflict`, and a key whose process died before
writing anything is taken over. The claim and the result live in the store, so this holds
across restarts and across the nodes of a mesh."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import orjson

from hub.core.errors import HubError
from hub.store.state import StoreState
from hub.store.writer import Command
from schemas.codec import decode_as
from schemas.errors import ErrorCode
from schemas.rest import AskAccepted, Closed, MessageAccepted

# What an operation with an idempotency key returns, kept to answer its retries.
Replayable = MessageAccepted | AskAccepted | Closed
R = TypeVar("R", MessageAccepted, AskAccepted, Closed)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An idempotency key this process claimed: an operation that writes a message puts its
    result (`provisional`) in the message's own batch, so that a retry after a crash finds the
    result of whatever was written, and a claim without a result means nothing was."""
    owner: str
    key: str
    digest: str
    ttl_s: int


class Idempotency:
    def __init__(self, store: StoreState, ttl_s: int, process_ref: str,
                 process_gone: Callable[[str], Awaitable[bool]]):
        self.store = store
        self.ttl_s = ttl_s
        self.process_ref = process_ref      # `node/instance`: who holds a claim
        self.process_gone = process_gone    # whether the process that holds a claim is gone
        self._running: set[tuple[str, str]] = set()   # keys this process is running now

    async def run(self, owner: str, key: str | None, fingerprint: list[Any],
                  operation: Callable[[Claimed | None], Awaitable[R]], result_type: type[R]) -> R:
        """Run `operation` once per (owner, key); without a key, just run it."""
        if key is None:
            return await operation(None)
        digest = hashlib.sha256(orjson.dumps(fingerprint)).hexdigest()
        store, ttl, by = self.store, self.ttl_s, self.process_ref
        (claimed,) = await store.writer.write(store.idempotency_claim_cmd(owner, key, digest, ttl, by))
        if not claimed:
            replayed = await self._replay(owner, key, digest, result_type)
            if replayed is not None:
                return replayed
            await store.writer.write(store.idempotency_claim_cmd(owner, key, digest, ttl, by, take_over=True))
        self._running.add((owner, key))
        try:
            result = await operation(Claimed(owner, key, digest, ttl))
        except HubError:
            store.writer.submit([store.idempotency_release_cmd(owner, key)], wait=False)
            raise
        finally:
            self._running.discard((owner, key))
        store.writer.submit([store.idempotency_result_cmd(owner, key, digest, result, ttl)], wait=False)
        return result

    async def _replay(self, owner: str, key: str, digest: str, result_type: type[R]) -> R | None:
        """The first result; None when the claim was left by a process that died before it
        wrote its message (the caller takes the claim over and runs the operation)."""
        record = await self.store.idempotency_get(owner, key)
        if record is None or record.digest != digest:
            raise HubError(ErrorCode.CONFLICT, f"idempotency key {key!r} was used with a different message",
                           {"idempotency_key": key})
        if len(record.result):
            return msgspec.structs.replace(decode_as(record.result, result_type), replayed=True)
        if await self.process_gone(record.by) or (record.by == self.process_ref and (owner, key) not in self._running):
            return None   # its process died, or failed here without releasing it (the store was away)
        raise HubError(ErrorCode.CONFLICT, f"a message with idempotency key {key!r} is still being written",
                       {"idempotency_key": key, "retry": True})

    def provisional_cmd(self, claimed: Claimed | None, result: Replayable) -> list[Command]:
        """The result written with the message itself (`state` as queued): what a retry after a
        crash gets; the exact result replaces it once the write is answered."""
        if claimed is None:
            return []
        return [self.store.idempotency_result_cmd(claimed.owner, claimed.key, claimed.digest, result, claimed.ttl_s)]
