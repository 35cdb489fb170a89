"""Jobs as pure rules (hub.core.jobs, hub.core.backends): the execution policy's defaults and
refusals, the backend table's argument lists and environments, the stream readers, and the
full and summary views. No processes, no store."""

from __future__ import annotations

import orjson
import pytest

from hub.core.backends import BACKENDS, RESUME_ENV, Stream, StreamReader, executor_env, session_message
from hub.core.errors import HubError
from hub.core.jobs import JobPolicy, JobSpec, spec_of, view, work_id_of_fire
from hub.store import keys
from schemas.rest import JobRequest

POLICY = JobPolicy()
PEER = "ab" * 16
OWNER = {"peer_id": "cd" * 16, "name": "lead", "circle": "default"}


def spec(is_person: bool = True, **fields) -> JobSpec:
    return spec_of(JobRequest(prompt="do it", **fields), peer_id=PEER if "peer" in fields else None,
                   is_person=is_person, policy=POLICY)


def refusal(**fields) -> HubError:
    with pytest.raises(HubError) as caught:
        spec(**fields)
    return caught.value


# ---- the execution policy ----------------------------------------------------------------------

def test_defaults_follow_the_execution_policy():
    once = spec(path="/srv/app", backend="claude")
    assert (once.process_scope, once.continuity) == ("per_fire", "fresh")
    recurring = spec(path="/srv/app", backend="claude", cron="0 9 * * *")
    assert (recurring.process_scope, recurring.continuity) == ("per_fire", "resume")
    fresh = spec(path="/srv/app", backend="claude", cron="0 9 * * *", continuity="fresh")
    assert fresh.continuity == "fresh"
    session = spec(path="/srv/app", backend="claude", process_scope="session")
    assert (session.process_scope, session.continuity) == ("session", "fresh")
    for_peer = spec(peer="reviewer")
    assert (for_peer.peer, for_peer.process_scope, for_peer.continuity) == (PEER, None, None)
    assert spec(path="/srv/app/../app/", backend="claude").path == "/srv/app"


@pytest.mark.parametrize(("fields", "code", "words"), [
    ({"peer": "bob", "path": "/srv", "backend": "claude"}, "invalid_request", "not both"),
    ({}, "invalid_request", "needs a target"),
    ({"path": "/srv"}, "invalid_request", "needs a target"),
    ({"path": "/srv", "backend": "gpt"}, "invalid_request", "claude, codex, command"),
    ({"path": "srv", "backend": "claude"}, "invalid_request", "absolute"),
    ({"path": "/srv", "backend": "command"}, "invalid_request", "argument list"),
    ({"path": "/srv", "backend": "codex", "command": ["ls"]}, "invalid_request", "command backend"),
    ({"path": "/srv", "backend": "codex", "process_scope": "session"}, "invalid_request", "no session mode"),
    ({"path": "/srv", "backend": "claude", "process_scope": "session", "continuity": "fresh", "cron": "* * * * *"},
     "invalid_request", "keeps its conversation"),
    ({"peer": "bob", "continuity": "resume"}, "invalid_request", "a peer job is an ask"),
    ({"path": "/srv", "backend": "claude", "timeout_s": 86_401.0}, "invalid_request", "at most 86400"),
    ({"path": "/srv", "backend": "claude", "cron": "0 25 * * *"}, "invalid_cron", "invalid cron"),
    ({"path": "/srv", "backend": "claude", "at": "soon"}, "invalid_request", "ISO 8601"),
    ({"path": "/srv", "backend": "claude", "timezone": "../etc"}, "invalid_timezone", "IANA"),
])
def test_what_cannot_run_is_refused_with_a_code_and_a_reason(fields, code, words):
    error = refusal(**fields)
    assert error.code.value == code and words in error.message


def test_the_command_backend_is_a_persons_and_the_timeout_limit_is_inclusive():
    assert refusal(is_person=False, path="/srv", backend="command", command=["ls"]).code.value == "forbidden"
    assert spec(path="/srv", backend="command", command=["ls", "-la"]).command == ("ls", "-la")
    assert spec(path="/srv", backend="claude", timeout_s=86_400.0).timeout_s == 86_400.0


# ---- backends ----------------------------------------------------------------------------------

