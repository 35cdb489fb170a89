"""tmux panes end to end: a real hub, its pane bridge and a real tmux server on a private socket,
with panes running a program that records exactly the bytes it receives."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support import link_path, recorder_command, recv, repowire, screen, send, start_recorder, wait_until
from transports.pane_text import frame_delivery

CORPUS = ["plain words", "two\nlines", "esc \x1b[31m red", "early end \x1b[201~ ; rm -rf /", "ctrl-c \x03 now",
          "unicode ✓ 日本語 🎉", "tab\there\r\nand \x7f"]


def typed(text: str) -> bytes:
    """What the recorder receives for one delivery: a bracketed paste of the framed text, then Enter."""
    return b"\x1b[200~" + text.encode() + b"\x1b[201~\r"


def trace(hub, trace_id: str) -> dict:
    return hub.get(f"/traces/{trace_id}").json()


def link(hub, pane_id: str, **body):
    return hub.post(link_path(pane_id), {"backend": "other", **body})


def peer(hub, ref: str) -> dict:
    return hub.get(f"/peers/{ref}").json()


def fake_agent(tmp_path, name: str) -> str:
    """A copy of `sleep` named like an agent, so its process is called that."""
    path = tmp_path / name
    path.write_bytes(Path("/bin/sleep").read_bytes())
    path.chmod(0o755)
    return f"{shlex.quote(str(path))} 120"


def test_a_linked_pane_gets_each_delivery_as_one_framed_neutral_block(pane_hub, tmux, tmp_path):
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record)
    response = link(pane_hub, pane.pane_id, name="rec")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["transport"] == "connected"
    assert (body["peer"]["name"], body["peer"]["circle"], body["peer"]["status"]) == ("rec", "agents", "online")
    fingerprint = body["peer"]["pane"]["fingerprint"]
    assert (fingerprint["pane_id"], fingerprint["pid"]) == (pane.pane_id, int(pane.pane_pid))
    assert fingerprint["server"].endswith("/" + tmux.socket_name) and fingerprint["started_at"] > 0

    expected = b""
    for text in CORPUS:
        sent = pane_hub.post("/messages", {"to": "rec@agents", "text": text}).json()
        expected += typed(frame_delivery({"kind": "notify", "text": text, "from": {"name": "operator"}}))
        wait_until(lambda: record.read_bytes() == expected, 10, f"the bytes of {text!r}")
        wait_until(lambda: trace(pane_hub, sent["message_id"])["final"] == "injected", 5, "the injected receipt")
    inner = expected.replace(b"\x1b[200~", b"").replace(b"\x1b[201~", b"").replace(b"\r", b"")
    assert not any(byte < 0x20 or byte == 0x7F for byte in inner)
    assert "[notify from operator] «early end ␛[201~ ; rm -rf /»".encode() in inner
    assert "[notify from operator] «two ↵ lines»".encode() in inner

    asked = pane_hub.post("/ask", {"to": "rec@agents", "text": "ready?", "timeout_s": 60}).json()
    cid = asked["correlation_id"]
    wait_until(lambda: f'[ask {cid} from operator] «ready?» — reply: repowire ack {cid} "<answer>"'.encode()
               in record.read_bytes(), 10, "the ask in the pane")
    # the bridge types first and sends its receipt after: the stage follows the bytes
    stages = wait_until(lambda: (s := [st["stage"] for st in trace(pane_hub, cid)["stages"]]) and "injected" in s and s,
                        10, "the ask's injected receipt")
    assert stages[:2] == ["accepted", "routed"]


def test_orphans_are_exactly_the_unbound_panes(pane_hub, tmux, tmp_path):
    record = tmp_path / "received.bin"
    linked = start_recorder(tmux, record)
    work = tmux.new_session(session_name="work", window_command=f"cd {shlex.quote(str(tmp_path))} && "
                                                                 f"{fake_agent(tmp_path, 'claude')}", detach=True)
    claude = work.active_window.active_pane
    split = work.active_window.split(shell="sleep 120")
    wait_until(lambda: "claude" in tmux.cmd("display-message", "-p", "-t", claude.pane_id,
                                            "#{pane_current_command}").stdout, 10, "the fake agent")
    assert link(pane_hub, linked.pane_id, name="rec").status_code == 201

    orphans = pane_hub.get("/panes/orphans").json()
    assert {p["pane_id"] for p in orphans["panes"]} == {claude.pane_id, split.pane_id}
    found = {p["pane_id"]: p for p in orphans["panes"]}[claude.pane_id]
    assert (found["agent"], found["confidence"], found["session"], found["cwd"]) == ("claude", 0.95, "work",
                                                                                    str(tmp_path))
    assert found["bridge"] == orphans["bridges"][0] and found["fingerprint"]["pid"] == int(claude.pane_pid)

    assert pane_hub.post("/peers/rec@agents/unlink").status_code == 200
    again = {p["pane_id"] for p in pane_hub.get("/panes/orphans").json()["panes"]}
    assert again == {claude.pane_id, split.pane_id, linked.pane_id}


def test_bad_link_requests_get_their_codes_and_change_nothing(pane_hub, tmux, tmp_path):
    pane = start_recorder(tmux, tmp_path / "received.bin")
    before = pane_hub.get("/peers").json()["peers"]
    cases = [("/panes/abc/link", {"backend": "other"}, 422, "invalid_request"),
             ("/panes/%2512x/link", {"backend": "other"}, 422, "invalid_request"),
             ("/panes/%25999/link", {"backend": "other"}, 404, "pane_not_found"),
             (link_path(pane.pane_id), {"backend": "vim"}, 422, "invalid_request"),
             (link_path(pane.pane_id), {"backend": "other", "name": "bad name"}, 422, "invalid_request")]
    for path, body, status, code in cases:
        response = pane_hub.post(path, body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (path, body)
    assert pane_hub.get("/peers").json()["peers"] == before

    async def agent_token() -> str:
        async with pane_hub.client("mallory") as client:
            return client.token
    token = asyncio.run(agent_token())
    refused = pane_hub.post(link_path(pane.pane_id), {"backend": "other"}, token=token)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")

    assert link(pane_hub, pane.pane_id, name="rec").status_code == 201
    twice = link(pane_hub, pane.pane_id, name="other-name")
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "already_linked")
    assert "other-name" not in pane_hub.peers()


def test_a_name_a_live_peer_has_is_refused(pane_hub, tmux, tmp_path):
    pane = start_recorder(tmux, tmp_path / "received.bin")

    async def while_alice_is_online():
        async with pane_hub.client("alice", circle="agents"):
            return link(pane_hub, pane.pane_id, name="alice")
    taken = asyncio.run(while_alice_is_online())
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "name_taken")


def test_link_is_undone_when_the_transport_cannot_start(start_hub, tmux, tmp_path):
    # The bridge's own connection is the hub's only one: the pane's connection is refused.
    hub = start_hub("--tmux-socket", tmux.socket_name, "--limit", "max_connections=1")
    wait_until(lambda: hub.get("/panes/orphans").status_code == 200, 20, "the pane bridge to connect")
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record)
    response = link(hub, pane.pane_id, name="rec")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "transport_failed" and "too_many_connections" in error["message"]
    assert error["details"]["cause"] == "transport_failed"
    assert "rec" not in hub.peers()
    assert [p["pane_id"] for p in hub.get("/panes/orphans").json()["panes"]] == [pane.pane_id]
    assert record.read_bytes() == b""


def test_a_pane_whose_process_was_replaced_gets_nothing_and_the_trace_says_why(start_hub, tmux, tmp_path):
    # A bridge that never polls (watch interval 60 s): the check before the paste must catch it.
    hub = start_hub()
    env = {**os.environ, "REPOWIRE_HOME": str(hub.home)}
    env.pop("REPOWIRE_URL", None)
    bridge = subprocess.Popen([sys.executable, "-m", "hub.cli.main", "bridge", "--tmux-socket", tmux.socket_name,
                               "--watch-interval", "60"], env=env, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: hub.get("/panes/orphans").status_code == 200, 20, "the bridge to connect")
        first, second = tmp_path / "first.bin", tmp_path / "second.bin"
        pane = start_recorder(tmux, first)
        assert link(hub, pane.pane_id, name="rec").status_code == 201
        second.touch()
        tmux.cmd("respawn-pane", "-k", "-t", pane.pane_id, recorder_command(second))
        wait_until(lambda: screen(tmux, pane.pane_id).count("recorder ready") == 1
                   and tmux.cmd("display-message", "-p", "-t", pane.pane_id, "#{pane_pid}").stdout
                   != [pane.pane_pid], 10, "the new process")
        sent = hub.post("/messages", {"to": "rec@agents", "text": "for the old agent only"}).json()
        assert sent["state"] == "delivered"
        wait_until(lambda: peer(hub, "rec@agents")["status"] == "offline", 10, "the transport to leave")
        stages = trace(hub, sent["message_id"])["stages"]
        held = [s for s in stages if s["stage"] == "held"]
        assert len(held) == 1 and held[0]["reason"].startswith("pane_replaced: the pane changed: ")
        assert "pid" in held[0]["reason"] and trace(hub, sent["message_id"])["final"] is None
        view = peer(hub, "rec@agents")
        assert (view["status_reason"], view["pending"]) == ("pane_replaced", 1)
        assert first.read_bytes() == b"" and second.read_bytes() == b""
        report = hub.get("/peers/rec@agents/doctor").json()
        assert report["checks"]["fingerprint_matches"] is False and "pid" in report["checks"]["changed"]
        assert "fingerprint_changed" in [c["code"] for c in report["contradictions"]]
        # at-least-once: linking the pane as it is now (same name) delivers what was held, once
        relinked = link(hub, pane.pane_id, name="rec")
        assert relinked.status_code == 201 and relinked.json()["peer"]["peer_id"] == view["peer_id"]
        typed_once = "[notify from operator] «for the old agent only»".encode()
        wait_until(lambda: typed_once in second.read_bytes(), 10, "the held message")
        wait_until(lambda: trace(hub, sent["message_id"])["final"] == "injected", 10, "its injected receipt")
        assert second.read_bytes().count(typed_once) == 1 and first.read_bytes() == b""
    finally:
        bridge.terminate()
        bridge.wait(10)


def test_a_pane_that_closes_takes_its_peer_offline_and_doctor_says_so(pane_hub, tmux, tmp_path):
    pane = start_recorder(tmux, tmp_path / "received.bin")
    assert link(pane_hub, pane.pane_id, name="rec").status_code == 201
    healthy = pane_hub.get("/peers/rec@agents/doctor").json()
    assert healthy["healthy"] is True and healthy["contradictions"] == []
    assert healthy["checks"]["transport_connected"] and healthy["checks"]["pid_alive"]

    tmux.cmd("kill-pane", "-t", pane.pane_id)
    wait_until(lambda: peer(pane_hub, "rec@agents")["status_reason"] == "pane_closed", 10, "the peer to go offline")
    sent = pane_hub.post("/messages", {"to": "rec@agents", "text": "kept for later"}).json()
    assert sent["state"] == "queued"
    queued = [s for s in trace(pane_hub, sent["message_id"])["stages"] if s["stage"] == "queued"]
    assert queued[0]["reason"] == "recipient_offline"
    report = pane_hub.get("/peers/rec@agents/doctor").json()
    assert report["healthy"] is False
    assert (report["checks"]["pane_exists"], report["checks"]["pending"]) == (False, 1)
    assert [(c["code"], c["severity"]) for c in report["contradictions"]] == [("pane_missing", "error")]
    plan = pane_hub.post("/peers/rec@agents/rehook", {"apply": True}).json()
    assert (plan["action"], plan["applied"]) == ("none", False)


def test_output_and_keys(pane_hub, tmux, tmp_path):
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record)
    assert link(pane_hub, pane.pane_id, name="rec").status_code == 201

    shown = pane_hub.get("/peers/rec@agents/output", params={"lines": 20}).json()
    assert shown["lines"][-1] == "recorder ready" and shown["pane_id"] == pane.pane_id
    assert trace(pane_hub, shown["trace_id"])["final"] == "received"
    for lines, status in ((2000, 200), (2001, 422), (0, 422)):
        assert pane_hub.get("/peers/rec@agents/output", params={"lines": lines}).status_code == status

    sent = pane_hub.post("/peers/rec@agents/keys", {"keys": ["Escape", "Ctrl-C", "Enter", "Up"]})
    assert sent.status_code == 200, sent.text
    wait_until(lambda: record.read_bytes() == b"\x1b\x03\r\x1b[A", 5, "the keys")
    assert trace(pane_hub, sent.json()["trace_id"])["stages"][-1]["keys"] == "Escape Ctrl-C Enter Up"

    at_limit = pane_hub.post("/peers/rec@agents/keys", {"keys": ["1"] * 16})
    assert at_limit.status_code == 200
    wait_until(lambda: record.read_bytes().endswith(b"1" * 16), 5, "sixteen keys")
    for keys in (["1"] * 17, ["Ctrl-Z"], ["rm -rf ~"], []):
        refused = pane_hub.post("/peers/rec@agents/keys", {"keys": keys})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request"), keys

    async def as_agent():
        async with pane_hub.client("mallory", circle="agents") as client:
            return (pane_hub.post("/peers/rec@agents/keys", {"keys": ["Enter"]}, token=client.token),
                    pane_hub.get("/peers/rec@agents/output", token=client.token),
                    pane_hub.get("/peers/mallory@agents/output", token=client.token))
    keys_by_agent, output_by_agent, not_a_pane = asyncio.run(as_agent())
    assert (keys_by_agent.status_code, keys_by_agent.json()["error"]["code"]) == (403, "forbidden")
    assert (output_by_agent.status_code, output_by_agent.json()["error"]["code"]) == (403, "forbidden"), \
        "another agent's screen is not an agent's to read (F6)"
    assert (not_a_pane.status_code, not_a_pane.json()["error"]["code"]) == (409, "not_linked")
    assert record.read_bytes().endswith(b"1" * 16)  # nothing more reached the pane


def test_rehook_restarts_only_a_dead_transport_and_its_dry_run_changes_nothing(pane_hub, tmux, tmp_path):
    record = tmp_path / "received.bin"
    # The agent exits and comes back in the same pane (an interactive shell runs it in the
    # foreground, as a person's shell does): while it is away the transport leaves.
    script = recorder_command(record) + "; sleep 2; " + recorder_command(record)
    command = f"bash --norc --noprofile -i -c {shlex.quote(script)}"
    pane = start_recorder(tmux, record, command=command)
    assert link(pane_hub, pane.pane_id, name="rec").status_code == 201
    agent = psutil.Process(int(pane.pane_pid)).children()[0]
    os.kill(agent.pid, signal.SIGTERM)
    wait_until(lambda: peer(pane_hub, "rec@agents")["status_reason"] == "agent_exited", 10, "the transport to leave")
    wait_until(lambda: screen(tmux, pane.pane_id).count("recorder ready") == 2, 15, "the agent to come back")
    wait_until(lambda: pane_hub.get("/peers/rec@agents/doctor").json()["checks"]["fingerprint_matches"], 10)
    report = pane_hub.get("/peers/rec@agents/doctor").json()
    assert [c["code"] for c in report["contradictions"]] == ["transport_down"]

    before = peer(pane_hub, "rec@agents")
    dry = pane_hub.post("/peers/rec@agents/rehook")
    assert dry.status_code == 200
    assert (dry.json()["action"], dry.json()["applied"], dry.json()["transport_connected"]) == \
        ("restart_transport", False, False)
    assert peer(pane_hub, "rec@agents") == before

    applied = pane_hub.post("/peers/rec@agents/rehook", {"apply": True}).json()
    assert (applied["action"], applied["applied"], applied["transport_connected"]) == ("restart_transport", True, True)
    online = peer(pane_hub, "rec@agents")
    assert online["status"] == "online"
    sent = pane_hub.post("/messages", {"to": "rec@agents", "text": "welcome back"}).json()
    wait_until(lambda: trace(pane_hub, sent["message_id"])["final"] == "injected", 10, "the delivery")
    assert "[notify from operator] «welcome back»".encode() in record.read_bytes()

    again = pane_hub.post("/peers/rec@agents/rehook", {"apply": True}).json()
    assert (again["action"], again["applied"]) == ("none", False)
    assert peer(pane_hub, "rec@agents")["last_seen"] == online["last_seen"]  # the healthy one was not touched


def test_unlink_keeps_the_identity_and_the_mail_for_a_later_link(pane_hub, tmux, tmp_path):
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record)
    linked = link(pane_hub, pane.pane_id, name="rec").json()["peer"]
    unlinked = pane_hub.post("/peers/rec@agents/unlink")
    assert unlinked.json() == {"peer_id": linked["peer_id"], "pane_id": pane.pane_id, "status": "offline"}
    view = peer(pane_hub, "rec@agents")
    assert (view["status_reason"], view.get("pane")) == ("unlinked", None)
    again = pane_hub.post("/peers/rec@agents/unlink")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_linked")

    sent = pane_hub.post("/messages", {"to": "rec@agents", "text": "while unlinked"}).json()
    assert sent["state"] == "queued" and record.read_bytes() == b""
    relinked = link(pane_hub, pane.pane_id, name="rec").json()["peer"]
    assert relinked["peer_id"] == linked["peer_id"]
    wait_until(lambda: "[notify from operator] «while unlinked»".encode() in record.read_bytes(), 10, "the queued message")


def test_the_command_line_lists_links_checks_and_unlinks(pane_hub, tmux, tmp_path):
    pane = start_recorder(tmux, tmp_path / "received.bin")
    table = repowire(pane_hub, "link")
    assert table.returncode == 0 and pane.pane_id in table.stdout and "agents:0" in table.stdout
    done = repowire(pane_hub, "link", pane.pane_id, "--backend", "other", "--name", "cli")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"linked {pane.pane_id} as cli@agents")
    doctor = repowire(pane_hub, "doctor", "cli@agents")
    assert doctor.returncode == 0 and "healthy" in doctor.stdout.splitlines()[0]
    shown = repowire(pane_hub, "output", "cli@agents", "--lines", "5")
    assert shown.returncode == 0 and "recorder ready" in shown.stdout
    refused = repowire(pane_hub, "link", pane.pane_id, "--backend", "other")
    assert refused.returncode == 1 and "already_linked" in refused.stderr
    assert repowire(pane_hub, "unlink", "cli@agents").returncode == 0
    assert "no orphan panes" not in repowire(pane_hub, "link").stdout


async def test_the_bridge_role_needs_the_hub_token(hub):
    ws = await hub.raw(hub_token=False)
    await send(ws, {"type": "hello", "name": "fake-bridge", "role": "bridge"})
    refused = await recv(ws)
    assert refused["error"]["code"] == "forbidden"
    await ws.close()
    # a bridge_result from a peer that is not a bridge is ignored, and the connection lives on
    ws, _ = await hub.raw_peer("agent")
    await send(ws, {"type": "bridge_result", "call_id": "0" * 32, "ok": True, "result": {}})
    await send(ws, {"type": "ping", "id": "p1"})
    assert await recv(ws) == {"type": "pong", "ref": "p1"}
    await ws.close()


def test_pane_routes_are_ready_as_soon_as_serve_says_so(start_hub, tmux):
    """Right after hub.json is written the bridge that serve started may not have said hello;
    the pane routes wait for it (bounded) instead of answering bridge_unavailable."""
    tmux.new_session(session_name="agents", window_command="sleep 600", attach=False)
    hub = start_hub("--tmux-socket", tmux.socket_name)
    first = hub.get("/panes/orphans")
    assert first.status_code == 200, first.text
    assert len(first.json()["bridges"]) == 1 and len(first.json()["panes"]) == 1


def test_without_a_bridge_of_its_own_the_hub_says_so_at_once(hub):
    refused = hub.get("/panes/orphans")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "bridge_unavailable"


def test_after_the_hub_is_killed_its_bridge_exits_and_the_restarted_hub_brings_the_pane_back(pane_hub, tmux,
                                                                                             tmp_path):
    """Issue 21 (i): the bridge of a SIGKILLed hub used to live on beside the restarted hub's,
    and the panes stayed offline until `rehook`. Now one bridge serves a tmux server, it
    follows its hub, and a restart needs nobody."""
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record)
    assert link(pane_hub, pane.pane_id, name="rec").status_code == 201
    lock = next((pane_hub.home / "bridges").glob("*.lock"))
    old_bridge = int(lock.read_text())
    assert psutil.Process(old_bridge).ppid() == pane_hub.pid

    pane_hub.kill()
    wait_until(lambda: not psutil.pid_exists(old_bridge) or psutil.Process(old_bridge).status() == "zombie", 10,
               "the old bridge to exit")
    pane_hub.restart()
    wait_until(lambda: peer(pane_hub, "rec@agents")["status"] == "online", 30, "the pane's peer back online")
    new_bridge = int(lock.read_text())
    assert new_bridge != old_bridge and psutil.Process(new_bridge).ppid() == pane_hub.pid
    bridges = [p for p in psutil.process_iter(["cmdline"])
               if "bridge" in (p.info["cmdline"] or []) and tmux.socket_name in (p.info["cmdline"] or [])]
    assert [p.pid for p in bridges] == [new_bridge]

    sent = pane_hub.post("/messages", {"to": "rec@agents", "text": "after the restart"}).json()
    wait_until(lambda: trace(pane_hub, sent["message_id"])["final"] == "injected", 10, "the delivery injected")
    assert b"after the restart" in record.read_bytes()


def test_a_second_bridge_for_the_same_tmux_server_does_not_start(pane_hub, tmux):
    started = subprocess.run([sys.executable, "-m", "hub.cli.main", "bridge", "--tmux-socket", tmux.socket_name],
                             env={**os.environ, "REPOWIRE_HOME": str(pane_hub.home), "REPOWIRE_TOKEN": pane_hub.token},
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 1
    assert "another bridge" in started.stderr and "serves this tmux server" in started.stderr


def test_a_delivery_that_is_never_submitted_is_retried_then_failed_never_injected(pane_hub, tmux, tmp_path):
    """Issue 21 (c): an input box that keeps the text after Enter. The bridge sends Enter again,
    at most 3 times, then traces failed(not_submitted)."""
    record = tmp_path / "received.bin"
    pane = start_recorder(tmux, record, command=recorder_command(record, "--swallow-enter"))
    assert link(pane_hub, pane.pane_id, name="stuck").status_code == 201
    sent = pane_hub.post("/messages", {"to": "stuck@agents", "text": "are you there"}).json()
    wait_until(lambda: trace(pane_hub, sent["message_id"])["final"] == "failed", 30, "the delivery to fail")
    stages = trace(pane_hub, sent["message_id"])["stages"]
    assert "injected" not in [s["stage"] for s in stages]
    assert stages[-1]["reason"] == "not_submitted"
    assert record.read_bytes().count(b"\r") == 3   # Enter, and two more tries
