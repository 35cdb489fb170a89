"""The `repowire` commands as a person runs them, against a real hub."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading

import httpx
import orjson

from hub.cli.serve import bind_tcp
from tests.support import repowire, wait_until


def test_notify_peers_and_trace(hub):
    async def register():
        async with hub.client("bob", circle="ops"):
            pass
    asyncio.run(register())
    sent = repowire(hub, "notify", "bob", "hello from the terminal", "--json")
    assert sent.returncode == 0, sent.stderr
    body = orjson.loads(sent.stdout)
    assert body["state"] == "queued"
    listing = repowire(hub, "peers")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CIRCLE", "STATUS", "PENDING", "PEER", "ID"]
    assert lines[1].split()[:4] == ["bob", "ops", "offline", "1"]
    as_json = orjson.loads(repowire(hub, "peers", "--json", "--circle", "ops").stdout)
    assert [p["name"] for p in as_json["peers"]] == ["bob"]
    trace = repowire(hub, "trace", body["message_id"])
    assert trace.returncode == 0
    assert [line.split()[2] for line in trace.stdout.splitlines()[1:]] == ["accepted", "routed", "queued"]


def test_refusals_exit_1_with_the_code(hub):
    done = repowire(hub, "notify", "nobody", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("repowire: peer_not_found:")
    missing = repowire(hub, "trace", "f" * 32)
    assert missing.returncode == 1 and "trace_not_found" in missing.stderr


def test_unreachable_hub_exits_2_and_says_how_to_start_it(tmp_path):
    env = {**os.environ, "REPOWIRE_HOME": str(tmp_path), "REPOWIRE_URL": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "peers"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "cannot reach the hub at http://127.0.0.1:9" in done.stderr and "repowire serve" in done.stderr


def test_help_texts_name_every_command():
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for command in ("serve", "peers", "notify", "trace"):
        assert command in done.stdout


def test_a_busy_port_is_a_clear_error(hub, tmp_path):
    port = hub.url.rsplit(":", 1)[1]
    env = {**os.environ, "REPOWIRE_HOME": str(tmp_path / "other")}
    done = subprocess.run([sys.executable, "-m", "hub.cli.main", "serve", "--port", port], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_the_listener_disables_nagle_for_every_accepted_connection():
    """asyncio leaves TCP_NODELAY off on sockets accepted from a listener it was handed; the
    hub sets it on the listener (inherited on Linux), or every small frame can wait 40 ms."""
    listener = bind_tcp("127.0.0.1", 0)
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        for s in (client, accepted, listener):
            s.close()


def test_questions_approve_deny_and_policies_at_a_terminal(watched_hub):
    hub = watched_hub
    results: dict[str, dict] = {}

    def ask(tool_use_id: str, command: str) -> threading.Thread:
        def run():
            with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {hub.token}"}, timeout=60) as c:
                results[tool_use_id] = c.post("/questions/ask-blocking", json={
                    "tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": tool_use_id}).json()
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    first, second = ask("t-1", "git push origin main"), ask("t-2", "rm -rf build")
    listing = wait_until(lambda: (r := repowire(hub, "questions")) and r.stdout.count("Bash") == 2 and r, 15,
                         "two questions listed")
    assert listing.stdout.splitlines()[0].split() == ["ID", "PEER", "TOOL", "LEFT", "WHAT"]
    ids = {line.split()[-1]: line.split()[0] for line in listing.stdout.splitlines()[1:3]}
    assert set(ids) == {"main", "build"}
    approved = repowire(hub, "approve", ids["main"], "--yes")
    assert approved.returncode == 0 and approved.stdout.startswith("allow  Bash: git push origin main")
    denied = repowire(hub, "deny", ids["build"], "--reason", "keep the build")
    assert denied.returncode == 0, denied.stderr
    first.join(20)
    second.join(20)
    assert results["t-1"]["decision"] == "allow" and results["t-1"]["answered_by"] == "human"
    assert results["t-2"] == {"correlation_id": ids["build"], "decision": "deny", "answered_by": "human",
                              "reason": "keep the build"}
    twice = repowire(hub, "approve", ids["build"])
    assert twice.returncode == 1 and "already decided: deny" in twice.stderr
    assert repowire(hub, "questions").stdout.strip() == "no questions waiting"

    added = repowire(hub, "policy", "add", "allow", "--tool", "Bash", "--input", "command=git status*",
                     "--priority", "5", "--reason", "read-only", "--json")
    assert added.returncode == 0, added.stderr
    rule = orjson.loads(added.stdout)
    assert rule["input"] == {"command": "git status*"} and rule["priority"] == 5
    assert repowire(hub, "policies").stdout.splitlines()[1].split()[:4] == [rule["id"], "5", "allow", "Bash"]
    assert repowire(hub, "policy", "add", "allow", "--input", "no-equals-sign").returncode == 2
    assert repowire(hub, "policy", "rm", rule["id"]).returncode == 0
    gone = repowire(hub, "policy", "rm", rule["id"])
    assert gone.returncode == 1 and "policy_not_found" in gone.stderr
