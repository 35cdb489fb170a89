"""Group commit: every store write of a loop turn goes out in one pipeline.

Callers `submit` a batch of commands and may await its results; a single task sends whatever
accumulated while the previous pipeline was in flight, so the pipeline grows with load and one
round trip serves many messages. Results come back per batch, in order. A store that fails
fails every batch of that pipeline with `store_unavailable`; nothing is reported as written.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.store import scripts
from hub.store.connect import unavailable

log = logging.getLogger(__name__)

Command = tuple
_Batch = tuple[Sequence[Command], "asyncio.Future[list] | None"]


class GroupCommitWriter:
    def __init__(self, client: redis.Redis, max_commands: int = 2048, timeout_s: float = 5.0):
        self._client = client
        self._timeout_s = timeout_s
        self._max_commands = max_commands
        self._pending: list[_Batch] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="store-writer")

    async def close(self) -> None:
        """Flush what was submitted, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def submit(self, commands: Sequence[Command], *, wait: bool = True) -> "asyncio.Future[list] | None":
        if self._closed:
            raise unavailable(RuntimeError("writer closed"))
        future = asyncio.get_running_loop().create_future() if wait else None
        self._pending.append((commands, future))
        self._wakeup.set()
        return future

    async def write(self, *commands: Command) -> list:
        return await self.submit(commands)  # type: ignore[misc]

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                taken, size = 0, 0
                for commands, _ in self._pending:
                    taken += 1
                    size += len(commands)
                    if size >= self._max_commands:
                        break
                batches, self._pending = self._pending[:taken], self._pending[taken:]
                await self._flush(batches)
            if self._closed and not self._pending:
                return

    async def _flush(self, batches: list[_Batch]) -> None:
        flat = [cmd for commands, _ in batches for cmd in commands]
        try:
            async with asyncio.timeout(self._timeout_s):
                results = await self._execute(flat)
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            log.warning("store write of %d commands failed: %s", len(flat), exc)
            error = unavailable(exc)
            for _, future in batches:
                if future is not None and not future.done():
                    future.set_exception(error)
            return
        offset = 0
        for commands, future in batches:
            part = results[offset:offset + len(commands)]
            offset += len(commands)
            if future is not None and not future.done():
                future.set_result(part)
            elif future is None:
                for item in part:
                    if isinstance(item, Exception):
                        log.warning("background store write failed: %s", item)

    async def _execute(self, flat: list[Command]) -> list:
        pipe = self._client.pipeline(transaction=False)
        for cmd in flat:
            pipe.execute_command(*cmd)
        results = await pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)
                   or (isinstance(r, ResponseError) and str(r).startswith("NOSCRIPT"))]
        if missing:  # the store restarted and forgot our scripts: load them and redo those commands
            await load_scripts(self._client)
            pipe = self._client.pipeline(transaction=False)
            for i in missing:
                pipe.execute_command(*flat[i])
            for i, r in zip(missing, await pipe.execute(raise_on_error=False)):
                results[i] = r
        return results


async def load_scripts(client: redis.Redis) -> None:
    for name, body in scripts.ALL.items():
        sha = await client.script_load(body)
        sha = sha.decode() if isinstance(sha, bytes) else sha
        if sha != scripts.SHA[name]:
            raise RuntimeError(f"store computed a different SHA for script {name}")
