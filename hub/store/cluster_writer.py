"""Group commit on a cluster: every command goes to the primary that serves its slot, through
that primary's own GroupCommitWriter, so each primary gets one packet per loop turn.

- Routing: the slot of a command's first key (EVALSHA: the first of its keys). A PUBLISH is
  sent as SPUBLISH to its channel's shard (sharded pub/sub: not broadcast to every server),
  and only once the rest of its batch is answered: on one server a notice follows the write it
  announces in the same packet, but two shards apply their parts in any order, and a node that
  hears "peer changed" must find the change when it reads.
- The three scripts that publish (ENQUEUE, CLOSE_ASK, SET_PRESENCE) run their cluster
  variants, which return what to publish instead of publishing across slots; the writer sends
  that SPUBLISH and answers the caller exactly as the plain script would have
  (hub.store.scripts._publish_then).
- Redirections: on MOVED the slot map is read again and the command sent to the slot's new
  primary; on ASK (a slot being migrated) it is sent once to the named node after ASKING.
- A primary that fails fails its batches with `store_unavailable`, as one server would, and the
  slot map is read again, so the next writes go to the replica promoted in its place.

A batch whose commands live on several primaries is applied on each of them on its own: a
cluster has no atomicity across slots (each script is still atomic on its slot), and the
batch's future fails if any part failed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, overload

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, MovedError, RedisClusterException

from hub.core.errors import HubError
from hub.store import scripts
from hub.store.connect import open_node_client, unavailable
from hub.store.writer import Command, GroupCommitWriter

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_PUBLISH_REPLY = b"publish"


def _key_bytes(key: Any) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode()


class ClusterWriter:
    def __init__(self, cluster: RedisCluster, *, replica_acks: int = 0):
        self._cluster = cluster                 # its slot map says which primary serves a slot
        self._replica_acks = replica_acks
        self._writers: dict[str, GroupCommitWriter] = {}   # node name -> that primary's writer
        self._retired: set[asyncio.Task] = set()           # writers of former primaries, closing
        self._following_up: set[asyncio.Task] = set()      # batches redirected or publishing
        self._refreshing: asyncio.Task | None = None
        self._closed = False
        self.observe: Callable[[int, float], None] | None = None   # (commands, seconds) per answered packet
        self.failures = 0   # batches that failed (on any primary, or before reaching one)

    def start(self) -> None:
        """Nothing to start: each primary's writer starts with its first batch."""

    async def close(self) -> None:
        """Finish the batches being followed up, flush every primary's writer and wait for its
        replies, then stop."""
        await asyncio.gather(*self._following_up, return_exceptions=True)
        self._closed = True
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)
        writers, self._writers = list(self._writers.values()), {}
        await asyncio.gather(*(writer.close() for writer in writers), *self._retired, return_exceptions=True)
        await self._cluster.aclose()

    # ---- routing -----------------------------------------------------------------------------

    def _route(self, command: Command) -> tuple[ClusterNode, Command, bool]:
        """(the primary serving the command, the command as sent there, whether it is a
        cluster-variant script whose reply may ask for a publish)."""
        verb = command[0]
        publishes = False
        if verb == "EVALSHA":
            variant = scripts.CLUSTER_VARIANT.get(command[1])
            if variant is not None:
                command = ("EVALSHA", variant, *command[2:])
                publishes = True
            key = command[3] if int(command[2]) > 0 else None
        elif verb == "PUBLISH":
            command = ("SPUBLISH", *command[1:])
            key = command[1]
        else:
            key = command[1] if len(command) > 1 else None
        if key is None:
            return self._cluster.get_default_node(), command, publishes
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(_key_bytes(key)))
        return node, command, publishes

    def _writer_for(self, node: ClusterNode) -> GroupCommitWriter:
        writer = self._writers.get(node.name)
        if writer is None:
            writer = GroupCommitWriter(open_node_client(self._cluster, node), replica_acks=self._replica_acks, owns_client=True)
            writer.observe = self._observed
            writer.start()
            self._writers[node.name] = writer
        return writer

    def _observed(self, commands: int, seconds: float) -> None:
        if self.observe is not None:
            self.observe(commands, seconds)

    # ---- submitting --------------------------------------------------------------------------

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[True] = True,
               linger: bool = False) -> asyncio.Future[list[Any]]: ...

    @overload
    def submit(self, commands: Sequence[Command], *, wait: Literal[False], linger: bool = False) -> None: ...

    def submit(self, commands: Sequence[Command], *, wait: bool = True,
               linger: bool = False) -> asyncio.Future[list[Any]] | None:
        """Queue commands on their primaries' next packets: a future for their replies in the
        order given, or (wait=False) a write nobody awaits, whose failure is logged."""
        if self._closed:
            raise unavailable(RuntimeError("writer closed"))
        outer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        try:
            self._dispatch(list(commands), outer, linger=linger)
        except RedisClusterException as exc:   # a slot nobody serves (the map is being mended)
            self._refresh_soon()
            self.failures += 1
            outer.set_exception(unavailable(exc))
        if wait:
            return outer
        outer.add_done_callback(_log_background_failure)
        return None

    async def write(self, *commands: Command) -> list[Any]:
        return await self.submit(commands)

    def _dispatch(self, commands: list[Command], outer: asyncio.Future[list[Any]], *, linger: bool = False) -> None:
        groups: dict[str, tuple[ClusterNode, list[int], list[Command]]] = {}
        sent: list[Command] = []
        publishing: list[int] = []
        alone = len(commands) == 1
        for index, command in enumerate(commands):
            if command[0] == "PUBLISH" and not alone:   # after the rest: see the module's docstring
                sent.append(command)
                publishing.append(index)
                continue
            node, routed, publishes = self._route(command)
            sent.append(routed)
            if publishes:
                publishing.append(index)
            group = groups.setdefault(node.name, (node, [], []))
            group[1].append(index)
            group[2].append(routed)
        assembly = _Assembly(self, sent, publishing, outer, len(groups))
        if not groups:   # only publishes
            assembly.answered()
        for node, indices, routed_commands in groups.values():
            part = self._writer_for(node).submit(routed_commands, linger=linger)
            part.add_done_callback(functools.partial(assembly.part_done, indices))

    # ---- after the replies -------------------------------------------------------------------

    @staticmethod
    def needs_follow_up(sent: list[Command], results: list[Any], publishing: list[int]) -> bool:
        return any(isinstance(r, AskError) for r in results) or any(
            sent[i][0] == "PUBLISH" or (isinstance(results[i], list) and results[i][:1] == [_PUBLISH_REPLY])
            for i in publishing)

    async def follow_up(self, sent: list[Command], results: list[Any], publishing: list[int]) -> list[Any]:
        """Redo what was redirected, then publish: the batch's own PUBLISHes, and what its
        scripts asked to publish (answering as the plain script would have)."""
        for index, result in enumerate(results):
            if isinstance(result, AskError):
                results[index] = await self._redirected(sent[index], result)
        plain = [i for i in publishing if sent[i][0] == "PUBLISH"]
        asked = [i for i in publishing if isinstance(results[i], list) and results[i][:1] == [_PUBLISH_REPLY]]
        heard = await asyncio.gather(*(self.write(sent[i]) for i in plain),
                                     *(self.write(("SPUBLISH", results[i][1], results[i][2])) for i in asked))
        for index, (listeners,) in zip(plain, heard):
            results[index] = listeners
        for index, (listeners,) in zip(asked, heard[len(plain):]):
            _, _, _, reply, unheard = results[index]
            results[index] = reply if isinstance(listeners, int) and listeners > 0 else unheard
        return results

    async def _redirected(self, command: Command, error: AskError) -> Any:
        """The reply of a command the cluster redirected (MOVED: the slot has a new primary; ASK:
        the key is being migrated to the named node)."""
        for _ in range(MAX_REDIRECTS):
            if isinstance(error, MovedError):
                log.info("store cluster: slot %d moved to %s:%s; reading the slot map again",
                         error.slot_id, error.host, error.port)
                await self._refresh()
                (reply,) = await self.write(command)
            else:
                node = self._cluster.get_node(host=error.host, port=error.port) or ClusterNode(
                    error.host, error.port, **self._cluster.connection_kwargs)
                _, reply = await self._writer_for(node).submit([("ASKING",), command])
            if not isinstance(reply, AskError):
                return reply
            error = reply
        raise unavailable(error)

    def _refresh_soon(self) -> None:
        if not self._closed and (self._refreshing is None or self._refreshing.done()):
            self._refreshing = asyncio.create_task(self._refresh(), name="store slot map")

    async def _refresh(self) -> None:
        """Read the slot map again; retire the writers of servers that are no longer primaries."""
        try:
            await self._cluster.nodes_manager.initialize()
        except Exception as exc:   # the map stays as it was; the next failure asks again
            log.warning("store cluster: cannot read the slot map: %s", exc)
            return
        primaries = {node.name for node in self._cluster.get_primaries()}
        for name in [name for name in self._writers if name not in primaries]:
            log.info("store cluster: %s no longer serves slots as a primary", name)
            task = asyncio.create_task(self._writers.pop(name).close(), name=f"retire writer {name}")
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    def keep(self, task: asyncio.Task) -> None:
        self._following_up.add(task)
        task.add_done_callback(self._following_up.discard)

    def failed(self, error: BaseException) -> None:
        """A primary's batch failed: the cluster may have moved on (a failover)."""
        self.failures += 1
        if isinstance(error, HubError):
            self._refresh_soon()


