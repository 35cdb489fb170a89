"""What the hub's store is, and how the hub speaks to it: one server, or a cluster.

`--redis-url` names any one server; `hub.store.connect.probe` asks it whether it is part of
a cluster, and the hub then opens its clients, its writer and its subscriptions the way that store needs:

- one server: `redis.Redis` clients, one group-commit writer, PUBLISH/SUBSCRIBE;
- a cluster (Redis Cluster or Valkey cluster): redis-py's cluster client for reads and short
  commands (it follows MOVED/ASK and refreshes the slot map), one group-commit writer per
  primary (`ClusterWriter`), and sharded pub/sub (SPUBLISH/SSUBSCRIBE on each channel's
  shard), so a message is not broadcast to every server of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster

from hub.store.cluster_writer import ClusterWriter
from hub.store.connect import StoreClient, open_client, open_node_client
from hub.store.writer import GroupCommitWriter, Writer

log = logging.getLogger(__name__)

OnMessage = Callable[[bytes, bytes], None]   # (channel, data)


@dataclass(frozen=True, slots=True)
class StoreLink:
    url: str
    cluster: bool = False
    replica_acks: int = 0   # accepted only once this many replicas have a write (WAIT); 0: the primary's word

    def open_client(self, *, per_reply_timeout: bool = True) -> StoreClient:
        """A client for reads and short commands; without per-reply deadlines for listening."""
        if not self.cluster:
            return open_client(self.url, per_reply_timeout=per_reply_timeout)
        return RedisCluster.from_url(self.url, socket_timeout=5 if per_reply_timeout else None,
                                     socket_connect_timeout=5, decode_responses=False,
                                     health_check_interval=0, max_connections=64)

    async def open_writer(self) -> Writer:
        """The group-commit writer, started; close it with `close()`."""
        writer: Writer
        if self.cluster:
            cluster = self.open_client(per_reply_timeout=False)
            assert isinstance(cluster, RedisCluster)
            await cluster.initialize()
            writer = ClusterWriter(cluster, replica_acks=self.replica_acks)
        else:
            writer = GroupCommitWriter(open_client(self.url, per_reply_timeout=False), replica_acks=self.replica_acks,
                                       owns_client=True)
        writer.start()
        return writer

    def listener(self) -> Listener:
        """A store connection for hearing channels (no reply deadlines); close it with `aclose()`."""
        return Listener(self, self.open_client(per_reply_timeout=False))


@dataclass(frozen=True, slots=True)
class Listener:
    """Hears channels on the store: SUBSCRIBE on one server, SSUBSCRIBE on each channel's shard of
    a cluster. Its client also serves blocking reads (the dashboard's tail of the event stream)."""
    link: StoreLink
    client: StoreClient

    async def aclose(self) -> None:
        await self.client.aclose()

    async def listen(self, channels: list[str], on_message: OnMessage, on_subscribed: Callable[[], None]) -> None:
        """Hand every message on `channels` to `on_message`, after `on_subscribed` (the caller's
        catch-up from the store); returns or raises when a subscription ends (a connection lost,
        a slot moved to another shard): the caller listens again and catches up again."""
        if isinstance(self.client, RedisCluster):
            await _listen_sharded(self.client, channels, on_message, on_subscribed)
            return
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            on_subscribed()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    on_message(message["channel"], message["data"])
        finally:
            await pubsub.aclose()


async def _listen_sharded(cluster: RedisCluster, channels: list[str], on_message: OnMessage,
                          on_subscribed: Callable[[], None]) -> None:
    """SSUBSCRIBE each channel on the primary serving its slot (read from a fresh slot map), one
    connection per primary; ends when any of them ends."""
    await cluster.nodes_manager.initialize()
    by_node: dict[str, tuple[ClusterNode, list[str]]] = {}
    for channel in channels:
        node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(channel))
        by_node.setdefault(node.name, (node, []))[1].append(channel)
    async with contextlib.AsyncExitStack() as stack:
        pubsubs = []
        for node, node_channels in by_node.values():
            client = open_node_client(cluster, node)
            stack.push_async_callback(client.aclose)
            pubsub = client.pubsub()   # subscription messages too: a server-side sunsubscribe says a slot moved
            stack.push_async_callback(pubsub.aclose)
            for channel in node_channels:   # one SSUBSCRIBE per channel: each is in a slot of its own
                await pubsub.ssubscribe(channel)
            pubsubs.append(pubsub)
        on_subscribed()
        tasks = [asyncio.create_task(_pump(pubsub, on_message)) for pubsub in pubsubs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()   # raises what ended it


async def _pump(pubsub: PubSub, on_message: OnMessage) -> None:
    async for message in pubsub.listen():
        kind = message.get("type")
        if kind == "smessage":
            on_message(message["channel"], message["data"])
        elif kind == "sunsubscribe":   # we never unsubscribe: the server dropped us, the channel's slot moved
            log.info("sharded channel %r moved to another shard; subscribing again", message.get("channel"))
            return
