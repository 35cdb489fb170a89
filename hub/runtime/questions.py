"""Tool-permission questions at run time: hold a hook's request until a person or a policy
decides, or the deadline decides `deny`.

Opening a question evaluates the policies (read from the store, so every node applies the same
rules) and writes the question, already decided when a policy allow/deny matched. A pending
question waits for a person's answer; its deadline is tracked by one timer. Deciding is one
store script on the question's hash (its final trace stage in the same step), so a question is
decided exactly once whoever comes first (person, deadline, another node); the pending index
and the audit entry are written right after. People connected to this node are told of every
question opened and decided. The waiting callers (REST requests, socket frames) are futures in this
process; a caller that leaves is recorded in the trace as `waiter_lost`, and after a restart
every question this node was holding open is recorded the same way.

On a mesh, opening and deciding are told to the other nodes on the node bus: their people hear
of it, a decision made through any node answers the callers waiting on the node that opened
the question, and every node tracks the deadline (whoever comes first decides, once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.core.approvals import (
    ABANDONED,
    ASK,
    DENY,
    HUMAN,
    ONCE,
    PENDING,
    POLICY,
    TIMEOUT,
    QuestionPolicy,
    check_scope,
    content_hash,
    decision_of,
    question_deadline,
    question_id,
)
from hub.core.errors import HubError
from hub.core.ids import is_hex128
from hub.core.peers import PeerRecord
from hub.core.presence import with_questions
from hub.core.questions import (
    CHOICE,
    FALLBACK,
    TOOL_PERMISSION,
    check_plain,
    check_tool_options,
    choice_of,
    default_outcome,
    fallback_outcome,
    on_decide_answer,
    plain_hash,
)
from hub.core.trace import Stage, stage_entry
from hub.runtime.alerts import People
from hub.runtime.credentials import Sender
from hub.runtime.deadlines import DeadlineTimer
from hub.runtime.hub import Hub
from hub.runtime.policies import PolicyService
from hub.store.questions import QuestionStore, parse_create, parse_decide
from hub.store.state import StoreState
from schemas.codec import decode_hub_frame, encode
from schemas.dashboard import QuestionSettled, QuestionShown
from schemas.errors import ErrorCode
from schemas.frames import QuestionDecided, QuestionOpened
from schemas.rest import DecisionRecord, DecisionView, QuestionView, TraceStage

log = logging.getLogger(__name__)

RETRY_MS = 1000
SCAN_MAX = 100_000  # audit entries one /decisions query reads at most
PEOPLE = "people"   # where a question goes when no policy decides it
MAX_PENDING_SCAN = 10_000  # waiting questions read to find one agent's own


@dataclass(frozen=True, slots=True)
class Opened:
    """A question as its asker first hears of it; `decision` resolves to the decision view."""
    correlation_id: str
    deadline: int
    decision: asyncio.Future[DecisionView]


DECISION_FIELDS = ("decision", "rule_id", "option_id", "scope", "policy_id")
QUESTION_FIELDS = ("tool_name", "tool_input", "tool_use_id", "session_id", "cwd", "title", "prompt", "options",
                   "default", "asker", "peer", "decision", "answered_by", "reason", "rule_id", "option_id", "by",
                   "scope", "policy_id")


def decision_view(record: Mapping[str, Any]) -> DecisionView:
    """A question's decision, from its stored record (or a decision being written)."""
    fields = {name: record[name] for name in DECISION_FIELDS if record.get(name)}
    return msgspec.convert({"correlation_id": record["correlation_id"], "answered_by": record["answered_by"],
                            "reason": record.get("reason", ""), **fields}, DecisionView)


def owner_of(record: dict) -> str:
    """The agent a question is about (the asker when it names no other)."""
    return (record.get("peer") or record["asker"])["peer_id"]


def not_what_was_shown(qid: str) -> HubError:
    """An answer that names a content hash other than the question's."""
    refusal = on_decide_answer(qid, "mismatch", None)
    assert refusal is not None
    return refusal


def error_view(qid: str, reason: str) -> DecisionView:
    """No decision could be had: deny (fail closed)."""
    return DecisionView(correlation_id=qid, decision="deny", answered_by="error", reason=reason)


