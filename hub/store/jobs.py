"""Jobs in the store: each job's hash, its trace (stages of a work item, fires of a recurring
job), its progress, and the indexes the timers and lists read.

A job's hash holds its spec (`body`, JSON, never changed) and what changes: `state`, the run in
progress (`node`, `instance`, `attempt`, the executor's pid), the result and the runtime
session id. Starting a run, ending it, cancelling, firing a recurring job and losing a run are
one script each on that hash (hub.store.scripts), which is what makes a run happen once across
restarts and nodes. The indexes (due, running) are hints that are written before the script
and cleaned by whoever finds them stale. Commands are returned for the group-commit writer;
reads are direct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.link import Listener
from hub.store.state import as_text
from hub.store.writer import Command

TRACE_MAX = 100      # stages kept per work item, fires kept per recurring job
FIELDS_OF_RECORD = ("state", "reason", "created_at", "updated_at", "due_at", "started_at", "finished_at", "node",
                    "instance", "attempt", "pid", "proc_start", "result", "session_id", "correlation_id",
                    "ask_state", "next_fire_at", "fires", "last_work", "fire")


@dataclass(frozen=True, slots=True)
class StoredJob:
    job_id: str
    body: dict[str, Any]       # the spec, the request, who made it, when
    fields: dict[str, str]     # the hash's other fields, as text ('' when unset)

    def get(self, name: str) -> str:
        return self.fields.get(name, "")

    def number(self, name: str) -> int | None:
        raw = self.fields.get(name, "")
        return int(raw) if raw else None

    @property
    def state(self) -> str:
        return self.get("state")

    @property
    def recurring(self) -> bool:
        return self.job_id.startswith("cal-")


def _parse(job_id: str, raw: dict) -> StoredJob | None:
    if not raw:
        return None
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    body = fields.pop("body", None)
    if body is None:
        return None
    return StoredJob(job_id, orjson.loads(body), fields)


@maps_store_errors
class JobStore:
    def __init__(self, client: StoreClient):
        self.client = client

    # ---- writes (commands for the writer) ------------------------------------------------------

    @staticmethod
    def create_cmds(job_id: str, owner: str, body: dict, created_at: int, *, due_at: int | None,
                    stage: dict) -> list[Command]:
        """A new work item (queued until `due_at`) or recurring job (its next fire is `due_at`)."""
        recurring = job_id.startswith("cal-")
        record: list[Any] = ["body", orjson.dumps(body), "state", "active" if recurring else "queued",
                             "created_at", created_at, "updated_at", created_at, "attempt", 0]
        if recurring:
            record += ["next_fire_at", due_at if due_at is not None else "", "fires", 0]
        else:
            record += ["due_at", due_at if due_at is not None else created_at]
        cmds: list[Command] = [
            ("ZADD", keys.JOBS_RECURRING if recurring else keys.JOBS_WORK, created_at, job_id),
            ("ZADD", keys.jobs_of(owner), created_at, job_id), ("SADD", keys.jobs_open_of(owner), job_id),
            ("HSET", keys.job(job_id), *record)]
        if not recurring:
            cmds.append(("RPUSH", keys.job_trace(job_id), orjson.dumps(stage)))
        if due_at is not None or not recurring:
            cmds.append(("ZADD", keys.JOBS_DUE, due_at if due_at is not None else created_at, job_id))
        return cmds

    @staticmethod
    def fire_cmds(template_id: str, owner: str, due: int, next_due: int | None, work_id: str, body: dict, now: int,
                  fire_entry: dict, stage: dict) -> tuple[list[Command], Command, list[Command]]:
        """(index entries for the new work item, the fire script, the template's next due time)."""
        before: list[Command] = [("ZADD", keys.JOBS_DUE, now, work_id), ("ZADD", keys.JOBS_WORK, now, work_id),
                                 ("ZADD", keys.jobs_of(owner), now, work_id)]
        fire: Command = ("EVALSHA", scripts.SHA["JOB_FIRE"], 4, keys.job(template_id), keys.job_trace(template_id),
                         keys.job(work_id), keys.job_trace(work_id), due, "" if next_due is None else next_due,
                         work_id, orjson.dumps(body), now, orjson.dumps(fire_entry), orjson.dumps(stage), TRACE_MAX)
        after: list[Command] = ([("ZREM", keys.JOBS_DUE, template_id)] if next_due is None
                                else [("ZADD", keys.JOBS_DUE, next_due, template_id)])
        return before, fire, after

    @staticmethod
    def unfired_cmds(work_id: str, owner: str) -> list[Command]:
        """Take back the index entries of a fire another node made first."""
        return [("ZREM", keys.JOBS_DUE, work_id), ("ZREM", keys.JOBS_WORK, work_id),
                ("ZREM", keys.jobs_of(owner), work_id)]

    @staticmethod
    def claim_cmd(job_id: str, node: str, instance: str, now: int, stage: dict) -> Command:
        return ("EVALSHA", scripts.SHA["JOB_CLAIM"], 2, keys.job(job_id), keys.job_trace(job_id), node, instance, now,
                orjson.dumps(stage), TRACE_MAX)

    @staticmethod
    def finish_cmd(job_id: str, node: str, instance: str, attempt: int, state: str, reason: str, now: int,
                   stage: dict, fields: dict[str, Any]) -> Command:
        pairs = [x for k, v in fields.items() for x in (k, v)]
        return ("EVALSHA", scripts.SHA["JOB_FINISH"], 2, keys.job(job_id), keys.job_trace(job_id), node, instance,
                attempt, state, reason, now, orjson.dumps(stage), TRACE_MAX, *pairs)

    @staticmethod
    def cancel_cmd(job_id: str, now: int, stage: dict) -> Command:
        return ("EVALSHA", scripts.SHA["JOB_CANCEL"], 2, keys.job(job_id), keys.job_trace(job_id), now,
                orjson.dumps(stage), TRACE_MAX)

    @staticmethod
    def lose_cmd(job_id: str, node: str, instance: str, attempt: int, now: int, stage: dict, reason: str) -> Command:
        return ("EVALSHA", scripts.SHA["JOB_LOSE"], 2, keys.job(job_id), keys.job_trace(job_id), node, instance,
                attempt, now, orjson.dumps(stage), TRACE_MAX, reason)

    @staticmethod
    def adopt_cmd(job_id: str, node: str, instance: str, attempt: int, new_node: str, new_instance: str, now: int,
                  stage: dict) -> Command:
        return ("EVALSHA", scripts.SHA["JOB_ADOPT"], 2, keys.job(job_id), keys.job_trace(job_id), node, instance,
                attempt, new_node, new_instance, now, orjson.dumps(stage), TRACE_MAX)

    @staticmethod
    def set_cmd(job_id: str, **fields: Any) -> Command:
        """Facts of the run in progress (pid, session id, the ask); never the state."""
        return ("HSET", keys.job(job_id), *[x for k, v in fields.items() for x in (k, v)])

    @staticmethod
    def stage_cmds(job_id: str, stage: dict) -> list[Command]:
        return [("RPUSH", keys.job_trace(job_id), orjson.dumps(stage)), ("LTRIM", keys.job_trace(job_id), -TRACE_MAX, -1)]

    @staticmethod
    def progress_cmds(job_id: str, entries: list[dict], keep: int) -> list[Command]:
        return [("RPUSH", keys.job_progress(job_id), *[orjson.dumps(e) for e in entries]),
                ("LTRIM", keys.job_progress(job_id), -keep, -1)]

    @staticmethod
    def running_cmd(lease_ends: int, job_ids: list[str]) -> Command:
        return ("ZADD", keys.JOBS_RUNNING, *[x for job_id in job_ids for x in (lease_ends, job_id)])

    @staticmethod
    def not_running_cmd(job_id: str) -> Command:
        return ("ZREM", keys.JOBS_RUNNING, job_id)

    @staticmethod
    def not_due_cmd(job_id: str) -> Command:
        return ("ZREM", keys.JOBS_DUE, job_id)

    @staticmethod
    def over_cmds(job_id: str, owner: str, now: int) -> list[Command]:
        """The job is over: it no longer counts against its maker's limit, and it is kept for the
        retention from now."""
        return [("SREM", keys.jobs_open_of(owner), job_id), ("ZADD", keys.JOBS_FINISHED, now, job_id)]

    @staticmethod
    def delete_cmds(job_id: str, owner: str) -> list[Command]:
        """A job past its retention: its hash, trace, progress and every index entry."""
        return [("DEL", keys.job(job_id), keys.job_trace(job_id), keys.job_progress(job_id)),
                ("ZREM", keys.JOBS_RECURRING if job_id.startswith("cal-") else keys.JOBS_WORK, job_id),
                ("ZREM", keys.jobs_of(owner), job_id), ("SREM", keys.jobs_open_of(owner), job_id),
                ("ZREM", keys.JOBS_FINISHED, job_id), ("ZREM", keys.JOBS_DUE, job_id),
                ("ZREM", keys.JOBS_RUNNING, job_id)]

    @staticmethod
    def forget_cmd(job_id: str) -> Command:
        return ("ZREM", keys.JOBS_FINISHED, job_id)

    @staticmethod
    def changed_cmd(job_id: str) -> Command:
        return ("PUBLISH", keys.JOBS_CHANGED, job_id)

    # ---- reads -----------------------------------------------------------------------------------

    async def read(self, job_id: str) -> StoredJob | None:
        return _parse(job_id, await self.client.hgetall(keys.job(job_id)))

    async def read_many(self, job_ids: list[str]) -> list[StoredJob]:
        if not job_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        rows = await pipe.execute()
        return [j for j in (_parse(i, r) for i, r in zip(job_ids, rows)) if j is not None]

    async def read_many_detailed(self, job_ids: list[str]) -> list[tuple[StoredJob, list[dict], list[dict]]]:
        """Jobs with their traces and progress (the full list view)."""
        if not job_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
            pipe.lrange(keys.job_trace(job_id), 0, -1)
            pipe.lrange(keys.job_progress(job_id), 0, -1)
        rows = await pipe.execute()
        out = []
        for i, job_id in enumerate(job_ids):
            stored = _parse(job_id, rows[3 * i])
            if stored is not None:
                out.append((stored, [orjson.loads(r) for r in rows[3 * i + 1]],
                            [orjson.loads(r) for r in rows[3 * i + 2]]))
        return out

    async def detail(self, job_id: str) -> tuple[StoredJob | None, list[dict], list[dict]]:
        """The job with its trace and progress, as of one moment (one MULTI on one slot)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(keys.job(job_id))
        pipe.lrange(keys.job_trace(job_id), 0, -1)
        pipe.lrange(keys.job_progress(job_id), 0, -1)
        raw, trace, progress = await pipe.execute()
        return _parse(job_id, raw), [orjson.loads(r) for r in trace], [orjson.loads(r) for r in progress]

    async def ids(self, owner: str | None, limit: int) -> tuple[list[str], list[str]]:
        """(work item ids, recurring job ids), newest first, at most `limit` of each."""
        if owner is not None:
            rows = replies.texts(await self.client.zrevrange(keys.jobs_of(owner), 0, 2 * limit - 1))
            work = [r for r in rows if not r.startswith("cal-")][:limit]
            return work, [r for r in rows if r.startswith("cal-")][:limit]
        pipe = self.client.pipeline(transaction=False)
        pipe.zrevrange(keys.JOBS_WORK, 0, limit - 1)
        pipe.zrevrange(keys.JOBS_RECURRING, 0, limit - 1)
        work, recurring = await pipe.execute()
        return replies.texts(work), replies.texts(recurring)

    async def open_count(self, owner: str) -> int:
        return int(await self.client.scard(keys.jobs_open_of(owner)))

    async def due(self, now: int, limit: int) -> list[tuple[str, int]]:
        return replies.scored(await self.client.zrangebyscore(keys.JOBS_DUE, "-inf", now, start=0, num=limit,
                                                              withscores=True))

    async def earliest_due(self) -> int | None:
        rows = replies.scored(await self.client.zrange(keys.JOBS_DUE, 0, 0, withscores=True))
        return rows[0][1] if rows else None

    async def finished_before(self, until: int, limit: int) -> list[str]:
        """Jobs that were over by `until`, oldest first."""
        return [job_id for job_id, _ in replies.scored(await self.client.zrangebyscore(
            keys.JOBS_FINISHED, "-inf", until, start=0, num=limit, withscores=True))]

    async def running(self, until: int | str, limit: int) -> list[tuple[str, int]]:
        """Running work items whose lease ends by `until` ('+inf': all)."""
        return replies.scored(await self.client.zrangebyscore(keys.JOBS_RUNNING, "-inf", until, start=0, num=limit,
                                                              withscores=True))

    @staticmethod
    async def follow_changes(listener: Listener, on_change: Callable[[str], None]) -> None:
        """Call `on_change(job id)` for every notice (and once with '' on subscribing)."""
        await listener.listen([keys.JOBS_CHANGED], lambda _, data: on_change(as_text(data)), lambda: on_change(""))
