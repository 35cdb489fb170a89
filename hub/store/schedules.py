"""Scheduled messages in the store: the schedule hash, its fire history and the indexes.

The hash holds the schedule's spec (`body`, JSON, never changed), its `state`, the next due
time and, while an occurrence is being sent, the claim in flight. Claiming an occurrence and
recording its outcome are one script each on that hash, which is what makes every occurrence
fire once across restarts and hub nodes. Commands are returned for the group-commit writer;
reads are direct. Changes are published so that the other nodes' timers wake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.link import Listener
from hub.store.state import as_text
from hub.store.writer import Command

HISTORY_MAX = 100   # fire history entries kept per schedule


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    schedule_id: str
    body: dict              # spec fields, created_by (a peer reference), created_at
    state: str
    next_fire_at: int | None
    counts: dict[str, int]  # fired, missed, failed
    inflight: str           # the claim JSON in flight, or ''
    inflight_node: str
    inflight_at: int | None


def _int_or_none(raw: str) -> int | None:
    return int(raw) if raw else None


def _parse(schedule_id: str, raw: dict) -> StoredSchedule | None:
    if not raw:
        return None
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    return StoredSchedule(schedule_id, orjson.loads(fields["body"]), fields["state"],
                          _int_or_none(fields.get("next_fire_at", "")),
                          {name: int(fields.get(name, 0)) for name in ("fired", "missed", "failed")},
                          fields.get("inflight", ""), fields.get("inflight_node", ""),
                          _int_or_none(fields.get("inflight_at", "")))


def _due_text(due: int | None) -> str:
    return "" if due is None else str(due)


@maps_store_errors
class ScheduleStore:
    def __init__(self, client: StoreClient):
        self.client = client

    # ---- writes (commands for the writer) ------------------------------------------------------

    @staticmethod
    def create_cmds(schedule_id: str, creator: str, body: dict, next_fire_at: int) -> list[Command]:
        return [("HSET", keys.schedule(schedule_id), "body", orjson.dumps(body), "creator", creator,
                 "state", "active", "next_fire_at", next_fire_at, "fired", 0, "missed", 0, "failed", 0,
                 "inflight", ""),
                ("SADD", keys.SCHEDULES, schedule_id), ("SADD", keys.schedules_of(creator), schedule_id),
                ("ZADD", keys.SCHEDULES_DUE, next_fire_at, schedule_id)]

    @staticmethod
    def delete_cmds(schedule_id: str, creator: str) -> list[Command]:
        return [("DEL", keys.schedule(schedule_id), keys.schedule_fires(schedule_id)),
                ("SREM", keys.SCHEDULES, schedule_id), ("SREM", keys.schedules_of(creator), schedule_id),
                ("ZREM", keys.SCHEDULES_DUE, schedule_id), ("ZREM", keys.SCHEDULES_INFLIGHT, schedule_id)]

    @staticmethod
    def claim_send_cmd(schedule_id: str, due: int, next_due: int | None, claim: bytes, now: int,
                       node: str) -> Command:
        return ("EVALSHA", scripts.SHA["CLAIM_FIRE"], 2, keys.schedule(schedule_id), keys.schedule_fires(schedule_id),
                due, _due_text(next_due), "send", claim, now, node, HISTORY_MAX, 0)

    @staticmethod
    def claim_missed_cmd(schedule_id: str, due: int, next_due: int | None, entry: dict, now: int, node: str,
                         count: int) -> Command:
        return ("EVALSHA", scripts.SHA["CLAIM_FIRE"], 2, keys.schedule(schedule_id), keys.schedule_fires(schedule_id),
                due, _due_text(next_due), "missed", orjson.dumps(entry), now, node, HISTORY_MAX, count)

    @staticmethod
    def finish_cmd(schedule_id: str, claim: str | bytes, entry: dict, counter: str) -> Command:
        return ("EVALSHA", scripts.SHA["FINISH_FIRE"], 2, keys.schedule(schedule_id), keys.schedule_fires(schedule_id),
                claim, orjson.dumps(entry), counter, HISTORY_MAX)

    @staticmethod
    def take_over_cmd(schedule_id: str, claim: str, node: str, now: int) -> Command:
        return ("EVALSHA", scripts.SHA["TAKE_OVER_FIRE"], 1, keys.schedule(schedule_id), claim, node, now)

    @staticmethod
    def set_state_cmd(schedule_id: str, from_state: str, to_state: str, next_due: int | None) -> Command:
        return ("EVALSHA", scripts.SHA["SET_SCHEDULE_STATE"], 1, keys.schedule(schedule_id), from_state, to_state,
                _due_text(next_due))

    @staticmethod
    def index_cmds(schedule_id: str, next_due: int | None) -> list[Command]:
        """Point the due index at the schedule's next due time (or take it out)."""
        if next_due is None:
            return [("ZREM", keys.SCHEDULES_DUE, schedule_id)]
        return [("ZADD", keys.SCHEDULES_DUE, next_due, schedule_id)]

    @staticmethod
    def inflight_cmd(schedule_id: str, claimed_at: int | None) -> Command:
        if claimed_at is None:
            return ("ZREM", keys.SCHEDULES_INFLIGHT, schedule_id)
        return ("ZADD", keys.SCHEDULES_INFLIGHT, claimed_at, schedule_id)

    @staticmethod
    def changed_cmd(schedule_id: str) -> Command:
        return ("PUBLISH", keys.SCHEDULES_CHANGED, schedule_id)

    # ---- reads -----------------------------------------------------------------------------------

    async def read(self, schedule_id: str) -> StoredSchedule | None:
        raw = await self.client.hgetall(keys.schedule(schedule_id))
        return _parse(schedule_id, raw)

    async def read_many(self, schedule_ids: list[str]) -> list[StoredSchedule]:
        pipe = self.client.pipeline(transaction=False)
        for schedule_id in schedule_ids:
            pipe.hgetall(keys.schedule(schedule_id))
        rows = await pipe.execute()
        return [s for s in (_parse(i, r) for i, r in zip(schedule_ids, rows)) if s is not None]

    async def read_with_history(self, schedule_id: str) -> tuple[StoredSchedule | None, list[dict]]:
        """The schedule and its fire history as of one moment (one MULTI on one slot), so that
        the counts and the history agree."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys.schedule(schedule_id))
        pipe.lrange(keys.schedule_fires(schedule_id), 0, -1)
        raw, rows = await pipe.execute()
        return _parse(schedule_id, raw), [orjson.loads(r) for r in rows]

    async def ids(self, creator: str | None = None) -> list[str]:
        """Every schedule id, or those `creator` made."""
        raw = await self.client.smembers(keys.schedules_of(creator) if creator else keys.SCHEDULES)
        return sorted(as_text(r) for r in raw)

    async def count_of(self, creator: str) -> int:
        return int(await self.client.scard(keys.schedules_of(creator)))

    async def due(self, now: int, limit: int) -> list[tuple[str, int]]:
        """Schedules due by `now`, earliest first."""
        return replies.scored(await self.client.zrangebyscore(keys.SCHEDULES_DUE, "-inf", now, start=0, num=limit,
                                                              withscores=True))

    async def earliest_due(self) -> int | None:
        rows = replies.scored(await self.client.zrange(keys.SCHEDULES_DUE, 0, 0, withscores=True))
        return rows[0][1] if rows else None

    async def inflight(self, limit: int) -> list[tuple[str, int]]:
        return replies.scored(await self.client.zrange(keys.SCHEDULES_INFLIGHT, 0, limit - 1, withscores=True))

    @staticmethod
    async def follow_changes(listener: Listener, on_change: Callable[[], None]) -> None:
        """Call `on_change` for every change notice (and once on subscribing, for what a lost
        connection may have missed); returns or raises when the connection ends."""
        await listener.listen([keys.SCHEDULES_CHANGED], lambda _, __: on_change(), on_change)
