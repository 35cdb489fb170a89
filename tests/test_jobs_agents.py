"""Jobs whose backend is a real agent CLI, run by the hub in a folder against the local stand-in
for the model API. Claude Code (`claude -p --output-format stream-json`): the result, the
runtime session id and progress read from its stream, and across a recurring job's fires
`resume` (the stand-in sees the earlier conversation), `fresh` (it does not) and a `session`
executor. Codex (`codex exec --json`): a recurring job whose second fire resumes the thread."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.agent_clis import AGENTS, ClaudeCode, Codex
from tests.model_standin import ModelStandIn, say
from tests.support import eventually, fire_now, process_gone


@pytest.fixture
def model():
    with ModelStandIn() as standin:
        yield standin


@pytest.fixture
def claude_env(tmp_path, model) -> dict[str, str]:
    """The hub's environment: `claude` on PATH, and Claude Code's settings pointed at the
    stand-in (what a user's shell would have)."""
    cc = ClaudeCode(tmp_path / "user", tmp_path / "unused-hub-home", model)
    env = cc.env()
    env.pop("REPOWIRE_HOME")
    env["PATH"] = f"{AGENTS}:{env['PATH']}"
    return env


@pytest.fixture
def project(tmp_path, claude_env, model):
    folder = tmp_path / "project"
    folder.mkdir()
    ClaudeCode(tmp_path / "user", tmp_path / "unused-hub-home", model).trust(folder)
    return folder


def job_status(hub, job_id: str) -> dict:
    response = hub.get(f"/jobs/{job_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


async def settled(hub, job_id: str, timeout: float = 120) -> dict:
    def check():
        response = hub.get(f"/jobs/{job_id}/status")
        if response.status_code != 200:
            return None
        job = response.json()
        return job if job["state"] not in ("queued", "running") else None
    return await eventually(lambda: asyncio.to_thread(check), timeout, f"job {job_id} to end")


def conversation(request: dict) -> str:
    """What a model request carried (its messages; Codex's `input`), as text to search."""
    return orjson.dumps([request.get("messages", []), request.get("input", [])]).decode()


def requests_with(model: ModelStandIn, prompt: str) -> list[dict]:
    """The model requests that carried `prompt` (each fire's, in order)."""
    return [r for r in model.requests if prompt in conversation(r)]


async def test_a_claude_job_runs_claude_code_in_the_folder_and_keeps_its_answer_and_session(
        start_hub, claude_env, project, model):
    model.add(say("The README is tidy now."))
    hub = start_hub(env=claude_env)
    created = hub.post("/jobs", {"prompt": "tidy the README", "path": str(project), "backend": "claude"})
    assert created.status_code == 201, created.text
    job = await settled(hub, created.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["summary"] == "The README is tidy now." and job["result"]["exit_code"] == 0
    assert len(job["runtime_session_id"]) == 36
    assert "The README is tidy now." in [p["text"] for p in job["progress"]]
    assert [s["stage"] for s in job["trace"]] == ["queued", "started", "executor", "succeeded"]
    (request,) = requests_with(model, "tidy the README")
    assert process_gone(job["runner"]["pid"])
    assert "The README is tidy now." not in conversation(request)


@pytest.mark.parametrize("continuity", ["resume", "fresh"])
async def test_a_recurring_claude_job_resumes_its_session_on_the_next_fire_or_starts_fresh(
        shared_store, start_hub, claude_env, project, model, continuity):
    model.add(say("First digest: 3 new issues."), say("Second digest: nothing new."))
    hub = start_hub("--redis-url", shared_store, env=claude_env)
    template = hub.post("/jobs", {"prompt": "digest of new issues", "path": str(project), "backend": "claude",
                                  "cron": "0 9 * * *", "continuity": continuity}).json()
    fires = [await fire_now(hub, shared_store, template["id"]) for _ in range(2)]
    assert [f["state"] for f in fires] == ["succeeded", "succeeded"]
    assert [f["result"]["summary"] for f in fires] == ["First digest: 3 new issues.", "Second digest: nothing new."]
    first, second = requests_with(model, "digest of new issues")
    assert "First digest" not in conversation(first)
    if continuity == "resume":
        assert "First digest: 3 new issues." in conversation(second)   # the earlier conversation came along
        assert fires[1]["runtime_session_id"] == fires[0]["runtime_session_id"]
        assert f"resuming {fires[0]['runtime_session_id']}" in fires[1]["trace"][2]["detail"]
    else:
        assert "First digest" not in conversation(second)
        assert fires[1]["runtime_session_id"] != fires[0]["runtime_session_id"]
    hub.post(f"/jobs/{template['id']}/cancel")


async def test_a_session_scoped_claude_job_keeps_one_claude_process_for_its_fires(
        shared_store, start_hub, claude_env, project, model):
    model.add(say("Build is green."), say("Still green."))
    hub = start_hub("--redis-url", shared_store, env=claude_env)
    template_id = hub.post("/jobs", {"prompt": "is the build green?", "path": str(project), "backend": "claude",
                                     "cron": "0 9 * * *", "process_scope": "session"}).json()["id"]
    fires = [await fire_now(hub, shared_store, template_id) for _ in range(2)]
    assert [f["result"]["summary"] for f in fires] == ["Build is green.", "Still green."]
    pid = fires[0]["runner"]["pid"]
    assert fires[1]["runner"]["pid"] == pid and not process_gone(pid)
    second = requests_with(model, "is the build green?")[-1]
    assert "Build is green." in conversation(second)
    assert hub.post(f"/jobs/{template_id}/cancel").status_code == 200
    await eventually(lambda: process_gone(pid), 15, "claude to be ended with its job")


async def test_a_recurring_codex_job_resumes_its_thread_on_the_next_fire(shared_store, start_hub, tmp_path, model):
    codex = Codex(tmp_path / "codex-user", tmp_path / "unused-hub-home", model)
    folder = tmp_path / "repo"
    folder.mkdir()
    codex.trust(folder)
    env = codex.env()
    env.pop("REPOWIRE_HOME")
    env["PATH"] = f"{AGENTS}:{env['PATH']}"
    model.add(say("Codex looked: two TODOs."), say("Codex again: one TODO left."))
    # the stand-in's key is not one of the codex backend's own variables: the hub passes it on when told
    hub = start_hub("--redis-url", shared_store, "--job-env", "STANDIN_KEY", env=env)
    template_id = hub.post("/jobs", {"prompt": "count the TODOs", "path": str(folder), "backend": "codex",
                                     "cron": "0 9 * * *"}).json()["id"]
    fires = [await fire_now(hub, shared_store, template_id) for _ in range(2)]
    assert [f["state"] for f in fires] == ["succeeded", "succeeded"], fires
    assert [f["result"]["summary"] for f in fires] == ["Codex looked: two TODOs.", "Codex again: one TODO left."]
    thread = fires[0]["runtime_session_id"]
    assert thread and fires[1]["runtime_session_id"] == thread
    second = requests_with(model, "count the TODOs")[-1]
    assert "Codex looked: two TODOs." in conversation(second)
    hub.post(f"/jobs/{template_id}/cancel")
