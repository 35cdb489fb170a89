"""Agent sessions join the hub by themselves: the hook programs run as subprocesses with stdin
shaped like Claude Code's and Codex's documented payloads, against a real hub, its pane bridge
and a real tmux server whose panes run a recorder standing in for the agent."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from tests.support import recorder_command, start_recorder, wait_until
from transports.pane_text import frame_delivery


def claude_payload(event: str, cwd: Path, **extra) -> dict:
    """Claude Code's common hook fields, then the event's own."""
    return {"session_id": "3f9c2a1e-5b7d-4c1a-9e8f-0a1b2c3d4e5f", "transcript_path": "/tmp/t.jsonl",
            "cwd": str(cwd), "hook_event_name": event, **extra}


def codex_payload(event: str, cwd: Path, **extra) -> dict:
    return {"session_id": "019a7d3e-6f1b-7c2a-8d4e-5f6a7b8c9d0e", "transcript_path": None, "cwd": str(cwd),
            "hook_event_name": event, "model": "gpt-5-codex", **extra}


def socket_path(tmux) -> str:
    return tmux.cmd("display-message", "-p", "#{socket_path}").stdout[0]


def hook(hub, event: str, payload: dict | None = None, *, agent_pid: int, pane=None, tmux=None,
         agent: str = "claude", **env: str) -> subprocess.CompletedProcess:
    """Run `repowire hook EVENT` as the agent would: the payload on stdin, inside the pane's
    tmux environment when there is a pane."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("REPOWIRE_", "TMUX"))}
    full.update({"REPOWIRE_HOME": str(hub.home), "REPOWIRE_AGENT_PID": str(agent_pid), **env})
    if pane is not None:
        full.update({"TMUX": f"{socket_path(tmux)},{tmux.cmd('display-message', '-p', '#{pid}').stdout[0]},0",
                     "TMUX_PANE": pane.pane_id})
    return subprocess.run([sys.executable, "-m", "hub.cli.main", "hook", event, "--agent", agent],
                          input=orjson.dumps(payload or {}), capture_output=True, timeout=30, env=full)


