"""Policy rules at run time: people manage them, anyone may ask what they would decide.

Rules live in the store (one hash, read on every evaluation, so all hub nodes agree); the
matching itself is `hub.core.approvals.evaluate`. After the person's rules come the rules of
the approval preset in force (`hub.core.presets`; its name is one store key). Only a person
(the hub token or a `person` peer) may add, change or remove a rule or choose the preset: an
agent must not be able to allow itself. A person's scoped allow (`session`, `always`) is
saved here as a rule that says where it came from; the rules of a session go when it ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import msgspec

from hub.core.approvals import ToolCall, evaluate, live, ordered, scoped_rule
from hub.core.errors import HubError
from hub.core.peers import PeerRecord
from hub.core.presets import DEFAULT, NAMES, PRESETS, Preset
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.store.questions import QuestionStore
from hub.store.state import StoreState
from schemas.errors import ErrorCode
from schemas.rest import Evaluation, PolicyView, PresetView

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Matched:
    """What the rules decided for one call: `ask` with no rule when none matched; `preset`
    names the preset when the rule that decided is one of its rules."""
    action: str
    rule: dict | None
    subject: PeerRecord | None
    preset: str | None


def preset_named(name: str | None) -> Preset:
    """The preset the store names; the default when it names none (or one this hub does not know)."""
    return PRESETS[name if name in NAMES else DEFAULT]


class PolicyService:
    def __init__(self, hub: Hub, state: StoreState, store: QuestionStore, max_policies: int):
        self.hub = hub
        self.state = state   # the shared store's writer
        self.store = store
        self.max_policies = max_policies

    @staticmethod
    def _check_person(sender: Sender) -> None:
        if not sender.is_person:
            raise HubError(ErrorCode.FORBIDDEN, "only a person (the hub token, or a peer with the person role) may "
                           "change policies")

    async def list(self) -> list[dict]:
        """The person's rules that have not lapsed, in the order they are tried (lapsed ones
        are removed as they are found)."""
        now = self.hub.now_ms()
        rules = await self.store.policies()
        lapsed = [r["id"] for r in rules if not live(r, now)]
        if lapsed:
            self.state.writer.submit([self.store.delete_policy_cmd(rid) for rid in lapsed], wait=False)
        return ordered([r for r in rules if live(r, now)])

    async def preset(self) -> Preset:
        return preset_named(await self.store.preset())

    async def choose_preset(self, sender: Sender, name: str) -> Preset:
        self._check_person(sender)
        await self.state.writer.write(self.store.save_preset_cmd(name))
        log.info("approval preset is now %s", name)
        return PRESETS[name]

    @staticmethod
    def preset_view(preset: Preset) -> PresetView:
        return msgspec.convert({"name": preset.name, "summary": preset.summary, "rules": ordered(list(preset.rules))},
                               PresetView)

    @staticmethod
    def view(rule: dict[str, Any]) -> PolicyView:
        """A stored rule as REST shows it."""
        return msgspec.convert(rule, PolicyView)

    async def create(self, sender: Sender, rule: dict) -> dict:
        self._check_person(sender)
        return await self._save_new(rule)

    async def _save_new(self, rule: dict) -> dict:
        if await self.store.policy_count() >= self.max_policies:
            raise HubError(ErrorCode.TOO_MANY_POLICIES, f"the hub holds at most {self.max_policies} policy rules",
                           {"limit": self.max_policies})
        now = self.hub.now_ms()
        saved = {**rule, "id": self.hub.ids.next(now), "created_at": now, "updated_at": now}
        await self.state.writer.write(self.store.save_policy_cmd(saved))
        return saved

    async def save_scoped(self, sender: Sender, scope: str, question: dict, prefix: str | None,
                          session_ttl_s: int) -> dict:
        """The rule a person's scoped allow leaves (the caller checked they are a person)."""
        agent = question.get("peer") or question["asker"]
        rule = scoped_rule(scope, question, agent, prefix, self.hub.now_ms(), session_ttl_s)
        return await self._save_new({**rule, "by": sender.ref})

    async def drop_session(self, peer_id: str) -> int:
        """The agent's session ended: the allows given for the rest of it go (an agent has one
        session at a time)."""
        gone = [r["id"] for r in await self.store.policies() if r.get("scope") == "session" and r.get("peer") == peer_id]
        if gone:
            await self.state.writer.write(*[self.store.delete_policy_cmd(rid) for rid in gone])
        return len(gone)

    async def replace(self, sender: Sender, policy_id: str, rule: dict) -> dict:
        self._check_person(sender)
        current = await self._find(policy_id)
        saved = {**rule, "id": policy_id, "created_at": current["created_at"], "updated_at": self.hub.now_ms()}
        await self.state.writer.write(self.store.save_policy_cmd(saved))
        return saved

    async def delete(self, sender: Sender, policy_id: str) -> None:
        self._check_person(sender)
        (removed,) = await self.state.writer.write(self.store.delete_policy_cmd(policy_id))
        if not removed:
            raise self._not_found(policy_id)

    async def _find(self, policy_id: str) -> dict:
        rule = await self.store.policy(policy_id)
        if rule is None:
            raise self._not_found(policy_id)
        return rule

    @staticmethod
    def _not_found(policy_id: str) -> HubError:
        return HubError(ErrorCode.POLICY_NOT_FOUND, f"no policy rule {policy_id}", {"id": policy_id})

    async def match(self, sender: Sender, tool_name: str, tool_input: dict, cwd: str | None,
                    peer_ref: str | None, session_id: str = "") -> Matched:
        """What the rules say of a call for an agent: the peer named by `peer_ref`, else the
        caller (None for the operator)."""
        subject = self.hub.find_peer(peer_ref, sender) if peer_ref else sender.peer
        if sender.peer is not None and subject is not None and subject.peer_id != sender.peer.peer_id:
            raise HubError(ErrorCode.FORBIDDEN, "an agent asks about its own tool calls only: leave out `peer`, "
                           "or name yourself", {"peer": peer_ref})
        call = ToolCall(tool_name, tool_input, cwd, subject.name if subject else None,
                        subject.peer_id if subject else None, subject.circle if subject else None, session_id)
        rules, preset_name = await self.store.rules()
        preset = preset_named(preset_name)
        action, rule = evaluate(rules, call, self.hub.now_ms(), preset.rules)
        return Matched(action, rule, subject, preset.name if rule is not None and rule in preset.rules else None)

    async def evaluate(self, sender: Sender, tool_name: str, tool_input: dict, cwd: str | None,
                       peer_ref: str | None) -> Evaluation:
        matched = await self.match(sender, tool_name, tool_input, cwd, peer_ref)
        action, rule = matched.action, matched.rule
        if rule is None:
            return msgspec.convert({"action": action, "reason": "no rule matched: a person is asked"}, Evaluation)
        return msgspec.convert({"action": action, "rule": rule, "preset": matched.preset,
                                "reason": rule.get("reason") or f"policy {rule['id']} says {action}"}, Evaluation)
