"""The real Claude Code CLI (`claude -p`) with the hooks and MCP server `repowire hooks install`
sets up, against a local stand-in for the model API: the agent acts as itself on every
surface, and every instruction the hub gives it works exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.claude_code import ClaudeCode
from tests.model_standin import ModelStandIn, Turn, bash, say
from tests.support import wait_until

ASK_HINT = re.compile(r'repowire ack ([0-9a-f]{32}) "<answer>"')


def repowire(hub, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    """The CLI as a person (or, with `token`, a peer) runs it in their own terminal."""
    env = {"REPOWIRE_HOME": str(hub.home), "PATH": "/usr/bin:/bin", **({"REPOWIRE_TOKEN": token} if token else {})}
    return subprocess.run([sys.executable, "-m", "hub.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def user_of(hub, tmp_path, model: ModelStandIn) -> ClaudeCode:
    claude = ClaudeCode(tmp_path / "user", hub.home, model)
    claude.install_hooks()
    return claude


def the_hint_as_written(model: ModelStandIn) -> Turn:
    """The model does what the hub told it: the reply hint, with its answer in place of <answer>."""
    found = ASK_HINT.search(model.shown_text())
    assert found, "the agent was not shown a reply hint"
    return bash(found.group(0).replace("<answer>", "port 8080"))


def test_the_agent_notifies_and_replies_from_its_shell_as_itself(hub, tmp_path, project):
    alice = repowire(hub, "peers", "add", "alice").stdout.strip()
    assert repowire(hub, "policy", "add", "allow", "--tool", "Bash", "--peer", "proj-claude").returncode == 0
    with ModelStandIn([bash("repowire whoami"), bash('repowire notify alice "hello from the agent"'),
                       say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        run = claude.print_mode("say hello to alice", project)
        assert run.returncode == 0, run.stderr
        shown = model.shown_text()
        assert "repowire: you are proj-claude@default on the repowire hub" in shown
        assert 'Reply to an ask: repowire ack ID "your answer". Send: repowire notify NAME "text".' in shown
        whoami, notified = model.tool_results()
        assert whoami.startswith("proj-claude@default ") and "(agent," in whoami
        assert "error" not in notified.lower()
    inbox = repowire(hub, "inbox", "--json", token=alice)
    (delivery,) = httpx.Response(200, content=inbox.stdout).json()["deliveries"]
    assert (delivery["from"]["name"], delivery["text"]) == ("proj-claude", "hello from the agent")

    asked = hub.post("/ask", {"to": "proj-claude", "text": "which port?", "queue_if_offline": True}, token=alice)
    cid = asked.json()["correlation_id"]
    with ModelStandIn([say("nothing to do"), the_hint_as_written, say("replied")]) as model:
        claude = user_of(hub, tmp_path, model)
        run = claude.print_mode("carry on", project)
        assert run.returncode == 0, run.stderr
        assert f"[ask {cid} from alice] «which port?»" in model.shown_text()
        assert model.tool_results()[-1].startswith("replied")
    closed = hub.get(f"/asks/{cid}").json()
    assert (closed["state"], closed["result"]["text"], closed["to"]["name"]) == ("replied", "port 8080", "proj-claude")


def test_a_question_names_the_agent_and_a_person_allows_one_call_and_denies_the_next(hub, tmp_path, project):
    with ModelStandIn([bash("touch allowed.txt"), bash("touch denied.txt"), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        agent = claude.start_print_mode("make two files", project)
        try:
            first = wait_for_question(hub, "touch allowed.txt")
            assert (first["peer"]["name"], first["asker"]["name"]) == ("proj-claude", "proj-claude")
            assert hub.peers()["proj-claude"]["status"] == "awaiting_input"
            assert repowire(hub, "approve", first["correlation_id"], "--yes").returncode == 0
            second = wait_for_question(hub, "touch denied.txt")
            assert repowire(hub, "deny", second["correlation_id"], "--reason", "not that one").returncode == 0
            assert agent.wait(RUN_S) == 0
        finally:
            agent.kill()
        allowed, denied = model.tool_results()
        assert "not that one" in denied and "repowire: deny" in denied
    assert (project / "allowed.txt").exists() and not (project / "denied.txt").exists()
    audit = hub.get("/decisions").json()["decisions"]
    assert {(d["peer"]["name"], d["decision"]) for d in audit} == {("proj-claude", "allow"), ("proj-claude", "deny")}


def test_with_its_hub_gone_the_call_is_denied_and_the_reason_names_that_hub(hub, tmp_path, project):
    def hub_dies(model: ModelStandIn) -> Turn:
        hub.kill()
        (hub.home / "hub.json").unlink(missing_ok=True)
        return bash("touch ran.txt")

    with ModelStandIn([hub_dies, say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        run = claude.print_mode("make a file", project)
        assert run.returncode == 0, run.stderr
        (result,) = model.tool_results()
    assert f"the hub at {hub.url} did not answer" in result or f"the hub at {hub.uds} did not answer" in result
    assert not (project / "ran.txt").exists()


RUN_S = 60


def wait_for_question(hub, command: str) -> dict:
    found: list[dict] = []

    def asked() -> bool:
        found[:] = [q for q in hub.get("/questions").json()["questions"]
                    if q["tool_input"].get("command") == command]
        return bool(found)

    wait_until(asked, 30, f"the question about {command!r}")
    return found[0]


def test_a_question_whose_hub_died_is_abandoned_and_cannot_be_approved(hub, tmp_path, project):
    with ModelStandIn([bash("touch late.txt"), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        agent = claude.start_print_mode("make a file", project)
        try:
            qid = wait_for_question(hub, "touch late.txt")["correlation_id"]
            hub.kill()
            assert agent.wait(RUN_S) == 0
        finally:
            agent.kill()
        (result,) = model.tool_results()
        assert "did not answer" in result
    hub.restart()
    assert "no questions" in repowire(hub, "questions").stdout.lower()
    approved = repowire(hub, "approve", qid, "--yes")
    assert approved.returncode == 1 and "question_abandoned" in approved.stderr
    assert not (project / "late.txt").exists()