def context_of(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    output = orjson.loads(done.stdout)
    assert output["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    return output["hookSpecificOutput"]["additionalContext"]


def peer(hub, ref: str) -> dict:
    response = hub.get(f"/peers/{ref}")
    assert response.status_code == 200, response.text
    return response.json()


def pane_pid(pane) -> int:
    return int(pane.cmd("display-message", "-p", "#{pane_pid}").stdout[0])


def received(record: Path, text: str) -> bool:
    return text.encode() in record.read_bytes()


def test_session_start_links_the_pane_and_tells_the_agent_who_it_is(pane_hub, tmux, tmp_path):
    repo = tmp_path / "myrepo"
    repo.mkdir()
    record = tmp_path / "pane.bin"
    pane = start_recorder(tmux, record, session="agents")
    agent_pid = pane_pid(pane)

    async def with_alice() -> subprocess.CompletedProcess:
        async with pane_hub.client("alice") as alice:
            done = await asyncio.to_thread(hook, pane_hub, "session-start", claude_payload(
                "SessionStart", repo, source="startup", model="claude-sonnet-4-5"), agent_pid=agent_pid, pane=pane,
                tmux=tmux)
            await alice.notify("myrepo-claude@agents", "hello from alice")
            return done

    done = asyncio.run(with_alice())
    context = context_of(done)
    me = peer(pane_hub, "myrepo-claude@agents")
    assert context.startswith(f"repowire: you are myrepo-claude@agents on the repowire hub (peer {me['peer_id']}).")
    assert "alice@default (agent, online)" in context and "(bridge," not in context
    assert 'Reply to an ask: repowire ack ID "your answer".' in context
    assert me["status"] == "online" and me["agent_pid"] == agent_pid
    assert me["pane"]["pane_id"] == pane.pane_id and me["pane"]["backend"] == "claude"
    wait_until(lambda: received(record, "[notify from alice] «hello from alice»"), 10, "the notify typed into the pane")

    session = pane_hub.home / "sessions" / f"{agent_pid}.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert orjson.loads(session.read_bytes())["peer_id"] == me["peer_id"]

    again = hook(pane_hub, "session-start", claude_payload("SessionStart", repo, source="clear"),
                 agent_pid=agent_pid, pane=pane, tmux=tmux)
    assert f"(peer {me['peer_id']})" in context_of(again)
    assert len([p for p in pane_hub.peers().values() if p["name"].startswith("myrepo")]) == 1


def test_presence_follows_the_hooks_and_session_end_keeps_the_link(pane_hub, tmux, tmp_path):
    pane = start_recorder(tmux, tmp_path / "pane.bin", session="work")
    agent_pid = pane_pid(pane)
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path, source="startup"),
                    agent_pid=agent_pid, pane=pane, tmux=tmux))
    name = f"{tmp_path.name}-claude@work"
    steps = [("user-prompt-submit", claude_payload("UserPromptSubmit", tmp_path, prompt="fix the tests"), "busy"),
             ("notification", claude_payload("Notification", tmp_path, message="Claude needs your permission to use "
                                             "Bash", notification_type="permission_prompt"), "awaiting_input"),
             ("user-prompt-submit", claude_payload("UserPromptSubmit", tmp_path, prompt="go on"), "busy"),
             ("stop", claude_payload("Stop", tmp_path, stop_hook_active=False), "online"),
             ("notification", claude_payload("Notification", tmp_path, message="Claude is waiting for your input",
                                             notification_type="idle_prompt"), "online")]
    for event, payload, status in steps:
        done = hook(pane_hub, event, payload, agent_pid=agent_pid, pane=pane, tmux=tmux)
        assert done.returncode == 0 and done.stdout == b"", (event, done.stderr)
        assert peer(pane_hub, name)["status"] == status, event

    first = peer(pane_hub, name)
    ended = hook(pane_hub, "session-end", claude_payload("SessionEnd", tmp_path, reason="prompt_input_exit"),
                 agent_pid=agent_pid, pane=pane, tmux=tmux)
    assert ended.returncode == 0 and ended.stdout == b""
    after = wait_until(lambda: (p := peer(pane_hub, name))["status"] == "offline" and p, 10, "offline")
    assert after["status_reason"] == "session_ended" and after["pane"]["pane_id"] == pane.pane_id
    assert not (pane_hub.home / "sessions" / f"{agent_pid}.json").exists()
    quiet = hook(pane_hub, "user-prompt-submit", claude_payload("UserPromptSubmit", tmp_path, prompt="x"),
                 agent_pid=agent_pid, pane=pane, tmux=tmux)
    assert quiet.returncode == 0 and peer(pane_hub, name)["status"] == "offline"

    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path, source="resume"),
                    agent_pid=agent_pid, pane=pane, tmux=tmux))
    back = peer(pane_hub, name)
    assert (back["peer_id"], back["status"]) == (first["peer_id"], "online")


def test_a_subprocess_agent_in_the_pane_does_not_take_its_identity(pane_hub, tmux, tmp_path):
    record = tmp_path / "pane.bin"
    child_file = tmp_path / "child.pid"
    command = f"sh -c 'sleep 120 & echo $! > {child_file}; exec {recorder_command(record)}'"
    pane = start_recorder(tmux, record, session="agents", command=command)
    parent = pane_pid(pane)
    child = int(wait_until(lambda: child_file.exists() and child_file.read_text().strip(), 10, "the child"))
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=parent,
                    pane=pane, tmux=tmux))
    before = pane_hub.peers()
    owner = peer(pane_hub, f"{tmp_path.name}-claude@agents")

    nested = hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path / "sub"), agent_pid=child,
                  pane=pane, tmux=tmux)
    assert nested.returncode == 0 and nested.stdout == b"", nested.stderr
    assert orjson.loads((pane_hub.home / "sessions" / f"{child}.json").read_bytes())["joined"] == "nested"
    busy = hook(pane_hub, "user-prompt-submit", claude_payload("UserPromptSubmit", tmp_path, prompt="sub"),
                agent_pid=child, pane=pane, tmux=tmux)
    assert busy.returncode == 0 and busy.stdout == b""
    assert pane_hub.peers().keys() == before.keys()
    now = peer(pane_hub, owner["peer_id"])
    assert (now["status"], now["agent_pid"], now["name"]) == ("online", parent, owner["name"])
    response = pane_hub.post("/messages", {"to": owner["peer_id"], "text": "still yours"})
    assert response.status_code == 202
    wait_until(lambda: received(record, "still yours"), 10, "the pane to keep its deliveries")


