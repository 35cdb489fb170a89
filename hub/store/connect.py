"""Opening the store and checking that it keeps what it is given."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.core.errors import HubError
from schemas.errors import ErrorCode


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


async def store_facts(client: redis.Redis) -> dict:
    """What /health says about the store."""
    persistence = await client.info("persistence")
    server = await client.info("server")
    return {
        "engine": "valkey" if "valkey_version" in server else "redis",
        "version": str(server.get("valkey_version") or server.get("redis_version")),
        "aof_enabled": bool(int(persistence.get("aof_enabled", 0))),
    }


class StoreUnreachable(RuntimeError):
    pass


async def probe(url: str, *, ephemeral: bool) -> dict:
    """Before serving: can we reach the store, and does it keep what it is given?

    Raises StoreUnreachable, or PersistenceOff when append-only is off and not `ephemeral`."""
    client = open_client(url)
    try:
        facts = await store_facts(client)
    except (OSError, RedisConnectionError, RedisTimeoutError) as exc:
        raise StoreUnreachable(f"cannot reach the store at {url}: {exc}") from exc
    finally:
        await client.aclose()
    if not facts["aof_enabled"] and not ephemeral:
        raise PersistenceOff(
            f"the store at {url} has append-only persistence off, so accepted messages could be lost "
            "when it restarts. Turn it on (`CONFIG SET appendonly yes` and `appendonly yes` in its "
            "config file), or start the hub with --ephemeral to accept that risk.")
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


