"""The real Codex CLI (`codex exec`, npm @openai/codex) with the hooks and MCP server
`repowire hooks install --agent codex` sets up, against a local stand-in for the Responses
API: the same rules as for Claude Code. Codex has no env file for its hooks to hand the
session's credential to its shell, so `repowire` run by Codex finds its session through the
process tree."""

from __future__ import annotations

import html
import re

from tests.agent_clis import Codex
from tests.model_standin import ModelStandIn, Turn, run, say
from tests.test_claude_code import repowire

ASK_HINT = re.compile(r'repowire ack ([0-9a-f]{32}) "<answer>"')


def shell(command: str) -> Turn:
    """Codex's shell tool. `login: false`: Codex's default login shell would reset PATH to the
    system's, where this test's `repowire` is not (see docs/claude-code.md, Codex)."""
    return run("exec_command", cmd=command, login=False)


def the_hint_as_written(model: ModelStandIn) -> Turn:
    # Codex shows a Stop hook's prompt inside <hook_prompt>, XML-escaped: the model reads &lt;answer&gt;
    found = ASK_HINT.search(html.unescape(model.shown_text()))
    assert found, "the agent was not shown a reply hint"
    return shell(found.group(0).replace("<answer>", "port 8080"))


def test_codex_joins_notifies_as_itself_and_replies_with_the_hint_as_written(hub, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    alice = repowire(hub, "peers", "add", "alice").stdout.strip()
    with ModelStandIn([shell('repowire whoami; repowire notify alice "hello from codex"'), say("done")]) as model:
        codex = Codex(tmp_path / "user", hub.home, model)
        installed = codex.install_hooks()
        assert "trust" in installed and "/hooks" in installed
        done = codex.exec("say hello to alice", project)
        assert done.returncode == 0, done.stderr
        assert "repowire: you are proj-codex@default on the repowire hub" in model.shown_text()
        (result,) = model.tool_results()
        assert "proj-codex@default " in result and "(agent," in result
    inbox = repowire(hub, "inbox", token=alice).stdout
    assert "[notify from proj-codex] «hello from codex»" in inbox

    asked = hub.post("/ask", {"to": "proj-codex", "text": "which port?", "queue_if_offline": True}, token=alice)
    cid = asked.json()["correlation_id"]
    with ModelStandIn([say("nothing to do"), the_hint_as_written, say("replied")]) as model:
        codex = Codex(tmp_path / "user2", hub.home, model)
        codex.install_hooks()
        done = codex.exec("carry on", project)
        assert done.returncode == 0, done.stderr
        assert f"[ask {cid} from alice] «which port?»" in model.shown_text()
    closed = hub.get(f"/asks/{cid}").json()
    assert (closed["state"], closed["result"]["text"], closed["to"]["name"]) == ("replied", "port 8080", "proj-codex")