def test_an_agent_restarted_keeps_its_name_and_identity(pane_hub, tmux, tmp_path):
    record = tmp_path / "pane.bin"
    pane = start_recorder(tmux, record, session="agents")
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=pane_pid(pane),
                    pane=pane, tmux=tmux))
    name = f"{tmp_path.name}-claude@agents"
    first = peer(pane_hub, name)

    # the agent dies and is started again in the same pane: a new process
    pane.cmd("respawn-pane", "-k", "-t", pane.pane_id, recorder_command(record))
    wait_until(lambda: peer(pane_hub, name)["status"] == "offline", 10, "the watcher to see the old agent go")
    queued = pane_hub.post("/messages", {"to": name, "text": "while you were away"})
    assert queued.status_code == 202
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=pane_pid(pane),
                    pane=pane, tmux=tmux))
    again = peer(pane_hub, name)
    assert (again["peer_id"], again["status"], again["agent_pid"]) == (first["peer_id"], "online", pane_pid(pane))
    wait_until(lambda: received(record, "while you were away"), 10, "the queue delivered to the new agent")

    # the pane closes; the agent comes back in a new pane of the same session and folder
    pane.cmd("kill-pane", "-t", pane.pane_id)
    wait_until(lambda: peer(pane_hub, name)["status"] == "offline", 10, "offline after the pane closed")
    second = start_recorder(tmux, tmp_path / "second.bin", session="agents")
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=pane_pid(second),
                    pane=second, tmux=tmux))
    third = peer(pane_hub, name)
    assert third["peer_id"] == first["peer_id"] and third["pane"]["pane_id"] == second.pane_id
    assert sorted(p["name"] for p in pane_hub.peers().values() if p["role"] == "agent") == [name.split("@")[0]]


def test_two_live_agents_in_one_folder_are_told_apart_by_their_pane(pane_hub, tmux, tmp_path):
    one = start_recorder(tmux, tmp_path / "one.bin", session="agents")
    (tmp_path / "two.bin").touch()
    two = tmux.sessions.get(session_name="agents").new_window(
        window_shell=recorder_command(tmp_path / "two.bin")).active_pane
    wait_until(lambda: "recorder ready" in "\n".join(two.capture_pane()), 10, "the second recorder")
    for pane in (one, two):
        context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=pane_pid(pane),
                        pane=pane, tmux=tmux))
    base = f"{tmp_path.name}-claude"
    names = sorted(p["name"] for p in pane_hub.peers().values() if p["role"] == "agent")
    assert names == sorted([base, f"{base}-{two.pane_id.lstrip('%')}"])


def test_a_session_outside_tmux_reads_its_mail_at_stop_once(hub, tmp_path):
    agent_pid = os.getpid()
    repo = tmp_path / "solo"
    repo.mkdir()
    context = context_of(hook(hub, "session-start", codex_payload("SessionStart", repo, source="startup"),
                              agent_pid=agent_pid, agent="codex"))
    assert "repowire: you are solo-codex@default" in context and "wait in your inbox" in context
    me = peer(hub, "solo-codex")
    assert (me["status"], me["status_reason"], me["pane"]) == ("online", "", None)   # live, reading its inbox

    sent = hub.post("/messages", {"to": "solo-codex", "text": "<b>review #42</b>"}).json()
    asked = hub.post("/ask", {"to": "solo-codex", "text": "ship it?", "queue_if_offline": True}).json()
    stop = codex_payload("Stop", repo, turn_id="t1", stop_hook_active=False, last_assistant_message="done")
    shown = hook(hub, "stop", stop, agent_pid=agent_pid, agent="codex", REPOWIRE_REMIND_INTERVAL="0")
    assert shown.returncode == 0, shown.stderr
    output = orjson.loads(shown.stdout)
    assert output["decision"] == "block"
    lines = output["reason"].splitlines()
    assert lines[0] == "repowire: 2 new for you (solo-codex@default); each is shown once:"
    assert lines[1] == "- [notify from operator] «<b>review #42</b>»"
    assert lines[2].startswith(f"- [ask {asked['correlation_id']} from operator] «ship it?»")
    trace = hub.get(f"/traces/{sent['message_id']}").json()
    assert trace["final"] == "received" and trace["stages"][-1]["reason"] == "taken"
    assert peer(hub, "solo-codex")["pending"] == 0

    again = hook(hub, "stop", stop, agent_pid=agent_pid, agent="codex", REPOWIRE_REMIND_INTERVAL="0")
    assert again.returncode == 0 and again.stdout == b""

    hub.post("/messages", {"to": "solo-codex", "text": "later news"})
    limited = hook(hub, "stop", stop, agent_pid=agent_pid, agent="codex", REPOWIRE_REMIND_INTERVAL="3600")
    assert limited.returncode == 0 and limited.stdout == b""
    assert peer(hub, "solo-codex")["pending"] == 1   # not taken while rate-limited: nothing is lost
    later = hook(hub, "stop", stop, agent_pid=agent_pid, agent="codex", REPOWIRE_REMIND_INTERVAL="0")
    assert orjson.loads(later.stdout)["reason"].splitlines()[1] == "- [notify from operator] «later news»"


