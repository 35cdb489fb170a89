"""The real Claude Code CLI (`claude -p`) with the hooks and MCP server `repowire hooks install`
sets up, against a local stand-in for the model API: the agent acts as itself on every
surface, and every instruction the hub gives it works exactly as written."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys

import httpx
import pytest

from tests.agent_clis import ClaudeCode, claude_binary
from tests.model_standin import ModelStandIn, Turn, bash, say
from tests.model_standin import run as run_tool
from tests.support import person_watching, wait_until

ASK_HINT = re.compile(r'repowire ack ([0-9a-f]{32}) "<answer>"')
RUN_S = 60         # a `claude -p` run, at most
DELIVERIES = 12    # typed into the interactive TUI one after another


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


def test_a_question_names_the_agent_and_a_person_allows_one_call_and_denies_the_next(watched_hub, tmp_path, project):
    hub = watched_hub
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
        _allowed, denied = model.tool_results()
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




def wait_for_question(hub, command: str | None, tool: str = "Bash") -> dict:
    found: list[dict] = []

    def asked() -> bool:
        found[:] = [q for q in hub.get("/questions").json()["questions"]
                    if q["tool_name"] == tool and (command is None or q["tool_input"].get("command") == command)]
        return bool(found)

    wait_until(asked, 30, f"the question about {command or tool!r}")
    return found[0]


def test_a_question_whose_hub_died_is_abandoned_and_cannot_be_approved(watched_hub, tmp_path, project):
    hub = watched_hub
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


def test_an_agent_outside_tmux_hears_an_ask_while_it_works_and_replies_through_the_mcp_tools(hub, tmp_path,
                                                                                               project):
    alice = repowire(hub, "peers", "add", "alice").stdout.strip()
    for tool in ("mcp__repowire__*", "ToolSearch"):
        assert repowire(hub, "policy", "add", "allow", "--tool", tool, "--peer", "proj-claude").returncode == 0
    asked: dict = {}
    ours = ("mcp__repowire__inbox", "mcp__repowire__wait_for_message", "mcp__repowire__ack")

    def alice_asks(model: ModelStandIn) -> Turn:
        assert hub.peers()["proj-claude"]["status"] != "offline"   # live, though no pane carries its messages
        sent = hub.post("/ask", {"to": "proj-claude", "text": "which port?"}, token=alice)
        assert sent.status_code == 202, sent.text
        asked.update(sent.json())
        return run_tool("mcp__repowire__wait_for_message", timeout_s=20)

    def reply(model: ModelStandIn) -> Turn:
        (message,) = json.loads(model.tool_results()[-1])["messages"]   # what wait_for_message returned
        assert (message["kind"], message["from"], message["text"]) == ("ask", "alice@default", "which port?")
        return run_tool("mcp__repowire__ack", correlation_id=message["correlation_id"], text="port 8080")

    # Claude Code lists MCP tools by name and loads them through its ToolSearch tool, as a model would
    load = run_tool("ToolSearch", query="select:" + ",".join(ours))
    with ModelStandIn([load, alice_asks, reply, run_tool("mcp__repowire__inbox"), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        run = claude.print_mode("work, and answer your peers", project)
        assert run.returncode == 0, run.stderr
        assert all(f"{name}\n" in model.shown_text() for name in ours)
        _, _, acked, empty = model.tool_results()
        assert json.loads(acked) == {"correlation_id": asked["correlation_id"], "ask_state": "replied"}
        assert json.loads(empty) == {"messages": [], "remaining": 0}
    closed = hub.get(f"/asks/{asked['correlation_id']}").json()
    assert (closed["state"], closed["result"]["text"]) == ("replied", "port 8080")


def test_an_agent_hands_off_a_job_and_follows_it_through_the_mcp_tools(hub, tmp_path, project):
    """The job tools as Claude Code loads and calls them: the agent hands a review to alice (a
    job for a peer), alice replies to its ask, and the agent's job_status shows the result."""
    alice = repowire(hub, "peers", "add", "alice").stdout.strip()
    for tool in ("mcp__repowire__*", "ToolSearch"):
        assert repowire(hub, "policy", "add", "allow", "--tool", tool, "--peer", "proj-claude").returncode == 0
    ours = ("mcp__repowire__job_add", "mcp__repowire__job_status")
    added: dict = {}

    def alice_replies(model: ModelStandIn) -> Turn:
        added.update(json.loads(model.tool_results()[-1]))   # what job_add returned
        (ask,) = hub.get("/asks/pending", params={"peer": "alice", "direction": "inbound"}, token=alice).json()["asks"]
        assert (ask["text"], ask["from"]["name"]) == ("review the migration", "proj-claude")
        assert hub.post("/ack", {"correlation_id": ask["correlation_id"], "text": "ship it"},
                        token=alice).status_code == 200
        wait_until(lambda: hub.get(f"/jobs/{added['id']}/status").json()["state"] == "succeeded", 10, "the job")
        return run_tool("mcp__repowire__job_status", id=added["id"])

    load = run_tool("ToolSearch", query="select:" + ",".join(ours))
    hand_off = run_tool("mcp__repowire__job_add", prompt="review the migration", peer="alice", timeout_s=60)
    with ModelStandIn([load, hand_off, alice_replies, say("handed off and done")]) as model:
        run = user_of(hub, tmp_path, model).print_mode("hand the review to alice and follow it", project)
        assert run.returncode == 0, run.stderr
        assert all(f"{name}\n" in model.shown_text() for name in ours)
        followed = json.loads(model.tool_results()[-1])
    assert (added["kind"], added["target"]) == ("work", "alice@default")
    assert followed["id"] == added["id"] and followed["state"] == "succeeded"
    assert followed["result"] == {"summary": "ship it"}
    assert hub.get(f"/jobs/{added['id']}/status").json()["owner"]["name"] == "proj-claude"


