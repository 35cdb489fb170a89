"""`repowire hook pretooluse`: Claude Code's PreToolUse hook, which asks the hub whether a tool
call may run and fails closed.

Claude Code runs the hook with the tool call as JSON on stdin and reads the decision from
stdout. A hook that crashes or outlives its timeout is a *non-blocking* error to Claude Code,
and the tool would run; so this program decides `deny` on every path that is not a clear
`allow` from the hub (hub unreachable, no token, a non-2xx answer, a malformed answer, its own
deadline, any exception), and it prints that decision before its own hard deadline, which is
`LOCAL_MARGIN_S` before the hook timeout Claude Code was given. The hub in turn decides `deny`
a margin before that (the request carries `hook_timeout_s`): fail closed twice.

Output: `{"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": ...,
"permissionDecisionReason": ...}}` on stdout; exit 0 for allow, and for `ask` (the hub found no
person to ask and its fallback hands the call to Claude Code's own permission prompt); for deny
exit 2 with the reason on stderr as well (Claude Code blocks the call on exit 2 whatever
stdout says).

The question is the agent's own: the hook acts with the session's credential (found by the
`session_id` of the payload in the session's file, written by the SessionStart hook), on the
hub that session joined. A session the hub does not know asks with the hub token, and its
question names no agent.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from transports import hub_http, lean_json
from transports.discovery import find_hub, find_token
from transports.session_files import SessionFile

DEFAULT_TIMEOUT_S = 60.0     # Claude Code's default timeout for a command hook
LOCAL_MARGIN_S = 2.0         # the hook prints its decision this long before its timeout
TIMEOUT_ENV = "REPOWIRE_HOOK_TIMEOUT"
EXIT_ALLOW, EXIT_DENY = 0, 2


def hook_output(decision: str, reason: str) -> bytes:
    return lean_json.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": decision,
                                                "permissionDecisionReason": reason}})


def ask_hub(payload: bytes, timeout_s: float, deadline: float, home: str | None = None) -> tuple[str, str]:
    """(decision, reason) for one PreToolUse payload; `deny` with the reason on any failure."""
    try:
        event = lean_json.loads(payload)
    except lean_json.JSONDecodeError:
        return "deny", "repowire: the hook input is not JSON"
    if not isinstance(event, dict) or not isinstance(event.get("tool_name"), str) or not event["tool_name"]:
        return "deny", "repowire: the hook input has no tool_name"
    tool_input = event.get("tool_input") if event.get("tool_input") is not None else {}
    if not isinstance(tool_input, dict):
        return "deny", "repowire: the hook input's tool_input is not an object"
    session_id = str(event.get("session_id") or "")
    session = SessionFile.of_session_id(home, session_id) if session_id else None
    if session is not None and session.token:
        # the session's own credential, on the hub it joined: the question is the agent's
        token: str | None = session.token
        address = session.hub_address() or find_hub(home)
    else:
        token, address = find_token(home), find_hub(home)
    if not token:
        return "deny", "repowire: no hub token (set REPOWIRE_TOKEN or run `repowire serve` once)"
    request = {"tool_name": event["tool_name"], "tool_input": tool_input,
               "tool_use_id": str(event.get("tool_use_id") or os.urandom(16).hex()),
               "session_id": str(event.get("session_id") or ""), "hook_timeout_s": timeout_s}
    if isinstance(event.get("cwd"), str):
        request["cwd"] = event["cwd"]
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return "deny", "repowire: no time left to ask the hub"
    try:
        status, body = hub_http.request(address, token, "POST", "/questions/ask-blocking", request, timeout=remaining)
    except OSError as exc:
        return "deny", f"repowire: the hub at {address.uds or address.http_url} did not answer ({exc.__class__.__name__})"
    try:
        answer = lean_json.loads(body)
    except lean_json.JSONDecodeError:
        return "deny", f"repowire: the hub answered {status} without JSON"
    if status != 200:
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        return "deny", f"repowire: the hub refused ({status} {error.get('code', '')}: {error.get('message', '')})"
    if not isinstance(answer, dict) or answer.get("decision") not in ("allow", "deny", "ask"):
        return "deny", "repowire: the hub's answer has no decision"
    reason = answer.get("reason") if isinstance(answer.get("reason"), str) else ""
    who = answer.get("answered_by", "?")
    return answer["decision"], f"repowire: {answer['decision']} ({who}): {reason}".rstrip(": ")


class _Once:
    """Writes the decision exactly once, whichever comes first: the answer or the deadline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = threading.Event()

    def emit(self, decision: str, reason: str) -> None:
        with self._lock:
            if self.done.is_set():
                return
            # `ask` (no person could be reached, and the hub hands the call back to Claude Code's
            # own permission prompt) is an answer like allow: exit 0, Claude Code asks its user
            decision = decision if decision in ("allow", "ask") else "deny"
            code = EXIT_DENY if decision == "deny" else EXIT_ALLOW
            try:
                sys.stdout.buffer.write(hook_output(decision, reason) + b"\n")
                sys.stdout.flush()
                if code == EXIT_DENY:
                    sys.stderr.write(reason + "\n")
                    sys.stderr.flush()
            finally:
                self.done.set()
                os._exit(code)


def run(timeout_s: float | None = None, home: str | None = None) -> int:
    """The whole hook: never returns normally; exits 0 (allow) or 2 (deny)."""
    once = _Once()
    started = time.monotonic()
    try:
        timeout_s = timeout_s or float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    except ValueError:
        timeout_s = DEFAULT_TIMEOUT_S
    deadline = started + max(timeout_s - LOCAL_MARGIN_S, min(timeout_s / 2, 0.5))

    def work() -> None:
        try:
            payload = sys.stdin.buffer.read()
            once.emit(*ask_hub(payload, timeout_s, deadline, home))
        except BaseException as exc:  # every failure is a deny, never a crash
            once.emit("deny", f"repowire: the hook failed ({exc.__class__.__name__})")

    threading.Thread(target=work, name="ask-hub", daemon=True).start()
    once.done.wait(max(deadline - time.monotonic(), 0))
    once.emit("deny", f"repowire: no decision within {deadline - started:.1f}s")
    return EXIT_DENY
