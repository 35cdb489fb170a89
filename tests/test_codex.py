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
from tests.support import wait_until
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


def test_in_a_tmux_pane_codex_gets_a_delivery_submitted_and_the_model_is_sent_it(pane_hub, tmux, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    alice = repowire(pane_hub, "peers", "add", "alice", "--circle", "proj").stdout.strip()
    with ModelStandIn([say("ready"), say("noted")]) as model:
        codex = Codex(tmp_path / "user", pane_hub.home, model)
        codex.install_hooks()
        codex.trust(project)
        env = {k: v for k, v in codex.env().items()
               if k in ("HOME", "PATH", "REPOWIRE_HOME", "CODEX_HOME", "STANDIN_KEY")}
        tmux.new_session(session_name="proj", window_command=" ".join(codex.interactive_argv()),
                         start_directory=str(project), environment=env, detach=True, x=160, y=50)
        # Codex starts its session (and runs SessionStart) with the person's first prompt
        wait_until(lambda: "Ask Codex" in "\n".join(tmux.cmd("capture-pane", "-p", "-t", "proj").stdout), 30,
                   "Codex's prompt")
        # (typed as a person would, a word and then Enter; Codex takes keys that come fast as a paste, and
        # an Enter inside a paste as a new line, so the Enter waits until the word shows)
        pane_id = tmux.cmd("display-message", "-p", "-t", "proj", "#{pane_id}").stdout[0]
        tmux.cmd("send-keys", "-t", pane_id, "-l", "hello")
        wait_until(lambda: "› hello" in "\n".join(tmux.cmd("capture-pane", "-p", "-t", pane_id).stdout), 10, "hello")
        wait_until(lambda: tmux.cmd("send-keys", "-t", pane_id, "Enter") and model.requests, 10, "the first prompt sent")
        wait_until(lambda: pane_hub.peers().get("proj-codex", {}).get("status") in ("online", "busy"), 30,
                   "the Codex session in its pane to join")
        assert pane_hub.peers()["proj-codex"]["pane"] is not None
        sent = pane_hub.post("/messages", {"to": "proj-codex@proj", "text": "please check the build"}, token=alice)
        wait_until(lambda: "[notify from alice] «please check the build»" in model.shown_text(), 30,
                   "the model to be sent the delivery")
        assert pane_hub.get(f"/traces/{sent.json()['message_id']}").json()["final"] == "injected"