def test_in_a_tmux_pane_deliveries_are_submitted_seen_by_the_model_and_the_typed_hint_replies(pane_hub, tmux,
                                                                                               tmp_path, project):
    hub = pane_hub
    alice = repowire(hub, "peers", "add", "alice", "--circle", "proj").stdout.strip()
    assert repowire(hub, "policy", "add", "allow", "--tool", "Bash", "--peer", "proj-claude").returncode == 0
    with ModelStandIn([*(say("noted") for _ in range(DELIVERIES)), the_hint_as_written, say("replied")]) as model:
        claude = user_of(hub, tmp_path, model)
        claude.trust(project)
        keep = ("HOME", "PATH", "REPOWIRE_HOME", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "DISABLE_TELEMETRY",
                "DISABLE_AUTOUPDATER", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
        env = {k: v for k, v in claude.env().items() if k in keep}
        tmux.new_session(session_name="proj", window_command=claude_binary(), start_directory=str(project),
                         environment=env, detach=True, x=160, y=50)
        wait_until(lambda: hub.peers().get("proj-claude", {}).get("status") == "online", 30,
                   "the session in its pane to join")
        assert hub.peers()["proj-claude"]["pane"] is not None

        # one after another, as a person would send them (the issue saw 5 of 24 left unsubmitted)
        for number in range(DELIVERIES):
            text = f"please check build {number}"
            sent = hub.post("/messages", {"to": "proj-claude@proj", "text": text}, token=alice)
            wait_until(lambda: f"[notify from alice] «{text}»" in model.shown_text(), 30,
                       f"the model to be sent delivery {number}")
            assert hub.get(f"/traces/{sent.json()['message_id']}").json()["final"] == "injected"

        asked = hub.post("/ask", {"to": "proj-claude@proj", "text": "which port?"}, token=alice).json()
        wait_until(lambda: hub.get(f"/asks/{asked['correlation_id']}").json()["state"] == "replied", 60,
                   "the agent to reply with the hint typed into its pane")
    closed = hub.get(f"/asks/{asked['correlation_id']}").json()
    assert (closed["result"]["text"], closed["to"]["name"]) == ("port 8080", "proj-claude")
    assert f"[ask {asked['correlation_id']} from alice] «which port?» — reply: repowire ack" in model.shown_text()


def test_the_agent_asks_and_waits_from_its_shell_as_the_session_context_says(hub, tmp_path, project):
    """The context's third instruction, `repowire ask NAME "question" --wait`, run as written, to
    alice, another agent's live session (no pane: she reads her inbox)."""
    alice = hub.post("/sessions", {"backend": "other", "cwd": "/work/alice", "agent_pid": 1,
                                   "name": "alice"}).json()["session_token"]
    assert repowire(hub, "policy", "add", "allow", "--tool", "Bash", "--peer", "proj-claude").returncode == 0
    with ModelStandIn([bash('repowire ask alice "which branch?" --wait'), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        agent = claude.start_print_mode("ask alice", project)
        try:
            pending: list[dict] = []

            def asked() -> bool:
                pending[:] = hub.get("/asks/pending", params={"peer": "alice", "direction": "inbound"},
                                     token=alice).json()["asks"]
                return bool(pending)

            wait_until(asked, 30, "the agent's ask to reach alice")
            assert pending[0]["from"]["name"] == "proj-claude"
            assert hub.post("/ack", {"correlation_id": pending[0]["correlation_id"], "text": "main"},
                            token=alice).status_code == 200
            assert agent.wait(RUN_S) == 0
        finally:
            agent.kill()
        (waited,) = model.tool_results()
        assert "main" in waited and "error" not in waited.lower()


# ---- approvals (issue 23): what a person is asked, with the real CLI ----------------------------------

def test_a_fresh_install_reads_and_searches_its_project_with_no_person_and_nothing_else_runs(hub, tmp_path,
                                                                                            project):
    """Nobody watches and no alert is set: reads run by the `readonly` preset, the rest is denied at once."""
    (project / "README.md").write_text("cart service: port 8080\n")
    (project / "src").mkdir()
    (project / "src" / "cart.py").write_text("TAX_RATE = 0.2\n")
    script = [run_tool("Read", file_path=str(project / "README.md")),
              bash("grep -rn TAX_RATE ."), bash("ls src"), bash("git status"),
              run_tool("Edit", file_path=str(project / "src" / "cart.py"), old_string="0.2", new_string="0.3"),
              bash("curl -s https://example.com"), say("done")]
    with ModelStandIn(script) as model:
        claude = ClaudeCode(tmp_path / "user", hub.home, model)
        installed = claude.install_hooks()
        assert "approvals: `readonly`" in installed
        run = claude.print_mode("look around", project)
        assert run.returncode == 0, run.stderr
        read, grep, listing, git, edit, fetch = model.tool_results()
    assert "cart service: port 8080" in read and "TAX_RATE = 0.2" in grep and "cart.py" in listing
    assert "not a git repository" in git.lower()   # it ran: git itself answered
    for refused in (edit, fetch):
        assert "repowire: deny (fallback): no person can be reached" in refused
    assert (project / "src" / "cart.py").read_text() == "TAX_RATE = 0.2\n"
    audit = hub.get("/decisions").json()["decisions"]
    assert [(d["tool_name"], d["answered_by"], d.get("rule_id", "")) for d in reversed(audit)] == [
        ("Read", "policy", "readonly/read-read"), *[("Bash", "policy", "readonly/shell-reads")] * 3,
        ("Edit", "fallback", ""), ("Bash", "fallback", "")]


def test_writes_and_shell_commands_reach_a_person_whose_scoped_allow_spares_the_next_ones(hub, tmp_path, project):
    (project / "app.py").write_text("DEBUG = True\n")
    edit = run_tool("Edit", file_path=str(project / "app.py"), old_string="True", new_string="False")
    script = [edit, bash("touch built-1"), bash("touch built-2"), say("done")]
    with person_watching(hub), ModelStandIn(script) as model:
        claude = user_of(hub, tmp_path, model)
        agent = claude.start_print_mode("fix it and test", project)
        try:
            editing = wait_for_question(hub, None, tool="Edit")
            assert editing["tool_input"]["file_path"] == str(project / "app.py")
            assert repowire(hub, "approve", editing["correlation_id"], "--yes").returncode == 0
            shell = wait_for_question(hub, "touch built-1")
            allowed = repowire(hub, "approve", shell["correlation_id"], "--yes", "--always", "touch")
            assert allowed.returncode == 0 and "and from now on: policy" in allowed.stdout, allowed.stderr
            assert agent.wait(RUN_S) == 0
        finally:
            agent.kill()
        _edited, first, second = model.tool_results()
    assert (project / "app.py").read_text() == "DEBUG = False\n"
    assert (project / "built-1").exists() and (project / "built-2").exists(), (first, second)
    by = [(d["tool_name"], d["answered_by"], d.get("scope")) for d in reversed(hub.get("/decisions").json()["decisions"])]
    assert by == [("Edit", "human", None), ("Bash", "human", "always"), ("Bash", "policy", None)]


def test_with_the_ask_fallback_the_call_goes_back_to_claude_codes_own_permission_rules(start_hub, tmp_path, project):
    hub = start_hub("--fallback", "ask")
    with ModelStandIn([bash("touch handed-back.txt"), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        run = claude.print_mode("make a file", project)
        assert run.returncode == 0, run.stderr
        (result,) = model.tool_results()
    (decision,) = hub.get("/decisions").json()["decisions"]
    assert (decision["decision"], decision["answered_by"]) == ("ask", "fallback")
    # `claude -p` has nobody to show its own prompt to: the call is refused with the hub's reason
    assert not (project / "handed-back.txt").exists()
    assert result.startswith("repowire: ask (fallback): no person can be reached"), result


def test_in_the_tui_the_ask_fallback_shows_claude_codes_own_prompt_and_its_user_decides(start_hub, tmux, tmp_path,
                                                                                        project):
    hub = start_hub("--fallback", "ask", "--tmux-socket", tmux.socket_name)
    with ModelStandIn([bash("touch handed-back.txt"), say("done")]) as model:
        claude = user_of(hub, tmp_path, model)
        claude.trust(project)
        keep = ("HOME", "PATH", "REPOWIRE_HOME", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "DISABLE_TELEMETRY",
                "DISABLE_AUTOUPDATER", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")
        env = {k: v for k, v in claude.env().items() if k in keep}
        session = tmux.new_session(session_name="proj", window_command=claude_binary(), start_directory=str(project),
                                   environment=env, detach=True, x=160, y=50)
        pane = session.active_window.active_pane
        wait_until(lambda: hub.peers().get("proj-claude", {}).get("status") == "online", 30, "the session to join")
        pane.send_keys("make a file", enter=False, literal=True)
        wait_until(lambda: "make a file" in "\n".join(pane.capture_pane()), 10, "the prompt typed")
        pane.send_keys("Enter", enter=False)
        screen = wait_until(lambda: (text := "\n".join(pane.capture_pane())) and "Do you want to proceed?" in text
                            and "1. Yes" in text and text, 60, "Claude Code's own permission prompt")
        assert "touch handed-back.txt" in screen and not (project / "handed-back.txt").exists()
        # its user chooses the selected `1. Yes`; a key that reaches the dialog before it listens
        # is lost (as for a person typing too early), so Enter is pressed again, a few times at most
        for _ in range(5):
            pane.send_keys("Enter", enter=False)
            with contextlib.suppress(AssertionError):
                wait_until((project / "handed-back.txt").exists, 5, "the call to run once its user said yes")
                break
        assert (project / "handed-back.txt").exists(), "\n".join(pane.capture_pane())
    (decision,) = hub.get("/decisions").json()["decisions"]
    assert (decision["decision"], decision["answered_by"]) == ("ask", "fallback")


def test_allow_for_the_session_lets_claude_codes_next_identical_call_run_unasked(hub, tmp_path, project):
    """The session allow is keyed on the session id Claude Code puts in each PreToolUse payload."""
    script = [bash("touch twice.txt"), bash("touch twice.txt"), say("done")]
    with person_watching(hub), ModelStandIn(script) as model:
        claude = user_of(hub, tmp_path, model)
        agent = claude.start_print_mode("touch it twice", project)
        try:
            first = wait_for_question(hub, "touch twice.txt")
            allowed = repowire(hub, "approve", first["correlation_id"], "--yes", "--for-session")
            assert allowed.returncode == 0 and "(and again for the rest of this session)" in allowed.stdout
            assert agent.wait(RUN_S) == 0
        finally:
            agent.kill()
    by = [(d["answered_by"], d.get("scope")) for d in reversed(hub.get("/decisions").json()["decisions"])]
    assert by == [("human", "session"), ("policy", None)]
    assert hub.get("/policies").json()["policies"] == [], "the session ended, and its allow with it"
