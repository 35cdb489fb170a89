"""The real PreToolUse hook program, run as Claude Code runs it: the installed command, a
Claude Code-shaped payload on stdin, the decision JSON on stdout and the exit code.

Across the fault matrix the hook never allows without an allow from a person or a policy,
and it always answers before its own deadline.
"""

from __future__ import annotations

import http.server
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from hub.cli.claude_settings import hook_command
from tests.support import wait_until
from tests.test_sessions import claude_payload, context_of
from tests.test_sessions import hook as session_hook
from transports.claude_hook import LOCAL_MARGIN_S


@pytest.fixture
def hub(watched_hub):
    """A person watches (`repowire questions --follow`): questions wait for their answer."""
    return watched_hub


def payload(command: str = "npm test", tool_use_id: str | None = None, **extra) -> dict:
    """The shape Claude Code documents for PreToolUse."""
    return {"session_id": "8b1c2d3e-0000-4000-8000-000000000001",
            "transcript_path": "/home/ana/.claude/projects/shop/8b1c2d3e.jsonl",
            "cwd": "/home/ana/src/shop", "permission_mode": "default", "hook_event_name": "PreToolUse",
            "tool_name": "Bash", "tool_input": {"command": command, "description": "Run the tests"},
            "tool_use_id": tool_use_id or f"toolu_{uuid.uuid4().hex[:24]}", **extra}


@dataclass
class HookRun:
    exit_code: int
    output: dict | None
    stderr: str
    elapsed_s: float

    @property
    def decision(self) -> str | None:
        return (self.output or {}).get("hookSpecificOutput", {}).get("permissionDecision")

    @property
    def reason(self) -> str:
        return (self.output or {}).get("hookSpecificOutput", {}).get("permissionDecisionReason", "")