def test_argument_lists_take_no_prompt_and_put_the_session_in_one_argument():
    claude, codex, command = BACKENDS["claude"], BACKENDS["codex"], BACKENDS["command"]
    assert claude.argv(None, None, session_mode=False) == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert claude.argv(None, "s-1; rm -rf /", session_mode=False)[-2:] == ["--resume", "s-1; rm -rf /"]
    assert claude.argv(None, None, session_mode=True) == [
        "claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    assert claude.argv(None, "s-1", session_mode=True)[-2:] == ["--resume", "s-1"]
    assert codex.argv(None, None, session_mode=False) == ["codex", "exec", "--json", "--skip-git-repo-check", "-"]
    assert codex.argv(None, "t-9", session_mode=False) == [
        "codex", "exec", "resume", "--json", "--skip-git-repo-check", "t-9", "-"]
    assert command.argv(("python3", "job.py"), "s", session_mode=False) == ["python3", "job.py"]
    assert orjson.loads(session_message("hi")) == {"type": "user", "message": {"role": "user", "content": "hi"}}


def test_executors_get_the_allow_list_and_their_backends_own_variables_only():
    hub_env = {"PATH": "/usr/bin", "HOME": "/home/u", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "OPENAI_API_KEY": "k",
               "AWS_SECRET_ACCESS_KEY": "s", "REPOWIRE_TOKEN": "t", "REPOWIRE_HOME": "/h", "EXTRA": "x"}
    claude = executor_env(hub_env, BACKENDS["claude"], (), "job-1")
    assert claude == {"PATH": "/usr/bin", "HOME": "/home/u", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1",
                      "REPOWIRE_JOB_ID": "job-1"}
    command = executor_env(hub_env, BACKENDS["command"], ("EXTRA",), "job-2", resume_session="s-7")
    assert command == {"PATH": "/usr/bin", "HOME": "/home/u", "EXTRA": "x", "REPOWIRE_JOB_ID": "job-2",
                       RESUME_ENV: "s-7"}
    assert RESUME_ENV not in executor_env(hub_env, BACKENDS["claude"], (), "job-3", resume_session="s-7")


def test_claude_code_stream_json_gives_progress_session_and_result():
    reader = StreamReader(Stream.CLAUDE)
    lines = [{"type": "system", "subtype": "init", "session_id": "s-1", "tools": []},
             {"type": "assistant", "message": {"content": [{"type": "text", "text": "Looking."},
                                                           {"type": "tool_use", "name": "Bash",
                                                            "input": {"command": "ls"}}]}},
             {"type": "user", "message": {"content": [{"type": "tool_result", "content": "README.md"}]}},
             {"type": "result", "subtype": "success", "is_error": False, "result": "All tidy.", "session_id": "s-1"}]
    progress = [p for line in lines for p in reader.read(orjson.dumps(line) + b"\n")]
    assert progress == ["Looking.", 'tool Bash {"command":"ls"}']
    assert (reader.run.session_id, reader.run.finished, reader.run.is_error) == ("s-1", True, False)
    assert reader.summary() == "All tidy."
    reader.start_run()
    assert reader.run.session_id == "s-1" and not reader.run.finished
    reader.read(orjson.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True}))
    assert reader.run.is_error and reader.run.error == "error_max_turns"


def test_codex_json_gives_progress_thread_and_last_message():
    reader = StreamReader(Stream.CODEX)
    lines = [{"type": "thread.started", "thread_id": "t-1"}, {"type": "turn.started"},
             {"type": "item.completed", "item": {"type": "command_execution", "command": "ls"}},
             {"type": "item.completed", "item": {"type": "agent_message", "text": "Done: 3 files."}},
             {"type": "turn.completed", "usage": {}}]
    progress = [p for line in lines for p in reader.read(orjson.dumps(line))]
    assert progress == ["ran ls", "Done: 3 files."]
    assert (reader.run.session_id, reader.run.finished, reader.summary()) == ("t-1", True, "Done: 3 files.")
    reader.read(orjson.dumps({"type": "turn.failed", "error": {"message": "quota"}}))
    assert reader.run.is_error and reader.run.error == "quota"


def test_plain_lines_are_progress_and_the_last_lines_the_summary():
    reader = StreamReader(Stream.LINES)
    for i in range(8):
        reader.read(f"line {i}\n".encode())
    assert reader.read(b"\n") == [] and reader.read(b"\xff bad bytes\n") == ["\ufffd bad bytes"]
    assert reader.summary() == "line 4\nline 5\nline 6\nline 7\n\ufffd bad bytes"
    assert reader.read(b"x" * 400) == ["x" * 299 + "\u2026"]
    reader.read(orjson.dumps({"type": "result", "result": "42", "session_id": "mine"}))
    assert (reader.summary(), reader.run.session_id) == ("42", "mine")


# ---- ids and views -----------------------------------------------------------------------------

def test_a_fires_work_item_lives_in_its_recurring_jobs_slot():
    template = "cal-" + "ef" * 16
    work = work_id_of_fire(template, 1_764_752_400_000)
    assert work == "ef" * 16 + ".1764752400000" and not work.startswith("cal-")
    assert keys.job_tag(work) == keys.job_tag(template) == "ef" * 16


def test_the_summary_view_keeps_ids_state_owner_target_delivery_and_a_short_result():
    job_spec = spec(path="/srv", backend="command", command=["python3", "secret-args"])
    body = {"spec": job_spec.as_dict(), "owner": OWNER, "created_at": 1_764_752_400_000,
            "request": {"prompt": "do it"}, "provenance": {"via": "rest"}}
    fields = {"state": "succeeded", "node": "n1", "attempt": "1", "pid": "42", "updated_at": "1764752401000",
              "result": orjson.dumps({"summary": "y" * 500, "exit_code": 0, "output_bytes": 501}).decode(),
              "correlation_id": "", "started_at": "1764752400500", "finished_at": "1764752401000"}
    full = view("01" * 16, body, fields, summary=False, trace=[{"stage": "queued", "at": 1_764_752_400_000}],
                progress=[{"at": 1_764_752_400_900, "text": "y"}])
    short = view("01" * 16, body, fields, summary=True)
    assert full.prompt == "do it" and full.runner is not None and full.runner.pid == 42
    assert full.target.command == ["python3", "secret-args"] and full.result is not None
    assert full.trace is not None and full.trace[0].at == "2025-12-03T09:00:00.000Z"
    assert (short.prompt, short.request, short.provenance, short.runner, short.progress, short.trace) == (None,) * 6
    assert short.target.command is None and short.target.path == "/srv"
    assert short.result is not None and len(short.result.summary) == 200 and short.result.output_bytes is None
    assert (short.id, short.state, short.owner.name, short.node, short.finished_at) == (
        "01" * 16, "succeeded", "lead", "n1", "2025-12-03T09:00:01.000Z")