def test_stop_reminds_a_pane_agent_of_open_asks_once_and_leaves_typing_to_the_pane(pane_hub, tmux, tmp_path):
    record = tmp_path / "pane.bin"
    pane = start_recorder(tmux, record, session="agents")
    agent_pid = pane_pid(pane)
    context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=agent_pid,
                    pane=pane, tmux=tmux))
    name = f"{tmp_path.name}-claude@agents"
    asked = pane_hub.post("/ask", {"to": name, "text": "which branch?"}).json()
    wait_until(lambda: received(record, "which branch?"), 10, "the ask typed into the pane")
    stop = claude_payload("Stop", tmp_path, stop_hook_active=False)
    first = hook(pane_hub, "stop", stop, agent_pid=agent_pid, pane=pane, tmux=tmux, REPOWIRE_REMIND_INTERVAL="0")
    reason = orjson.loads(first.stdout)["reason"]
    expected = frame_delivery({"kind": "ask", "correlation_id": asked["correlation_id"], "from": {"name": "operator"},
                               "text": "which branch?"})
    assert reason.splitlines()[1] == f"- {expected}"
    assert peer(pane_hub, name)["status"] == "busy"
    second = hook(pane_hub, "stop", stop | {"stop_hook_active": True}, agent_pid=agent_pid, pane=pane, tmux=tmux,
                  REPOWIRE_REMIND_INTERVAL="0")
    assert second.returncode == 0 and second.stdout == b""
    assert peer(pane_hub, name)["status"] == "online"


@pytest.mark.parametrize("event", ["session-start", "user-prompt-submit", "stop", "notification", "session-end"])
def test_hooks_are_silent_and_quick_when_the_hub_is_down(tmp_path, event):
    home = tmp_path / "home"
    home.mkdir()
    (home / "hub.token").write_text("x" * 43)
    (home / "hub.json").write_text('{"url": "http://127.0.0.1:9"}')
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "hook", event], input=b"{}", capture_output=True,
                          timeout=20, env={**os.environ, "REPOWIRE_HOME": str(home), "REPOWIRE_AGENT_PID": "1"})
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_hooks_outlive_no_hung_hub(hub, tmp_path):
    """A hub that accepts and never answers (SIGSTOP) still gets a silent exit 0 within the deadline."""
    import signal
    os.kill(hub.pid, signal.SIGSTOP)
    try:
        done = hook(hub, "user-prompt-submit", claude_payload("UserPromptSubmit", tmp_path, prompt="x"),
                    agent_pid=os.getpid())
        started = hook(hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=os.getpid())
    finally:
        os.kill(hub.pid, signal.SIGCONT)
    assert (done.returncode, done.stdout) == (0, b"") and (started.returncode, started.stdout) == (0, b"")


