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
import posixpath
from dataclasses import dataclass
from typing import Any

import orjson

from hub.core.errors import HubError
from hub.core.shell import shell_matches
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
    fallback: str = DENY           # what a question gets when no person can be reached: deny or ask
    session_rule_ttl_s: int = 24 * 3600   # a "for this session" allow lapses by then at the latest


def content_hash(tool_name: str, tool_input: dict[str, Any]) -> str:
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


def decision_of(options: list[dict[str, Any]], option_id: str | None, decision: str | None) -> str:
    """An answer names an option or a decision directly; either way it comes to allow or deny."""
    if (option_id is None) == (decision is None):
        raise HubError(ErrorCode.INVALID_REQUEST, "answer with exactly one of `decision` (allow or deny) or `option_id`")
    if decision is not None:
        return decision
    for option in options:
        if option["id"] == option_id:
            return str(option["decision"])
    raise HubError(ErrorCode.INVALID_OPTION, f"option_id must be one of {[o['id'] for o in options]}",
                   {"option_id": option_id, "options": [o["id"] for o in options]})


def check_options(options: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
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
    tool_input: dict[str, Any]
    cwd: str | None
    peer_name: str | None
    peer_id: str | None
    circle: str | None
    session_id: str = ""


def _field(tool_input: dict[str, Any], path: str) -> Any:
    value: Any = tool_input
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _glob(pattern: str, value: str | None, *, guard_shell: bool) -> bool:
    if value is None:
        return False
    if guard_shell and any(op in value and op not in pattern for op in SHELL_OPERATORS):
        return False
    return fnmatch.fnmatchcase(value, pattern)


def inside(cwd: str | None, value: object) -> bool:
    """A path (relative ones from `cwd`) that resolves under `cwd` without following links;
    an absent value stands for `cwd` itself, and `~…` is never inside."""
    if value is None:
        return cwd is not None
    if not isinstance(value, str) or not cwd or not cwd.startswith("/") or "\0" in value or value.startswith("~"):
        return False   # `~` may mean a home folder to the tool: never inside
    root = posixpath.normpath(cwd)
    path = posixpath.normpath(posixpath.join(root, value))
    return path == root or path.startswith(root.rstrip("/") + "/")


def starts_with_words(command: object, prefix: str, *, guard_shell: bool) -> bool:
    """`command` is `prefix`, or `prefix` followed by a space and more (`npm test` matches
    `npm test -- -k x`, never `npm tests`); never one with a shell operator the prefix lacks."""
    if not isinstance(command, str):
        return False
    if guard_shell and any(op in command and op not in prefix for op in SHELL_OPERATORS):
        return False
    return command == prefix or command.startswith(prefix + " ")


def content_matches(rule: dict[str, Any], call: ToolCall) -> bool:
    """A rule made for one exact call matches that call only."""
    return bool(content_hash(call.tool_name, call.tool_input) == rule["content_hash"])


def rule_matches(rule: dict[str, Any], call: ToolCall) -> bool:
    allow = rule["action"] == ALLOW
    if not _glob(rule.get("tool") or "*", call.tool_name, guard_shell=False):
        return False
    if rule.get("session_id") and rule["session_id"] != call.session_id:
        return False
    if rule.get("content_hash") and not content_matches(rule, call):
        return False
    if any(not inside(call.cwd, _field(call.tool_input, path)) for path in rule.get("inside_cwd") or ()):
        return False
    if rule.get("shell") and not shell_matches(rule["shell"], call.tool_input.get("command"), call.cwd):
        return False
    if rule.get("command_prefix") and not starts_with_words(call.tool_input.get("command"), rule["command_prefix"],
                                                            guard_shell=allow):
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
    return not (rule.get("circle") and not _glob(rule["circle"], call.circle, guard_shell=False))


def ordered(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest priority first; among equals, the older rule first."""
    return sorted(rules, key=lambda r: (-r.get("priority", 0), r.get("created_at", 0), r["id"]))


def live(rule: dict[str, Any], now_ms: int) -> bool:
    return not rule.get("expires_at") or rule["expires_at"] > now_ms


def evaluate(rules: list[dict[str, Any]], call: ToolCall, now_ms: int = 0, preset: tuple[dict[str, Any], ...] = ()) -> tuple[str, dict[str, Any] | None]:
    """(action, the rule that decided) - `ask` with no rule when nothing matched. The person's
    rules (those not lapsed) are tried first, then the preset's."""
    for rule in [*ordered([r for r in rules if live(r, now_ms)]), *ordered(list(preset))]:
        if rule_matches(rule, call):
            return rule["action"], rule
    return ASK, None


# ---- scoped answers: an allow that becomes a rule ----------------------------------------------

ONCE, SESSION, ALWAYS = "once", "session", "always"
GLOB_SPECIALS = "*?["


def glob_literal(text: str) -> str:
    """A glob that matches `text` itself: each special character in a class of its own."""
    return "".join(f"[{c}]" if c in GLOB_SPECIALS else c for c in text)


def command_prefix(command: str) -> str:
    """The part of a shell command an "always allow" keeps by default: the program and, unless
    it is an option or a path, its first argument (`npm test`, `git status`, `pytest`)."""
    words = command.split()
    if not words:
        return ""
    if len(words) > 1 and not words[1].startswith(("-", "/", ".", "~")) and "=" not in words[1]:
        return f"{words[0]} {words[1]}"
    return words[0]


def check_scope(question: dict[str, Any], chosen: str, scope: str, prefix: str | None) -> None:
    """A scope widens an allow of a question that names an agent (and, for `session`, a
    session); `prefix` goes with `always` only."""
    if scope == ONCE:
        if prefix is not None:
            raise HubError(ErrorCode.INVALID_REQUEST, "prefix goes with scope `always`", {"prefix": prefix})
        return
    if chosen != ALLOW:
        raise HubError(ErrorCode.INVALID_REQUEST, "a scope widens an allow; a deny is for this call only",
                       {"scope": scope})
    if not question.get("peer"):
        raise HubError(ErrorCode.INVALID_REQUEST, "this question names no agent, so there is no agent to allow "
                       "for longer", {"scope": scope})
    if scope == SESSION and prefix is not None:
        raise HubError(ErrorCode.INVALID_REQUEST, "prefix goes with scope `always`; `session` allows this exact "
                       "call", {"prefix": prefix})
    if scope == SESSION and not question.get("session_id"):
        raise HubError(ErrorCode.INVALID_REQUEST, "this question names no session, so it cannot be allowed for "
                       "the rest of one", {"scope": scope})


def scoped_rule(scope: str, question: dict[str, Any], agent: dict[str, Any], prefix: str | None, now_ms: int,
                session_ttl_s: int) -> dict[str, Any]:
    """The rule an allow with a scope leaves behind (without id and times): `session` allows
    this exact call again in this session of this agent; `always` allows this tool (a Bash
    command starting with `prefix`) for this agent."""
    origin = {"scope": scope, "question_id": question["correlation_id"], "peer": agent["peer_id"]}
    if scope == SESSION:
        return {**origin, "action": ALLOW, "tool": glob_literal(question["tool_name"]),
                "content_hash": question["content_hash"], "session_id": question.get("session_id", ""),
                "expires_at": now_ms + session_ttl_s * 1000,
                "reason": f"allowed for the rest of session {question.get('session_id') or '?'} by a person"}
    rule = {**origin, "action": ALLOW, "tool": glob_literal(question["tool_name"]),
            "reason": f"always allowed for {agent['name']} by a person"}
    command = question["tool_input"].get("command")
    if question["tool_name"] == "Bash" and isinstance(command, str):
        kept = (prefix if prefix is not None else command_prefix(command)).strip()
        if not kept or not command.startswith(kept):
            raise HubError(ErrorCode.INVALID_REQUEST, "prefix must be the start of the command that was asked",
                           {"prefix": prefix, "command": command[:200]})
        rule["command_prefix"] = kept
        rule["reason"] = f"always allowed for {agent['name']}: commands starting {kept!r}"
    elif prefix is not None:
        raise HubError(ErrorCode.INVALID_REQUEST, "prefix is for Bash commands; other tools are allowed whole",
                       {"tool_name": question["tool_name"]})
    return rule