class _Assembly:
    """One submitted batch split over primaries: its replies put back in order."""
    __slots__ = ("error", "left", "outer", "publishing", "results", "sent", "writer")

    def __init__(self, writer: ClusterWriter, sent: list[Command], publishing: list[int],
                 outer: asyncio.Future[list[Any]], parts: int):
        self.writer = writer
        self.sent = sent
        self.publishing = publishing
        self.outer = outer
        self.left = parts
        self.results: list[Any] = [None] * len(sent)
        self.error: BaseException | None = None

    def part_done(self, indices: list[int], part: asyncio.Future[list[Any]]) -> None:
        if part.cancelled():
            self.error = self.error or unavailable(RuntimeError("write cancelled"))
        elif (error := part.exception()) is not None:
            self.error = self.error or error
            self.writer.failed(error)
        else:
            for index, result in zip(indices, part.result()):
                self.results[index] = result
        self.left -= 1
        if not self.left:
            self.answered()

    def answered(self) -> None:
        """Every part is answered: resolve the batch, or follow it up first."""
        if self.outer.done():
            return
        if self.error is not None:
            self.outer.set_exception(self.error)
        elif self.writer.needs_follow_up(self.sent, self.results, self.publishing):
            self.writer.keep(asyncio.create_task(self._follow_up(), name="store follow-up"))
        else:
            self.outer.set_result(self.results)

    async def _follow_up(self) -> None:
        try:
            results = await self.writer.follow_up(self.sent, self.results, self.publishing)
        except Exception as exc:
            if not self.outer.done():
                self.outer.set_exception(exc if isinstance(exc, HubError) else unavailable(exc))
            return
        if not self.outer.done():
            self.outer.set_result(results)


def _log_background_failure(future: asyncio.Future[list[Any]]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("background store write failed: %s", future.exception())
