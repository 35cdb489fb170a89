"""Opening the store and checking that it keeps what it is given."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeAlias, TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.core.errors import HubError
from schemas.errors import ErrorCode

StoreClient: TypeAlias = "redis.Redis | RedisCluster"   # one server, or a cluster (hub.store.link)


def open_node_client(cluster: RedisCluster, node: ClusterNode) -> redis.Redis:
    """A plain client to one server of a cluster (its own writer, its own subscriptions), with
    the cluster client's credentials; no per-reply deadline (a writer bounds whole packets, a
    subscription waits for as long as it lasts)."""
    kwargs = cluster.connection_kwargs
    return redis.Redis(host=node.host, port=int(node.port), username=kwargs.get("username"),
                       password=kwargs.get("password"), socket_timeout=None, socket_connect_timeout=5,
                       health_check_interval=0, decode_responses=False, retry_on_timeout=False)


def publish_verb(client: StoreClient) -> str:
    """PUBLISH on one server; SPUBLISH on a cluster (sharded pub/sub: heard on the channel's
    shard only, not broadcast to every server)."""
    return "SPUBLISH" if isinstance(client, RedisCluster) else "PUBLISH"


class PersistenceOff(RuntimeError):
    pass


def open_client(url: str, *, per_reply_timeout: bool = True) -> redis.Redis:
    """A store client. A store that does not answer must become `store_unavailable`, not a
    hang: by default every reply has a 5 s deadline. The group-commit writer opens its own
    client without per-reply deadlines and bounds each whole pipeline instead (one timer per
    batch rather than one per reply: measurable on the hot path)."""
    return redis.Redis.from_url(url, socket_timeout=5 if per_reply_timeout else None, socket_connect_timeout=5,
                                health_check_interval=0, decode_responses=False,
                                retry_on_timeout=False, max_connections=64)


def _engine(server: dict) -> tuple[str, str]:
    return ("valkey" if "valkey_version" in server else "redis",
            str(server.get("valkey_version") or server.get("redis_version")))


def _is_cluster(server: dict) -> bool:
    return str(server.get("server_mode") or server.get("redis_mode") or "") == "cluster"


async def store_facts(client: StoreClient, server: dict) -> dict:
    """What /health says about a store that is one server (`server`: its INFO server)."""
    persistence = await client.info("persistence")
    replication = await client.info("replication")
    engine, version = _engine(server)
    return {"engine": engine, "version": version, "aof_enabled": bool(int(persistence.get("aof_enabled", 0))),
            "cluster": False, "shards": 1, "replicas": int(replication.get("connected_slaves", 0))}


async def cluster_facts(url: str) -> dict:
    """What /health says about a cluster: append-only must be on in every server; `replicas` is
    the fewest any primary has."""
    cluster = RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=False)
    try:
        await cluster.initialize()
        primaries = cluster.get_primaries()
        persistence = await cluster.info("persistence", target_nodes=RedisCluster.ALL_NODES)
        replication = await cluster.info("replication", target_nodes=primaries)
        server = await cluster.info("server", target_nodes=primaries[0])
    finally:
        await cluster.aclose()
    engine, version = _engine(server)
    return {"engine": engine, "version": version,
            "aof_enabled": all(bool(int(info.get("aof_enabled", 0))) for info in persistence.values()),
            "cluster": True, "shards": len(primaries),
            "replicas": min(int(info.get("connected_slaves", 0)) for info in replication.values())}


class StoreUnreachable(RuntimeError):
    pass


class TooFewReplicas(RuntimeError):
    pass


async def probe(url: str, *, ephemeral: bool, replica_acks: int = 0) -> dict:
    """Before serving: can we reach the store, is it one server or a cluster, and does it keep
    what it is given?

    Raises StoreUnreachable; PersistenceOff when append-only is off and not `ephemeral`;
    TooFewReplicas when `replica_acks` asks for more replicas than a primary has."""
    client = open_client(url)
    try:
        server = await client.info("server")
        facts = await cluster_facts(url) if _is_cluster(server) else await store_facts(client, server)
    except (OSError, RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnreachable(f"cannot reach the store at {url}: {exc}") from exc
    finally:
        await client.aclose()
    if not facts["aof_enabled"] and not ephemeral:
        raise PersistenceOff(
            f"the store at {url} has append-only persistence off"
            + (" on some of its servers" if facts["cluster"] else "")
            + ", so accepted messages could be lost when it restarts. Turn it on (`CONFIG SET appendonly yes` "
            "and `appendonly yes` in its config file), or start the hub with --ephemeral to accept that risk.")
    if replica_acks > facts["replicas"]:
        raise TooFewReplicas(
            f"--replica-acks {replica_acks} asks every write to reach {replica_acks} replica(s), but "
            + ("a primary of the cluster" if facts["cluster"] else "the store")
            + f" at {url} has {facts['replicas']} connected: every write would fail. Add replicas, or lower --replica-acks.")
    return facts


# What a store that is down or cut off raises through redis-py.
STORE_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)


def unavailable(exc: BaseException) -> HubError:
    return HubError(ErrorCode.STORE_UNAVAILABLE, f"the store did not answer: {exc.__class__.__name__}",
                    {"retry": True})


def _mapped(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except STORE_DOWN as exc:
            raise unavailable(exc) from exc
    return call


def maps_store_errors(cls: C) -> C:
    """The one place a store that does not answer becomes `store_unavailable` (503, retry):
    every public coroutine method of a store class raises HubError instead of redis-py's errors.
    (Command builders, which only return tuples, and the group-commit writer, which fails its
    own futures, are not touched.)"""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.iscoroutinefunction(member):
            setattr(cls, name, _mapped(member))
    return cls