class Hook:
    """The hook as `repowire hooks install` writes it, started like Claude Code starts it."""

    def __init__(self, env: dict[str, str], timeout_s: int):
        self.timeout_s = timeout_s
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("REPOWIRE_")}
        self.env.update(env)
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self, event: dict | bytes) -> Hook:
        self.started = time.monotonic()
        self.process = subprocess.Popen(shlex.split(hook_command(self.timeout_s)), env=self.env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdin is not None
        self.process.stdin.write(event if isinstance(event, bytes) else orjson.dumps(event))
        self.process.stdin.close()
        return self

    def finish(self) -> HookRun:
        assert self.process is not None
        try:
            self.process.wait(self.timeout_s + 10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the hook outlived its timeout") from None
        elapsed = time.monotonic() - self.started
        out = self.process.stdout.read()
        run = HookRun(self.process.returncode, orjson.loads(out) if out.strip() else None,
                      self.process.stderr.read().decode(), elapsed)
        check_contract(run, self.timeout_s)
        return run

    def run(self, event: dict | bytes) -> HookRun:
        return self.start(event).finish()


def check_contract(run: HookRun, timeout_s: float) -> None:
    """What must hold on every path: one well-formed decision, in time, with its exit code."""
    assert run.output is not None, f"no decision printed (stderr: {run.stderr!r})"
    assert set(run.output) == {"hookSpecificOutput"}
    assert set(run.output["hookSpecificOutput"]) == {"hookEventName", "permissionDecision", "permissionDecisionReason"}
    assert run.output["hookSpecificOutput"]["hookEventName"] == "PreToolUse"
    assert run.decision in ("allow", "deny")
    assert run.exit_code == (0 if run.decision == "allow" else 2)
    if run.decision == "deny":
        assert run.reason and run.reason in run.stderr
    assert run.elapsed_s < timeout_s, f"answered after {run.elapsed_s:.1f}s, its timeout is {timeout_s}s"


def hook_for(hub, timeout_s: int = 30, **env) -> Hook:
    return Hook({"REPOWIRE_HOME": str(hub.home), **env}, timeout_s)


def answer_when_listed(hub, tool_use_id: str, decision: str) -> dict:
    def find():
        return next((q for q in hub.get("/questions").json()["questions"] if q["tool_use_id"] == tool_use_id), None)
    question = wait_until(find, 15, "the hook's question")
    response = hub.post(f"/questions/{question['correlation_id']}/answer",
                        {"decision": decision, "content_hash": question["content_hash"], "reason": f"{decision} (test)"})
    assert response.status_code == 200, response.text
    return question


# ---- decisions -------------------------------------------------------------------------------

@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_a_person_decides(hub, decision):
    event = payload()
    hook = hook_for(hub).start(event)
    question = answer_when_listed(hub, event["tool_use_id"], decision)
    run = hook.finish()
    assert run.decision == decision and run.exit_code == (0 if decision == "allow" else 2)
    assert run.reason == f"repowire: {decision} (human): {decision} (test)"
    assert question["tool_input"] == event["tool_input"] and question["cwd"] == event["cwd"]
    assert question["session_id"] == event["session_id"]


@pytest.mark.parametrize("action", ["allow", "deny"])
def test_a_policy_decides(hub, action):
    hub.post("/policies", {"action": action, "tool": "Bash", "input": {"command": "npm test*"}, "reason": "CI rule"})
    run = hook_for(hub).run(payload("npm test -- --watch=false"))
    assert run.decision == action and run.reason == f"repowire: {action} (policy): CI rule"
    assert run.elapsed_s < 5


def test_the_hub_decides_before_the_hook_gives_up(start_hub):
    hub = start_hub("--question-margin", "5", watched=True)
    run = hook_for(hub, timeout_s=8).run(payload())   # hub deadline 8 - 5 = 3 s; hook deadline 8 - 2 = 6 s
    assert run.decision == "deny" and "(timeout)" in run.reason
    assert 2.5 < run.elapsed_s < 8 - LOCAL_MARGIN_S


def test_an_answer_after_the_deadline_is_refused_and_changes_nothing(start_hub):
    hub = start_hub("--question-timeout-max", "1", watched=True)
    event = payload()
    run = hook_for(hub).run(event)
    assert run.decision == "deny" and "(timeout)" in run.reason
    decided = hub.get("/decisions").json()["decisions"][0]
    late = hub.post(f"/questions/{decided['correlation_id']}/answer", {"decision": "allow"})
    assert late.status_code == 410 and late.json()["error"]["code"] == "expired"
    assert hub.get(f"/questions/{decided['correlation_id']}").json()["decision"] == "deny"


# ---- failures: every one is a deny, in time -------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hub_not_running(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "hub.token").write_text("t" * 43)
    run = Hook({"REPOWIRE_HOME": str(home), "REPOWIRE_URL": f"http://127.0.0.1:{free_port()}"}, 30).run(payload())
    assert run.decision == "deny" and "did not answer" in run.reason and run.elapsed_s < 5


def test_no_token(hub, tmp_path):
    run = Hook({"REPOWIRE_HOME": str(tmp_path), "REPOWIRE_URL": hub.url}, 30).run(payload())
    assert run.decision == "deny" and "no hub token" in run.reason
    assert hub.get("/questions").json()["questions"] == []


def test_wrong_token(hub):
    run = hook_for(hub, REPOWIRE_TOKEN="not-the-token").run(payload())
    assert run.decision == "deny" and "401 unauthorized" in run.reason
    assert hub.get("/questions").json()["questions"] == []


def test_hub_killed_while_the_question_is_pending(hub):
    event = payload()
    hook = hook_for(hub).start(event)
    wait_until(lambda: hub.get("/questions").json()["questions"], 15, "the question")
    asked = hub.get("/questions").json()["questions"][0]["correlation_id"]
    hub.kill()
    run = hook.finish()
    assert run.decision == "deny" and "did not answer" in run.reason and run.elapsed_s < 10
    qid = asked
    hub.restart()
    assert hub.get("/questions").json()["questions"] == []   # the call was denied: nothing left to approve
    record = hub.get(f"/questions/{qid}").json()
    assert (record["tool_use_id"], record["state"], record["answered_by"]) == (event["tool_use_id"], "abandoned",
                                                                               "abandoned")
    assert hub.get(f"/traces/{qid}").json()["stages"][-1]["reason"] == "abandoned: hub_restarted"


def test_hub_stopped_with_sigstop(hub):
    os.kill(hub.pid, signal.SIGSTOP)
    try:
        run = hook_for(hub, timeout_s=6).run(payload())
    finally:
        os.kill(hub.pid, signal.SIGCONT)
    assert run.decision == "deny" and ("no decision within 4.0s" in run.reason or "did not answer" in run.reason)
    assert 6 - LOCAL_MARGIN_S - 1 < run.elapsed_s < 6


class _FakeHub(http.server.BaseHTTPRequestHandler):
    """A broken hub: answers every request with the status and body it was given."""
    reply: tuple[int, bytes] = (200, b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, body = self.reply
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, body, why", [
    (200, b"not json at all", "without JSON"),
    (200, b"[]", "has no decision"),
    (200, b'{"decision": "yes"}', "has no decision"),
    (200, b'{"decision": ["allow"]}', "has no decision"),
    (500, b'{"decision": "allow"}', "refused (500"),
    (302, b'{"decision": "allow"}', "refused (302"),
    (503, b'{"error": {"code": "store_unavailable", "message": "down"}}', "refused (503 store_unavailable"),
])
def test_a_malformed_or_failed_reply_is_a_deny(tmp_path, status, body, why):
    handler = type("Reply", (_FakeHub,), {"reply": (status, body)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        run = Hook({"REPOWIRE_HOME": str(tmp_path), "REPOWIRE_URL": url, "REPOWIRE_TOKEN": "x"}, 30).run(payload())
    finally:
        server.shutdown()
        server.server_close()
    assert run.decision == "deny" and why in run.reason


@pytest.mark.parametrize("stdin, why", [
    (b"", "not JSON"), (b"{not json", "not JSON"), (b"[1, 2]", "no tool_name"), (b'{"tool_input": {}}', "no tool_name"),
    (orjson.dumps({**payload(), "tool_input": "rm -rf /"}), "tool_input is not an object"),
])
def test_malformed_hook_input_is_a_deny(hub, stdin, why):
    run = hook_for(hub).run(stdin)
    assert run.decision == "deny" and why in run.reason
    assert hub.get("/questions").json()["questions"] == []


def test_a_bad_command_line_still_blocks(hub):
    """argparse rejects the arguments: exit 2, which Claude Code treats as a block."""
    argv = [*shlex.split(hook_command(30)), "--unknown"]
    done = subprocess.run(argv, input=orjson.dumps(payload()), capture_output=True, timeout=20,
                          env={**os.environ, "REPOWIRE_HOME": str(hub.home)})
    assert done.returncode == 2


def test_the_installed_command_is_absolute():
    program = shlex.split(hook_command(30))[0]
    assert Path(program).is_absolute() and os.access(program, os.X_OK)


def test_over_the_hubs_unix_socket_the_session_asks_as_its_agent(start_hub, tmp_path):
    """The hooks' own HTTP client (transports.hub_http) on the hub's Unix socket, against the
    real uvicorn: the session joined there, and its question is the agent's, so a policy for
    that agent decides it."""
    hub = start_hub("--uds", str(tmp_path / "sock" / "hub.sock"), watched=True)
    start = claude_payload("SessionStart", tmp_path, session_id=payload()["session_id"])
    context_of(session_hook(hub, "session-start", start, agent_pid=os.getpid()))
    session = orjson.loads((hub.home / "sessions" / f"id-{start['session_id']}.json").read_bytes())
    assert session["hub"] == {"url": hub.url, "uds": hub.uds}
    hub.post("/policies", {"action": "allow", "tool": "Bash", "peer": f"{tmp_path.name}-claude"})
    run = hook_for(hub).run(payload())
    check_contract(run, 30)
    assert run.decision == "allow" and "policy" in run.reason