class QuestionService:
    def __init__(self, hub: Hub, state: StoreState, store: QuestionStore, policies: PolicyService,
                 policy: QuestionPolicy, people: People):
        self.hub = hub
        self.state = state   # the shared store: traces, the event stream, the writer
        self.store = store
        self.policies = policies
        self.policy = policy
        self.people = people
        self.waiters: dict[str, list[asyncio.Future[DecisionView]]] = {}
        # What never changes about the questions this node opened and that wait for a person:
        # answering them needs no store read (their state is the store's to check).
        self.opened: dict[str, dict] = {}
        self._opening: dict[str, int] = {}   # questions being written now, per agent (see _check_room)
        self._abandoning: set[asyncio.Task] = set()
        self.deadlines = DeadlineTimer(hub.now_ms, self._expire, "question-deadlines")

    # ---- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        pending = await self.store.pending(100_000)
        stale, lost = [], []
        for record in await self.store.read_many([qid for qid, _ in pending]):
            qid = record["correlation_id"]
            if record["state"] != PENDING:
                stale.append(self.store.unindex_cmd(qid))
            elif record.get("node") == self.hub.node:
                lost.append(record)   # its hook waited on this node's last life, and was denied when it died
            else:
                self.deadlines.track(qid, int(record["deadline"]))
        if stale:
            await self.state.writer.write(*stale)
        for record in lost:
            await self._abandon(record, "hub_restarted")
        self.deadlines.start()

    def stop(self) -> None:
        """The hub is stopping: every caller still waiting gets `deny` now (answered_by
        `error`), rather than a dropped connection. The questions stay pending in the store."""
        self.deadlines.stop()
        for qid in list(self.waiters):
            self._resolve(qid, error_view(qid, "the hub is stopping"))

    # ---- asking ------------------------------------------------------------------------------

    async def open(self, sender: Sender, request) -> Opened:
        """`request` has the fields of schemas.frames.AskBlockingBody: a tool permission, or a
        plain question (no `tool_name`)."""
        hub = self.hub
        if request.prompt:
            hub.check_text(request.prompt)
        if request.peer is not None:
            raise HubError(ErrorCode.FORBIDDEN, "who asks is the credential's peer, never a field: leave out `peer` "
                           "(an agent's hook asks with its session's credential)", {"peer": request.peer})
        given = [{k: v for k, v in (("id", o.id), ("title", o.title), ("decision", o.decision)) if v is not None}
                 for o in request.options] if request.options else None
        if request.tool_name is None:
            options = check_plain(request.title, given, request.default, request.tool_input)
            action, rule, subject = ASK, None, sender.peer
        else:
            options = check_tool_options(request.tool_use_id, request.title, given, request.default)
            matched = await self.policies.match(sender, request.tool_name, request.tool_input, request.cwd, None,
                                                request.session_id)
            action, rule, subject = matched.action, matched.rule, matched.subject
        owner = subject.peer_id if subject is not None else sender.key_owner
        self._check_room(owner)
        self._opening[owner] = self._opening.get(owner, 0) + 1
        try:
            return await self._open(sender, request, options, action, rule, subject)
        finally:
            left = self._opening[owner] - 1
            if left:
                self._opening[owner] = left
            else:
                del self._opening[owner]

    def _check_room(self, owner: str) -> None:
        """At most `open_questions_per_peer` questions of one agent wait for a person at once
        (those waiting on this node, and those being written), so a flood from one agent cannot
        take the store or the people away from another's question."""
        limit = self.hub.settings.limits.open_questions_per_peer
        waiting = sum(1 for q in self.opened.values() if owner_of(q) == owner)
        if waiting + self._opening.get(owner, 0) >= limit:
            raise HubError(ErrorCode.TOO_MANY_QUESTIONS, f"this agent already has {limit} questions waiting for a "
                           "person; the next one may be asked when one is decided", {"limit": limit})

    async def _open(self, sender: Sender, request, options, action: str, rule: dict | None,
                    subject: PeerRecord | None) -> Opened:
        hub = self.hub
        plain = request.tool_name is None
        qid = question_id(sender.key_owner, request.session_id, request.tool_use_id or hub.ids.next(hub.now_ms()))
        digest = (plain_hash(request.title, request.prompt, options) if plain
                  else content_hash(request.tool_name, request.tool_input))
        now = hub.now_ms()
        deadline = question_deadline(now, request.timeout_s, request.hook_timeout_s, self.policy)
        decision = None
        if action != ASK and rule is not None:
            decision = {"decision": action, "answered_by": POLICY, "rule_id": rule["id"], "decided_at": now,
                        "reason": rule.get("reason") or f"policy {rule['id']} says {action}"}
        elif deadline <= now:
            decision = {**default_outcome(plain, request.default), "answered_by": TIMEOUT, "decided_at": now,
                        "reason": "the hook's timeout leaves no time to ask a person"}
        elif not await self.people.reachable():
            decision = fallback_outcome(plain, request.default, self.policy.fallback, now)
        asker = sender.ref
        body = {"correlation_id": qid, "kind": CHOICE if plain else TOOL_PERMISSION, "tool_name": request.tool_name,
                "tool_input": request.tool_input, "tool_use_id": request.tool_use_id, "session_id": request.session_id,
                "cwd": request.cwd, "title": request.title, "prompt": request.prompt, "options": options,
                "default": request.default, "asker": asker, "peer": Sender(subject).ref if subject else None,
                "created_at": now, "deadline": deadline, "node": hub.node}
        body = {k: v for k, v in body.items() if v is not None}
        retention = hub.settings.trace_retention_s
        stages = [stage_entry(Stage.ACCEPTED, now, hub.node, kind="question", from_peer=asker["peer_id"],
                              tool_name=request.tool_name, tool_use_id=request.tool_use_id, deadline=deadline),
                  stage_entry(Stage.ROUTED, now, hub.node, to=f"rule {rule['id']}" if rule else PEOPLE)]
        if decision is not None:
            stages.append(self._final_stage(decision, now))
            hub.metrics.question_decided(decision["answered_by"], 0.0)
        create = self.store.create_cmd(qid, digest, body, deadline, deadline + retention * 1000, stages,
                                       stage_entry(Stage.JOINED, now, hub.node), retention, decision)
        # One batch: the question with its first stages and, when it waits for a person, its
        # place in the pending index (NX: a retry joining it changes nothing there).
        (created_reply, *_) = await self.state.writer.write(
            create, *([self.store.index_cmd(qid, deadline)] if decision is None else []))
        created = parse_create(created_reply)
        status = created.status
        if status == "mismatch":
            raise HubError(ErrorCode.CONTENT_MISMATCH, "this tool_use_id was asked about before with a different "
                           "tool name or input", {"correlation_id": qid})
        future: asyncio.Future[DecisionView] = asyncio.get_running_loop().create_future()
        if status == "joined":
            return await self._join(qid, created.state, future)
        if decision is not None:
            await self.state.writer.write(self.store.audit_cmd(self._audit_entry(body, decision)))
            future.set_result(decision_view({"correlation_id": qid, **decision}))
            return Opened(qid, deadline, future)
        self.deadlines.track(qid, deadline)
        self.waiters.setdefault(qid, []).append(future)
        self.opened[qid] = {**body, "content_hash": digest}
        self._show_presence(owner_of(body))
        shown = self.public({**body, "content_hash": digest, "state": PENDING})
        self._tell_people(QuestionOpened(**msgspec.structs.asdict(shown)))
        self.people.alerts.question_waits(shown)
        return Opened(qid, deadline, future)

    async def _join(self, qid: str, state: str, future: asyncio.Future[DecisionView]) -> Opened:
        """The same tool call asked again (the store traced `joined`): wait for the first
        question's decision, or return it if it was made."""
        record = await self.store.read(qid)
        if record is None:  # decided and gone past retention between the two steps
            raise HubError(ErrorCode.QUESTION_NOT_FOUND, f"no question {qid}", {"correlation_id": qid})
        if state != PENDING or record["state"] != PENDING:
            # this call's batch may have put a decided question back in the pending index
            self.state.writer.submit([self.store.unindex_cmd(qid)], wait=False)
            future.set_result(decision_view(record))
            return Opened(qid, int(record["deadline"]), future)
        self.deadlines.track(qid, int(record["deadline"]))
        self.waiters.setdefault(qid, []).append(future)
        return Opened(qid, int(record["deadline"]), future)

    def waiter_lost(self, qid: str, future: asyncio.Future[DecisionView], reason: str) -> None:
        """A caller stopped waiting (its connection closed): the question stays open."""
        futures = self.waiters.get(qid, [])
        if future in futures:
            futures.remove(future)
            if not futures:
                self.waiters.pop(qid, None)
        if not future.done():
            future.cancel()
            self.state.writer.submit([self.state.trace_cmd(qid, [stage_entry(
                Stage.WAITER_LOST, self.hub.now_ms(), self.hub.node, reason=reason)])], wait=False)
            if qid not in self.waiters and qid in self.opened:
                # nobody waits for the answer any more (the hook gave up, or died): close it
                task = asyncio.get_running_loop().create_task(self._abandon_quietly(self.opened[qid], reason))
                self._abandoning.add(task)   # held until done (the loop keeps only weak references)
                task.add_done_callback(self._abandoning.discard)

    async def _abandon_quietly(self, record: dict, reason: str) -> None:
        try:
            await self._abandon(record, reason)
        except HubError as exc:
            log.info("abandoning question %s: %s", record["correlation_id"], exc.message)

    async def _abandon(self, record: dict, reason: str) -> None:
        """The hook that asked is gone (the hub restarted under it, it gave up, its session
        ended): its tool call was denied where it ran, so the question closes as `abandoned`
        and can no longer be approved."""
        try:
            await self._decide(record, {"decision": DENY, "answered_by": ABANDONED, "decided_at": self.hub.now_ms(),
                                        "reason": f"abandoned: {reason}"}, None)
        except HubError as exc:
            if exc.code not in (ErrorCode.ALREADY_ANSWERED, ErrorCode.EXPIRED, ErrorCode.QUESTION_NOT_FOUND,
                                ErrorCode.QUESTION_ABANDONED):
                raise

    async def abandon_for(self, peer_id: str, reason: str) -> None:
        """The agent's session ended: its questions waiting on this node close as abandoned."""
        for record in [q for q in self.opened.values() if owner_of(q) == peer_id]:
            await self._abandon(record, reason)

    def _close(self, qid: str) -> None:
        """The question no longer waits for a person on this node."""
        record = self.opened.pop(qid, None)
        if record is not None:
            self._show_presence(owner_of(record))

    def _show_presence(self, peer_id: str) -> None:
        """An agent is `awaiting_input` while one of its questions waits for a person, and
        `busy` again once none does (its tool call runs, or is refused)."""
        peer = self.hub.peers.get(peer_id)
        if peer is None or not self.hub.presence.holds(peer):
            return
        status = with_questions(peer.status, any(owner_of(q) == peer_id for q in self.opened.values()))
        if status is not None:
            self.hub.presence.set(peer, status)

    # ---- deciding ----------------------------------------------------------------------------

    async def answer(self, sender: Sender, qid: str, *, decision: str | None = None, option_id: str | None = None,
                     reason: str | None = None, expected_hash: str | None = None, scope: str = ONCE,
                     prefix: str | None = None) -> DecisionView:
        """A person decides. Agents may not: only the operator or a `person` peer. An allow with
        a scope (`session`, `always`) also leaves a rule, so the next such call is not asked."""
        if not sender.is_person:
            raise HubError(ErrorCode.FORBIDDEN, "only a person (the dashboard, the CLI with the hub token, or a peer "
                           "with the person role) may answer a tool-permission question")
        record = self.opened.get(qid) or await self.read(qid)
        who = sender.ref
        if record.get("kind") == CHOICE:
            if scope != ONCE or prefix is not None:
                raise HubError(ErrorCode.INVALID_REQUEST, "a plain question is answered once: no scope or prefix",
                               {"scope": scope})
            chosen = None
            option_id = choice_of(record["options"], option_id, decision)
        else:
            chosen = decision_of(record["options"], option_id, decision)
            check_scope(record, chosen, scope, prefix)
        said = chosen or f"option {option_id}"
        outcome = {"decision": chosen, "answered_by": HUMAN, "decided_at": self.hub.now_ms(), "option_id": option_id,
                   "by": who, "reason": reason or f"{said} by {who['name']}"}
        if scope != ONCE:
            # the rule is written first: once the agent's hook hears `allow`, its next call finds it
            if expected_hash is not None and expected_hash != record["content_hash"]:
                raise not_what_was_shown(qid)
            rule = await self.policies.save_scoped(sender, scope, record, prefix, self.policy.session_rule_ttl_s)
            outcome.update(scope=scope, policy_id=rule["id"])
            try:
                return await self._decide(record, outcome, expected_hash)
            except HubError:
                await self.policies.delete(sender, rule["id"])   # the answer came too late: no rule either
                raise
        return await self._decide(record, outcome, expected_hash)

    async def _expire(self, qid: str) -> int | None:
        """The deadline passed with nobody deciding: deny."""
        try:
            record = await self.store.read(qid)
            if record is None or record["state"] != PENDING:
                # decided elsewhere (another node): whoever waits here gets that decision now
                self._close(qid)
                self._resolve(qid, decision_view(record) if record is not None
                              else error_view(qid, "the question is gone"))
                return None
            outcome = default_outcome(record.get("kind") == CHOICE, record.get("default"))
            await self._decide(record, {**outcome, "answered_by": TIMEOUT, "decided_at": self.hub.now_ms(),
                                        "reason": "timeout"}, None)
        except HubError as exc:
            if exc.code is ErrorCode.STORE_UNAVAILABLE:
                return self.hub.now_ms() + RETRY_MS
            log.info("deadline of question %s: %s", qid, exc.message)
        return None

    async def _decide(self, record: dict, decision: dict, expected_hash: str | None) -> DecisionView:
        hub = self.hub
        qid = record["correlation_id"]
        (outcome,) = await self.state.writer.write(self.store.decide_cmd(qid, expected_hash, decision,
                                                                        self._final_stage(decision, hub.now_ms())))
        answer = parse_decide(outcome)
        if answer.status != "mismatch":
            self._close(qid)  # decided now, before, or gone
        refusal = on_decide_answer(qid, answer.status, answer.answered_by)
        if refusal is not None:
            raise refusal
        self.deadlines.forget(qid)
        view = decision_view({"correlation_id": qid, **decision})
        hub.metrics.question_decided(decision["answered_by"],
                                     (int(decision["decided_at"]) - int(record["created_at"])) / 1000)
        self._resolve(qid, view)
        self._tell_people(QuestionDecided(**msgspec.structs.asdict(view)))
        await self.state.writer.write(self.store.unindex_cmd(qid), self.store.audit_cmd(self._audit_entry(record, decision)))
        return view

    def _final_stage(self, decision: dict, now: int) -> TraceStage:
        stage = {HUMAN: Stage.ANSWERED, POLICY: Stage.ANSWERED, FALLBACK: Stage.ANSWERED,
                 TIMEOUT: Stage.EXPIRED}.get(decision["answered_by"], Stage.FAILED)
        by = decision.get("by")
        return stage_entry(stage, now, self.hub.node, decision=decision.get("decision"),
                           option_id=decision.get("option_id"), answered_by=decision["answered_by"],
                           by=by["peer_id"] if by else None, rule_id=decision.get("rule_id"), scope=decision.get("scope"),
                           reason=decision["reason"])

    @staticmethod
    def _audit_entry(record: dict, decision: dict) -> dict:
        entry = {"correlation_id": record["correlation_id"], "trace_id": record["correlation_id"],
                 "tool_name": record.get("tool_name"), "title": record.get("title"),
                 "peer": record.get("peer") or record.get("asker"), "decision": decision.get("decision"),
                 "option_id": decision.get("option_id"), "answered_by": decision["answered_by"],
                 "reason": decision["reason"], "at": decision["decided_at"], "by": decision.get("by"),
                 "rule_id": decision.get("rule_id"), "scope": decision.get("scope"),
                 "policy_id": decision.get("policy_id")}
        return {k: v for k, v in entry.items() if v is not None}

    def _resolve(self, qid: str, view: DecisionView) -> None:
        """Every caller waiting on this node for the question gets its decision."""
        for future in self.waiters.pop(qid, []):
            if not future.done():
                future.set_result(view)

    def _tell_people(self, frame: QuestionOpened | QuestionDecided) -> None:
        """`question` and `question_decided` frames to the people connected to this node, to
        the other nodes (for theirs), and to every dashboard through the event stream."""
        data = encode(frame)
        kind = "question" if isinstance(frame, QuestionOpened) else "question_decided"
        fields = msgspec.structs.asdict(frame)
        now, node = self.hub.now_ms(), self.hub.node
        self.hub.events.record(QuestionShown(**fields, node=node, at=now) if isinstance(frame, QuestionOpened)
                              else QuestionSettled(**fields, node=node, at=now))
        told = self.state.publish_cmd(kind, data)
        if told:
            self.state.writer.submit(told, wait=False)
        self._push_to_people(data)

    def heard_from_node(self, data: bytes) -> None:
        """Another node opened or decided a question (the node bus): track its deadline, or
        answer whoever waits here for it; tell the people connected here either way."""
        frame = decode_hub_frame(data)
        if not isinstance(frame, QuestionOpened | QuestionDecided):
            raise ValueError(f"a {type(frame).__name__} frame on the questions' bus channel")
        qid = frame.correlation_id
        if isinstance(frame, QuestionOpened):
            self.deadlines.track(qid, frame.deadline)
        else:
            self.deadlines.forget(qid)
            self._close(qid)
            self._resolve(qid, DecisionView(**{name: getattr(frame, name) for name in DecisionView.__struct_fields__}))
        self._push_to_people(data)

    async def catch_up(self) -> None:
        """After the node bus was away: questions decided elsewhere meanwhile answer their
        callers here."""
        for record in await self.store.read_many(list(self.waiters)):
            if record["state"] != PENDING:
                self.deadlines.forget(record["correlation_id"])
                self._close(record["correlation_id"])
                self._resolve(record["correlation_id"], decision_view(record))

    def _push_to_people(self, data: bytes) -> None:
        for conn in self.hub.person_connections():
            conn.push(data)

    # ---- reading -----------------------------------------------------------------------------

    async def read(self, qid: str) -> dict:
        record = await self.store.read(qid) if is_hex128(qid) else None
        if record is None:
            raise HubError(ErrorCode.QUESTION_NOT_FOUND, f"no tool-permission question {qid}", {"correlation_id": qid})
        return record

    async def get(self, reader: Sender, qid: str) -> QuestionView:
        record = await self.read(qid)
        if not self._may_read(reader, record):
            raise HubError(ErrorCode.FORBIDDEN, "an agent reads its own tool-permission questions only",
                           {"correlation_id": qid})
        return self.public(record)

    async def list_pending(self, reader: Sender, limit: int) -> list[QuestionView]:
        """Waiting questions, soonest deadline first: every one for a person, an agent's own
        for an agent (another agent's tool input is not its to read)."""
        scan = limit if reader.is_person else MAX_PENDING_SCAN
        pending = await self.store.pending(scan)
        records = await self.store.read_many([qid for qid, _ in pending])
        mine = [r for r in records if r["state"] == PENDING and self._may_read(reader, r)]
        return [self.public(r) for r in mine[:limit]]

    @staticmethod
    def _may_read(reader: Sender, record: dict) -> bool:
        if reader.is_person:
            return True
        assert reader.peer is not None
        me = reader.peer.peer_id
        return (record.get("peer") or {}).get("peer_id") == me or record["asker"]["peer_id"] == me

    @staticmethod
    def public(record: Mapping[str, Any]) -> QuestionView:
        """A question as people see it, from its stored record."""
        fields = {name: record[name] for name in QUESTION_FIELDS if record.get(name) is not None}
        if record.get("decided_at"):
            fields["decided_at"] = int(record["decided_at"])
        return msgspec.convert({"correlation_id": record["correlation_id"], "trace_id": record["correlation_id"],
                                "kind": record.get("kind") or TOOL_PERMISSION, "state": record["state"],
                                "content_hash": record["content_hash"], "created_at": int(record["created_at"]),
                                "deadline": int(record["deadline"]), "tool_input": record.get("tool_input") or {},
                                "session_id": record.get("session_id") or "", "options": record.get("options") or [],
                                **fields}, QuestionView)

    async def decisions(self, *, peer: str | None, decision: str | None, limit: int,
                        tool: str | None = None) -> list[DecisionRecord]:
        """The audit log, newest first, filtered; scans at most SCAN_MAX entries."""
        found: list[dict] = []
        cursor = "+"
        scanned = 0
        while len(found) < limit and scanned < SCAN_MAX:
            rows = await self.store.decisions(cursor, 500)
            if not rows:
                break
            for entry_id, entry in rows:
                cursor = entry_id
                scanned += 1
                who = entry.get("peer") or {}
                if peer is not None and peer not in (who.get("peer_id"), who.get("name"),
                                                     f"{who.get('name')}@{who.get('circle')}"):
                    continue
                if decision is not None and entry.get("decision") != decision:
                    continue
                if tool is not None and entry.get("tool_name") != tool:
                    continue
                found.append(entry)
                if len(found) == limit:
                    break
        return msgspec.convert(found, list[DecisionRecord])