def test_session_routes_refuse_bad_input_and_change_nothing(hub, tmp_path):
    good = {"backend": "claude", "cwd": str(tmp_path), "agent_pid": 4242}
    for body, code in [({**good, "backend": "vim"}, "invalid_request"), ({**good, "pane_id": "12"}, "invalid_request"),
                       ({**good, "pane_id": "%1\n"}, "invalid_request"), ({**good, "agent_pid": 0}, "invalid_request"),
                       ({**good, "ancestors": list(range(1, 66))}, "invalid_request"),
                       ({**good, "name": "../x"}, "invalid_request"), ({**good, "cwd": ""}, "invalid_request")]:
        response = hub.post("/sessions", body)
        assert (response.status_code, response.json()["error"]["code"]) == (422, code), body
    assert hub.peers() == {}
    assert hub.post("/sessions", {**good, "ancestors": list(range(1, 65))}).status_code == 200

    async def as_agents() -> None:
        async with hub.client("bob") as bob, hub.client("carol") as carol:
            refused = hub.post("/sessions", good, token=bob.token)
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
            other = hub.post(f"/peers/{carol.peer_id}/presence", {"status": "busy"}, token=bob.token)
            assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden")
            own = hub.post(f"/peers/{bob.peer_id}/presence", {"status": "busy"}, token=bob.token)
            assert own.status_code == 200 and own.json()["status"] == "busy"
            bad = hub.post(f"/peers/{bob.peer_id}/presence", {"status": "sleeping"}, token=bob.token)
            assert bad.status_code == 422
            live = hub.post(f"/peers/{bob.peer_id}/inbox/take", {}, token=bob.token)
            assert (live.status_code, live.json()["error"]["code"]) == (409, "conflict")
            acting = hub.post("/messages", {"to": "carol", "text": "hi"}, headers={"X-Repowire-Peer": "carol"},
                              token=bob.token)
            assert (acting.status_code, acting.json()["error"]["code"]) == (403, "forbidden")
            assert hub.peers()["carol"]["pending"] == 0 and carol.pending_deliveries() == 0

    asyncio.run(as_agents())
    live = hub.post(f"/peers/{tmp_path.name}-claude/presence", {"status": "busy"})
    assert (live.status_code, live.json()["status"]) == (200, "busy")   # a session with no pane reads its inbox
    assert hub.post(f"/peers/{tmp_path.name}-claude/presence", {"status": "offline"}).json()["status"] == "offline"
    offline = hub.post(f"/peers/{tmp_path.name}-claude/presence", {"status": "busy"})
    assert (offline.status_code, offline.json()["error"]["code"]) == (409, "peer_offline")
    for limit, status in ((100, 200), (101, 422), (0, 422)):
        assert hub.post(f"/peers/{tmp_path.name}-claude/inbox/take", {"limit": limit}).status_code == status



def test_a_taken_message_is_not_delivered_again_when_the_agent_connects(hub, tmp_path):
    """Promise 2 for `inbox/take`: what the Stop hook took is confirmed, so a connection
    made afterwards as that peer replays nothing of it."""
    context_of(hook(hub, "session-start", claude_payload("SessionStart", tmp_path), agent_pid=os.getpid()))
    name = f"{tmp_path.name}-claude"
    taken = hub.post("/messages", {"to": name, "text": "taken once"}).json()
    shown = hook(hub, "stop", claude_payload("Stop", tmp_path, stop_hook_active=False), agent_pid=os.getpid(),
                 REPOWIRE_REMIND_INTERVAL="0")
    assert "taken once" in orjson.loads(shown.stdout)["reason"]

    async def connect() -> tuple[dict, dict]:
        async with hub.client(name) as agent:
            fresh = hub.post("/messages", {"to": name, "text": "after connecting"}).json()
            delivery = await agent.receive(10)
            return fresh, delivery

    fresh, delivery = asyncio.run(connect())
    assert (delivery["message_id"], delivery["text"]) == (fresh["message_id"], "after connecting")
    assert hub.get(f"/traces/{taken['message_id']}").json()["final"] == "received"


