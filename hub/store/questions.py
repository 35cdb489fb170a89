"""Tool-permission questions, policies and the decision log in the store.

A question is one hash: what never changes as a JSON `body`, beside `content_hash`, `state`
and, once decided, the decision's fields. Creating and deciding are one script each on that
hash, so a question is created once per tool call and decided once. The pending index, the
policy rules and the audit log are hub-wide keys. Commands are returned for the group-commit
writer; reads are direct.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from hub.core.approvals import ABANDONED
from hub.store import keys, replies, scripts
from hub.store.connect import StoreClient, maps_store_errors
from hub.store.state import as_text
from hub.store.writer import Command
from schemas.codec import encode
from schemas.rest import TraceStage

MAX_DECISIONS = 100_000   # the audit log keeps about this many entries


def _record(raw: dict) -> dict:
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    record = {**orjson.loads(fields.pop("body")), **fields}
    if record.get("by"):
        record["by"] = orjson.loads(record["by"])
    return record


def _decision_fields(decision: dict) -> list:
    """state first (`abandoned` when nobody waits for the answer any more, else `decided`),
    then the decision's fields as flat pairs."""
    pairs: list = ["state", ABANDONED if decision.get("answered_by") == ABANDONED else "decided"]
    for name, value in decision.items():
        if value is not None:
            pairs += [name, orjson.dumps(value) if isinstance(value, dict) else value]
    return pairs


@dataclass(frozen=True, slots=True)
class CreateReply:
    """What the create script says: `created`, `joined` (the same tool call asked again: the
    question's `state` now) or `mismatch` (that tool_use_id was asked with other content)."""
    status: str
    state: str


@dataclass(frozen=True, slots=True)
class DecideReply:
    """What the decide script says: `ok`, `missing`, `mismatch`, or `decided` with who decided
    first (`answered_by`)."""
    status: str
    answered_by: str | None


def parse_create(reply: object) -> CreateReply:
    status, state = replies.status_and(reply)
    return CreateReply(status, replies.text(state) if status == "joined" else "")


def parse_decide(reply: object) -> DecideReply:
    status, by = replies.status_and(reply)
    return DecideReply(status, replies.text(by) if status == "decided" else None)


@maps_store_errors
class QuestionStore:
    def __init__(self, client: StoreClient):
        self.client = client

    # ---- questions ---------------------------------------------------------------------------

    @staticmethod
    def create_cmd(question_id: str, content_hash: str, body: dict, deadline: int, expire_at: int,
                   stages: list[TraceStage], joined_stage: TraceStage, trace_ttl_s: int,
                   decision: dict | None = None) -> Command:
        """Pending, or already decided (a policy matched) when `decision` is given; with its
        first trace stages."""
        fields = ["body", orjson.dumps(body), "deadline", deadline]
        fields += _decision_fields(decision) if decision else ["state", "pending"]
        return ("EVALSHA", scripts.SHA["CREATE_QUESTION"], 2, keys.question(question_id), keys.trace(question_id),
                expire_at, content_hash, trace_ttl_s, encode(joined_stage), len(stages),
                *(encode(s) for s in stages), *fields)

    @staticmethod
    def index_cmd(question_id: str, deadline: int) -> Command:
        """NX: a joining retry does not move the first question's deadline."""
        return ("ZADD", keys.QUESTIONS_PENDING, "NX", deadline, question_id)

    @staticmethod
    def unindex_cmd(question_id: str) -> Command:
        return ("ZREM", keys.QUESTIONS_PENDING, question_id)

    @staticmethod
    def decide_cmd(question_id: str, expected_hash: str | None, decision: dict, final_stage: TraceStage) -> Command:
        """`decision`: decision, answered_by, reason, decided_at and, when known, rule_id,
        option_id, by (a peer reference). The final stage is traced in the same step."""
        return ("EVALSHA", scripts.SHA["DECIDE_QUESTION"], 2, keys.question(question_id), keys.trace(question_id),
                expected_hash or "", encode(final_stage), *_decision_fields(decision))

    @staticmethod
    def audit_cmd(entry: dict) -> Command:
        return ("XADD", keys.DECISIONS, "MAXLEN", "~", MAX_DECISIONS, "*", "d", orjson.dumps(entry))

    async def read(self, question_id: str) -> dict | None:
        raw = await self.client.hgetall(keys.question(question_id))
        return _record(raw) if raw else None

    async def read_many(self, question_ids: list[str]) -> list[dict]:
        if not question_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for question_id in question_ids:
            pipe.hgetall(keys.question(question_id))
        rows = await pipe.execute()
        return [_record(row) for row in rows if row]

    async def pending(self, limit: int) -> list[tuple[str, int]]:
        """(question id, deadline) of pending questions, soonest deadline first."""
        rows = await self.client.zrange(keys.QUESTIONS_PENDING, 0, limit - 1, withscores=True)
        return replies.scored(rows)

    async def decisions(self, before: str, count: int) -> list[tuple[str, dict]]:
        """Audit entries newest first, strictly before the stream id `before` ('+' = newest)."""
        rows = await self.client.xrevrange(keys.DECISIONS, before if before == "+" else f"({before}", "-", count)
        return [(entry_id, orjson.loads(fields[b"d"])) for entry_id, fields in replies.stream_entries(rows)]

    # ---- policies ----------------------------------------------------------------------------

    @staticmethod
    def save_policy_cmd(rule: dict) -> Command:
        return ("HSET", keys.POLICIES, rule["id"], orjson.dumps(rule))

    @staticmethod
    def delete_policy_cmd(policy_id: str) -> Command:
        return ("HDEL", keys.POLICIES, policy_id)

    async def policy(self, policy_id: str) -> dict | None:
        raw = await self.client.hget(keys.POLICIES, policy_id)
        return orjson.loads(raw) if raw else None

    async def policy_count(self) -> int:
        return int(await self.client.hlen(keys.POLICIES))

    @staticmethod
    def save_preset_cmd(name: str) -> Command:
        return ("SET", keys.APPROVAL_PRESET, name)

    async def preset(self) -> str | None:
        raw = await self.client.get(keys.APPROVAL_PRESET)
        return as_text(raw) if raw else None

    @staticmethod
    def people_cmd(node: str, count: int) -> Command:
        """How many people watch for questions on this node (0 removes the node)."""
        return ("HSET", keys.PEOPLE, node, count) if count else ("HDEL", keys.PEOPLE, node)

    async def people(self) -> dict[str, int]:
        """node -> people watching for questions there (as each node last said)."""
        raw = await self.client.hgetall(keys.PEOPLE)
        return {as_text(node): int(count) for node, count in raw.items()}

    async def policies(self) -> list[dict]:
        """Read on every use, so that every hub node on one store applies the same rules."""
        raw = await self.client.hvals(keys.POLICIES)
        return [orjson.loads(r) for r in raw]

    async def rules(self) -> tuple[list[dict], str | None]:
        """The person's rules and the preset's name, in one round trip (every question reads both)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hvals(keys.POLICIES)
        pipe.get(keys.APPROVAL_PRESET)
        raw, preset = await pipe.execute()
        return [orjson.loads(r) for r in raw], as_text(preset) if preset else None
