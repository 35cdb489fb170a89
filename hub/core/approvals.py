"""Tool-permission questions as pure rules: what the question is bound to, how long it may
wait, and how policies decide it.

A question asks whether an agent may run one tool call. It is bound to its content (a digest
of tool name and input), so an answer is always for what was shown. Its deadline is the
shortest of what was asked, the hook's own timeout less a safety margin, and the hub's cap:
the hub decides `deny` (timeout) before the hook gives up, and the hook decides `deny` before
the agent gives up on it. Policies are rules tried highest priority first; the first that
matches decides, and no match means a person is asked.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass

import orjson

from hub.core.errors import HubError
from schemas.errors import ErrorCode

ALLOW, DENY, ASK = "allow", "deny", "ask"
DECISIONS = (ALLOW, DENY)
ACTIONS = (ALLOW, DENY, ASK)
# answered_by
HUMAN, POLICY, TIMEOUT, ERROR = "human", "policy", "timeout", "error"
ABANDONED = "abandoned"   # the hook that asked is gone: denied where it ran, never approvable
PENDING = "pending"
DEFAULT_OPTIONS = ({"id": "allow", "title": "Allow", "decision": ALLOW},
                   {"id": "deny", "title": "Deny", "decision": DENY})

# Characters that chain or redirect shell commands. An `allow` rule's glob never matches a
# value holding one of them unless the pattern itself spells it out, so `git status*` does not
# allow `git status; rm -rf ~` (Claude Code's own permission rules behave the same way).
SHELL_OPERATORS = (";", "&", "|", "`", "$(", ">", "<", "\n", "\r")


@dataclass(frozen=True, slots=True)
class QuestionPolicy:
    max_timeout_s: float = 300.0   # the longest a tool call waits for a person
    margin_s: float = 5.0          # the hub decides this long before the hook's own timeout
    max_policies: int = 1000


def content_hash(tool_name: str, tool_input: dict) -> str:
    """sha256 over the canonical JSON of tool name and input (keys sorted)."""
    canonical = orjson.dumps({"tool_name": tool_name, "tool_input": tool_input}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def question_id(owner: str, session_id: str, tool_use_id: str) -> str:
    """The same tool call asked twice (a retried hook) maps to the same question."""
    return hashlib.sha256(f"{owner}\0{session_id}\0{tool_use_id}".encode()).hexdigest()[:32]


def question_deadline(now_ms: int, requested_s: float | None, hook_timeout_s: float | None,
                      policy: QuestionPolicy) -> int:
    """min(requested, hook timeout - margin, cap). May be `now_ms` or earlier: no time to ask."""
    limits = [policy.max_timeout_s]
    if requested_s is not None:
        limits.append(requested_s)
    if hook_timeout_s is not None:
        limits.append(hook_timeout_s - policy.margin_s)
    return now_ms + int(min(limits) * 1000)


def decision_of(options: list[dict], option_id: str | None, decision: str | None) -> str:
    """An answer names an option or a decision directly; either way it comes to allow or deny."""
    if (option_id is None) == (decision is None):
        raise HubError(ErrorCode.INVALID_REQUEST, "answer with exactly one of `decision` (allow or deny) or `option_id`")
    if decision is not None:
        return decision
    for option in options:
        if option["id"] == option_id:
            return option["decision"]
    raise HubError(ErrorCode.INVALID_OPTION, f"option_id must be one of {[o['id'] for o in options]}",
                   {"option_id": option_id, "options": [o["id"] for o in options]})


def check_options(options: list[dict] | None) -> list[dict]:
    if not options:
        return [dict(o) for o in DEFAULT_OPTIONS]
    ids = [o["id"] for o in options]
    if len(set(ids)) != len(ids):
        raise HubError(ErrorCode.INVALID_REQUEST, "option ids must be unique", {"options": ids})
    return options


# ---- policies --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a policy looks at."""
    tool_name: str
    tool_input: dict
    cwd: str | None
    peer_name: str | None
    peer_id: str | None
    circle: str | None


def _field(tool_input: dict, path: str):
    value = tool_input
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _as_text(value) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _glob(pattern: str, value: str | None, *, guard_shell: bool) -> bool:
    if value is None:
        return False
    if guard_shell and any(op in value and op not in pattern for op in SHELL_OPERATORS):
        return False
    return fnmatch.fnmatchcase(value, pattern)


def rule_matches(rule: dict, call: ToolCall) -> bool:
    allow = rule["action"] == ALLOW
    if not _glob(rule.get("tool") or "*", call.tool_name, guard_shell=False):
        return False
    for path, pattern in (rule.get("input") or {}).items():
        value = _field(call.tool_input, path)
        if value is None or not _glob(pattern, _as_text(value), guard_shell=allow):
            return False
    if rule.get("cwd") and not _glob(rule["cwd"], call.cwd, guard_shell=False):
        return False
    if rule.get("peer") and not (_glob(rule["peer"], call.peer_name, guard_shell=False)
                                 or _glob(rule["peer"], call.peer_id, guard_shell=False)):
        return False
    if rule.get("circle") and not _glob(rule["circle"], call.circle, guard_shell=False):
        return False
    return True


def ordered(rules: list[dict]) -> list[dict]:
    """Highest priority first; among equals, the older rule first."""
    return sorted(rules, key=lambda r: (-r.get("priority", 0), r.get("created_at", 0), r["id"]))


def evaluate(rules: list[dict], call: ToolCall) -> tuple[str, dict | None]:
    """(action, the rule that decided) - `ask` with no rule when nothing matched."""
    for rule in ordered(rules):
        if rule_matches(rule, call):
            return rule["action"], rule
    return ASK, None