def test_the_session_credential_acts_as_its_peer_only_and_dies_with_the_session(watched_hub, tmp_path):
    """Issue 21: the session's own credential, scoped to its peer and revoked at SessionEnd;
    the session's questions waiting for a person close as abandoned when it ends."""
    hub = watched_hub
    start = claude_payload("SessionStart", tmp_path)
    context_of(hook(hub, "session-start", start, agent_pid=os.getpid()))
    session = orjson.loads((hub.home / "sessions" / f"id-{start['session_id']}.json").read_bytes())
    assert oct((hub.home / "sessions" / f"id-{start['session_id']}.json").stat().st_mode & 0o777) == "0o600"
    token = session["token"]
    me = hub.get("/whoami", token=token).json()
    assert (me["operator"], me["peer"]["name"]) == (False, f"{tmp_path.name}-claude")
    assert hub.post("/sessions", {"backend": "claude", "cwd": "/x", "agent_pid": 1}, token=token).status_code == 403
    waiting = threading.Thread(target=lambda: hub.post("/questions/ask-blocking", {
        "tool_name": "Bash", "tool_input": {"command": "make deploy"}, "tool_use_id": "toolu_end"}, token=token,
        timeout=30), daemon=True)
    waiting.start()
    wait_until(lambda: hub.get("/questions").json()["questions"], 10, "the session's question")
    (question,) = hub.get("/questions").json()["questions"]
    assert question["peer"]["name"] == f"{tmp_path.name}-claude"
    assert peer(hub, f"{tmp_path.name}-claude")["status"] == "awaiting_input"

    ended = hook(hub, "session-end", claude_payload("SessionEnd", tmp_path, reason="exit"), agent_pid=os.getpid())
    assert ended.returncode == 0, ended.stderr
    gone = hub.get("/whoami", token=token)
    assert (gone.status_code, gone.json()["error"]["code"]) == (401, "unauthorized")
    record = hub.get(f"/questions/{question['correlation_id']}").json()
    assert (record["state"], record["reason"]) == ("abandoned", "abandoned: session_ended")
    assert not (hub.home / "sessions" / f"id-{start['session_id']}.json").exists()
    waiting.join(30)


def test_inbox_wait_returns_the_next_message_as_it_is_queued_and_bounds_its_wait(hub, tmp_path):
    """POST /peers/{ref}/inbox/wait (the MCP tool wait_for_message): it returns with the message
    once one is queued, long before its timeout; timeout_s at most 60 and limit at most 100
    (limit and limit+1; the waiter below asks for the full 60 s)."""
    joined = hub.post("/sessions", {"backend": "claude", "cwd": str(tmp_path), "agent_pid": 1}).json()
    token, me = joined["session_token"], joined["peer"]["peer_id"]
    empty = hub.post(f"/peers/{me}/inbox/wait", {"timeout_s": 0}, token=token).json()
    assert empty == {"deliveries": [], "remaining": 0}
    for body, status in (({"timeout_s": 60.001}, 422), ({"limit": 100, "timeout_s": 0}, 200),
                         ({"limit": 101, "timeout_s": 0}, 422), ({"timeout_s": -1}, 422)):
        got = hub.post(f"/peers/{me}/inbox/wait", body, token=token)
        assert got.status_code == status, (body, got.text)
    answers: list = []
    waiter = threading.Thread(target=lambda: answers.append(
        hub.post(f"/peers/{me}/inbox/wait", {"timeout_s": 60}, token=token, timeout=70)), daemon=True)
    waiter.start()
    wait_until(lambda: waiter.is_alive(), 5, "the waiter")
    sent = hub.post("/messages", {"to": me, "text": "wake up"}).json()
    waiter.join(10)   # far less than the 60 s it asked for
    assert not waiter.is_alive()
    (delivery,) = answers[0].json()["deliveries"]
    assert (delivery["text"], delivery["message_id"]) == ("wake up", sent["message_id"])
    assert hub.get(f"/traces/{sent['message_id']}").json()["final"] == "received"


def test_a_reader_that_leaves_while_waiting_takes_nothing(hub, tmp_path):
    """Promise 2 for inbox/wait: a long-poll whose client went away (the MCP server stopped, the
    agent quit) must not take the next message and confirm it to nobody; it stays queued."""
    joined = hub.post("/sessions", {"backend": "claude", "cwd": str(tmp_path), "agent_pid": 1}).json()
    token, me = joined["session_token"], joined["peer"]["peer_id"]
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    body = b'{"timeout_s": 30}'
    with socket.create_connection((host, int(port)), timeout=10) as gone:
        gone.sendall(f"POST /peers/{me}/inbox/wait HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    sent = hub.post("/messages", {"to": me, "text": "for whoever reads next"}).json()
    (delivery,) = hub.post(f"/peers/{me}/inbox/take", {}, token=token).json()["deliveries"]
    assert (delivery["message_id"], delivery["text"]) == (sent["message_id"], "for whoever reads next")
