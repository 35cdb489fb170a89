"""Job backends as data: for each name, the program a path job runs, its argument lists, and how
to read what it prints. Nothing here starts a process (hub.runtime.executors does).

A backend's command is an argument list; the prompt goes to the program's standard input,
never into an argument and never through a shell. `{session}` in the resume arguments is
replaced by the runtime session id, as one whole argument (the `command` backend is told the
session to resume in `REPOWIRE_RESUME_SESSION` instead). A backend with `session_args` can
keep one executor for a job's runs: prompts go in as stream-json user messages on standard
input, one per line, and each run ends with a `result` line.

Readers turn the output, line by line, into progress entries, the runtime session id and the
run's result, for Claude Code's `stream-json`, Codex's `exec --json`, and plain lines (the
`command` backend, for scripts; a line that is a JSON object with `"type": "result"` is read as
Claude Code's would be).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

PROGRESS_TEXT_MAX = 300   # characters of one progress entry
RESULT_TEXT_MAX = 4_000   # characters of a run's result summary
SESSION_PLACEHOLDER = "{session}"
# The environment every executor gets from the hub's own, whatever its backend.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM", "SHELL")


class Stream(StrEnum):
    CLAUDE = "claude-stream-json"
    CODEX = "codex-json"
    LINES = "lines"


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    program: str | None                      # None: the job's own `command` argument list
    args: tuple[str, ...]                    # a fresh run
    resume_args: tuple[str, ...] | None      # a run that continues `{session}`; None: cannot resume
    session_args: tuple[str, ...] | None     # a session executor; None: no session mode
    stream: Stream
    env_prefixes: tuple[str, ...] = ()       # variables of the hub's environment it also gets
    person_only: bool = False                # runs a command the caller names: only a person may

    def argv(self, command: tuple[str, ...] | None, session_id: str | None, *, session_mode: bool) -> list[str]:
        """The argument list of one executor (program first)."""
        if self.program is None:
            assert command, "a command backend's job carries its command"
            return list(command)
        if session_mode:
            assert self.session_args is not None, "checked when the job was made"
            args = self.session_args + (("--resume", session_id) if session_id and self.resume_args else ())
            return [self.program, *args]
        if session_id and self.resume_args is not None:
            return [self.program, *(session_id if a == SESSION_PLACEHOLDER else a for a in self.resume_args)]
        return [self.program, *self.args]


BACKENDS: dict[str, Backend] = {
    "claude": Backend(
        "claude", "claude", args=("-p", "--output-format", "stream-json", "--verbose"),
        resume_args=("-p", "--output-format", "stream-json", "--verbose", "--resume", SESSION_PLACEHOLDER),
        session_args=("-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"),
        stream=Stream.CLAUDE, env_prefixes=("ANTHROPIC_", "CLAUDE_", "DISABLE_")),
    "codex": Backend(
        "codex", "codex", args=("exec", "--json", "--skip-git-repo-check", "-"),
        resume_args=("exec", "resume", "--json", "--skip-git-repo-check", SESSION_PLACEHOLDER, "-"),
        session_args=None, stream=Stream.CODEX, env_prefixes=("OPENAI_", "CODEX_")),
    "command": Backend("command", None, args=(), resume_args=None, session_args=(), stream=Stream.LINES,
                       person_only=True),
}


def session_message(prompt: str) -> bytes:
    """One prompt for a session executor (Claude Code's stream-json input), with its newline."""
    return orjson.dumps({"type": "user", "message": {"role": "user", "content": prompt}}) + b"\n"


def trimmed(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(slots=True)
class RunReading:
    """What one run printed, as read so far."""
    session_id: str | None = None
    result: str | None = None
    is_error: bool = False
    error: str | None = None
    finished: bool = False          # the stream said the run ended (a session executor's turn is over)
    last_lines: list[str] = field(default_factory=list)


class StreamReader:
    """Reads one executor's output lines; `read` returns the progress entries of a line."""

    TAIL = 5

    def __init__(self, stream: Stream):
        self.stream = stream
        self.run = RunReading()

    def start_run(self) -> None:
        """A new run on the same executor (a session executor's next prompt)."""
        self.run = RunReading(session_id=self.run.session_id)

    def summary(self) -> str:
        run = self.run
        if run.result is not None:
            return trimmed(run.result, RESULT_TEXT_MAX)
        return trimmed("\n".join(run.last_lines), RESULT_TEXT_MAX)

    def read(self, line: bytes) -> list[str]:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            return []
        event = _json_object(text)
        if event is None or (self.stream is Stream.LINES and event.get("type") != "result"):
            self._tail(text)   # a plain line (a script's output, or a backend's own that is not an event)
            return [trimmed(text, PROGRESS_TEXT_MAX)]
        if self.stream is Stream.CODEX:
            return self._codex(event)
        return self._claude(event)

    def _tail(self, text: str) -> None:
        self.run.last_lines = [*self.run.last_lines[-(self.TAIL - 1):], text]

    def _claude(self, event: dict[str, Any]) -> list[str]:
        run, kind = self.run, event.get("type")
        if isinstance(event.get("session_id"), str):
            run.session_id = event["session_id"]
        if kind == "result":
            run.finished = True
            run.is_error = bool(event.get("is_error")) or event.get("subtype") not in (None, "success")
            result = event.get("result")
            run.result = result if isinstance(result, str) else None
            if run.is_error:
                run.error = trimmed(str(result or event.get("subtype") or "error"), PROGRESS_TEXT_MAX)
            return []
        if kind != "assistant":
            return []
        out = []
        for block in (event.get("message") or {}).get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and block.get("text"):
                self._tail(block["text"])
                out.append(trimmed(block["text"], PROGRESS_TEXT_MAX))
            elif block.get("type") == "tool_use":
                brief = orjson.dumps(block.get("input") or {}).decode()
                out.append(trimmed(f"tool {block.get('name', '?')} {brief}", PROGRESS_TEXT_MAX))
        return out

    def _codex(self, event: dict[str, Any]) -> list[str]:
        run, kind = self.run, event.get("type")
        if kind == "thread.started" and isinstance(event.get("thread_id"), str):
            run.session_id = event["thread_id"]
        elif kind == "turn.completed":
            run.finished = True
        elif kind in ("turn.failed", "error"):
            run.finished = run.is_error = True
            error: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else event
            run.error = trimmed(str(error.get("message") or kind), PROGRESS_TEXT_MAX)
        elif kind == "item.completed" and isinstance(event.get("item"), dict):
            item = event["item"]
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                run.result = item["text"]
                return [trimmed(item["text"], PROGRESS_TEXT_MAX)]
            if item.get("type") == "command_execution":
                return [trimmed(f"ran {item.get('command', '?')}", PROGRESS_TEXT_MAX)]
        return []


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


RESUME_ENV = "REPOWIRE_RESUME_SESSION"


def executor_env(hub_env: dict[str, str], backend: Backend, extra_names: tuple[str, ...], job_id: str,
                 resume_session: str | None = None) -> dict[str, str]:
    """An executor's environment: the allow-list's variables of the hub's own, nothing else."""
    def allowed(name: str) -> bool:
        return name in BASE_ENV or name in extra_names or name.startswith(backend.env_prefixes)
    env = {k: v for k, v in hub_env.items() if allowed(k) and not k.startswith("REPOWIRE_")}
    env["REPOWIRE_JOB_ID"] = job_id
    if resume_session and backend.program is None:
        env[RESUME_ENV] = resume_session
    return env
