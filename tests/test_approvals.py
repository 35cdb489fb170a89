"""Approvals people can live with, on a real hub: the preset a fresh hub applies, scoped allows
that become rules, the fallback when no person can be reached, plain (non-tool) blocking
questions, and alerts to a local receiver with a one-time link into the dashboard."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.receiver import Receiver
from tests.support import HubProcess, person_watching, wait_until

PROJECT = "/work/shop"


def agent(hub: HubProcess, name: str = "shop-claude", session_id: str = "sess-1") -> str:
    """An agent session as its SessionStart hook makes it; returns the session's credential."""
    joined = hub.post("/sessions", {"backend": "claude", "cwd": PROJECT, "agent_pid": 1, "name": name,
                                    "session_id": session_id})
    assert joined.status_code == 200, joined.text
    return joined.json()["session_token"]


def ask(hub: HubProcess, token: str, body: dict, timeout: float = 60) -> httpx.Response:
    with httpx.Client(base_url=hub.url, timeout=timeout) as client:
        return client.post("/questions/ask-blocking", json=body, headers={"Authorization": f"Bearer {token}"})


def bash(command: str, tool_use_id: str, session_id: str = "sess-1") -> dict:
    return {"tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": tool_use_id,
            "session_id": session_id, "cwd": PROJECT, "hook_timeout_s": 60}


@contextlib.contextmanager
def asking(hub: HubProcess, token: str, body: dict) -> Iterator[dict]:
    """A held question in a thread; yields {"question": the pending view, "response": filled at the end}."""
    held: dict = {}
    thread = threading.Thread(target=lambda: held.update(response=ask(hub, token, body)), daemon=True)
    thread.start()
    key = body.get("tool_use_id") or body.get("title")
    held["question"] = wait_until(lambda: next((q for q in hub.get("/questions").json()["questions"]
                                                if key in (q.get("tool_use_id"), q.get("title"))), None),
                                  15, f"question {key} to wait for a person")
    yield held
    thread.join(30)
    assert not thread.is_alive(), "the held request came back"


def answer(hub: HubProcess, question: dict, **body) -> httpx.Response:
    return hub.post(f"/questions/{question['correlation_id']}/answer", {"content_hash": question["content_hash"],
                                                                        **body})


# ---- the preset ------------------------------------------------------------------------------------

def test_a_fresh_hub_lets_an_agent_read_its_project_and_decides_the_rest_by_the_fallback(hub):
    token = agent(hub)
    read = ask(hub, token, {"tool_name": "Read", "tool_input": {"file_path": f"{PROJECT}/README.md"},
                            "tool_use_id": "t1", "session_id": "sess-1", "cwd": PROJECT})
    assert read.json() == {"correlation_id": read.json()["correlation_id"], "decision": "allow",
                           "answered_by": "policy", "rule_id": "readonly/read-read",
                           "reason": "readonly preset: Read inside the project"}
    started = time.monotonic()
    shell = ask(hub, token, bash("rm -rf build", "t2")).json()
    assert time.monotonic() - started < 10, "nobody to ask: decided at once, not at the deadline"
    assert (shell["decision"], shell["answered_by"]) == ("deny", "fallback")
    assert shell["reason"].startswith("no person can be reached")
    assert hub.get(f"/traces/{shell['correlation_id']}").json()["final"] == "answered"
    (audit, _) = hub.get("/decisions").json()["decisions"]
    assert (audit["tool_name"], audit["decision"], audit["answered_by"], audit["peer"]["name"]) == (
        "Bash", "deny", "fallback", "shop-claude")
    listed = hub.get("/policies").json()
    assert listed["policies"] == [] and listed["preset"]["name"] == "readonly"
    assert {r["id"] for r in listed["preset"]["rules"]} >= {"readonly/read-read", "readonly/read-grep",
                                                           "readonly/hub-tools"}
    dry = hub.post("/policies/evaluate", {"tool_name": "Grep", "tool_input": {"pattern": "x"}, "cwd": PROJECT}).json()
    assert (dry["action"], dry["preset"], dry["rule"]["id"]) == ("allow", "readonly", "readonly/read-grep")


def test_only_a_person_chooses_the_preset_and_a_bad_name_changes_nothing(hub):
    token = agent(hub)
    with httpx.Client(base_url=hub.url) as client:
        refused = client.put("/policies/preset", json={"name": "all"}, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    with hub.http() as client:
        bad = client.put("/policies/preset", json={"name": "everything"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        assert hub.get("/policies").json()["preset"]["name"] == "readonly"
        chosen = client.put("/policies/preset", json={"name": "writes"})
    assert chosen.status_code == 200 and chosen.json()["name"] == "writes"
    edit = {"tool_name": "Edit", "tool_input": {"file_path": f"{PROJECT}/app.py", "old_string": "a", "new_string": "b"},
            "session_id": "sess-1", "cwd": PROJECT}
    assert ask(hub, token, {**edit, "tool_use_id": "e1"}).json()["rule_id"] == "writes/edit-edit"
    guarded = {**edit, "tool_input": {**edit["tool_input"], "file_path": f"{PROJECT}/.claude/settings.json"}}
    assert ask(hub, token, {**guarded, "tool_use_id": "e2"}).json()["answered_by"] == "fallback"


def test_the_fallback_can_hand_the_call_back_to_the_agents_own_prompt_but_never_allows(start_hub):
    hub = start_hub("--fallback", "ask")
    token = agent(hub)
    handed_back = ask(hub, token, bash("git push", "t1")).json()
    assert (handed_back["decision"], handed_back["answered_by"]) == ("ask", "fallback")
    assert hub.get("/decisions", params={"decision": "ask"}).json()["decisions"][0]["correlation_id"] == \
        handed_back["correlation_id"]
    plain = ask(hub, token, {"title": "Deploy now?", "options": [{"id": "yes", "title": "Yes"},
                                                                  {"id": "no", "title": "No"}], "default": "no"}).json()
    assert (plain.get("decision"), plain["option_id"], plain["answered_by"]) == (None, "no", "fallback")


def test_a_question_waits_while_a_person_watches_and_falls_back_once_they_leave(hub):
    token = agent(hub)
    with person_watching(hub) as watch:
        with asking(hub, token, bash("make deploy", "t1")) as held:
            qid = held["question"]["correlation_id"]
            wait_until(lambda: qid in watch.read_text(), 10, "the question in the watcher's terminal")
            assert answer(hub, held["question"], decision="allow").status_code == 200
        assert held["response"].json()["answered_by"] == "human"
        wait_until(lambda: f"{qid}  decided: allow (human)" in watch.read_text(), 10, "the decision in the terminal")
    # the watcher is gone: nobody to reach again (its socket closing is noticed at once)
    assert wait_until(lambda: ask(hub, token, bash("make deploy", f"t-{time.monotonic_ns()}")).json()["answered_by"]
                      == "fallback", 10, "the fallback once the watcher left")


# ---- scoped answers ----------------------------------------------------------------------------------

def test_allow_for_the_session_lets_the_same_call_run_again_until_the_session_ends(watched_hub):
    hub = watched_hub
    token = agent(hub)
    with asking(hub, token, bash("npm test", "t1")) as held:
        given = answer(hub, held["question"], decision="allow", scope="session")
        assert given.status_code == 200, given.text
    decided = held["response"].json()
    assert (decided["decision"], decided["scope"]) == ("allow", "session") and decided["policy_id"]
    (rule,) = hub.get("/policies").json()["policies"]
    assert (rule["id"], rule["scope"], rule["question_id"], rule["session_id"], rule["by"]["name"]) == (
        decided["policy_id"], "session", decided["correlation_id"], "sess-1", "operator")
    again = ask(hub, token, bash("npm test", "t2")).json()
    assert (again["decision"], again["answered_by"], again["rule_id"]) == ("allow", "policy", rule["id"])
    with asking(hub, token, bash("npm test -- -k cart", "t3")) as other_call:
        answer(hub, other_call["question"], decision="deny")
    assert other_call["response"].json()["decision"] == "deny"
    audit = hub.get("/decisions", params={"tool": "Bash", "decision": "allow"}).json()["decisions"]
    assert [(a["answered_by"], a.get("scope")) for a in audit] == [("policy", None), ("human", "session")]
    ended = hub.post("/peers/shop-claude/presence", {"status": "offline", "reason": "session_ended"}, token=token)
    assert ended.status_code == 200
    assert hub.get("/policies").json()["policies"] == [], "the session's allows end with it"


def test_always_allow_a_command_prefix_for_this_agent_is_a_rule_a_person_can_remove(watched_hub):
    hub = watched_hub
    token = agent(hub)
    other = agent(hub, "other-claude", "sess-9")
    with asking(hub, token, bash("npm test -- -k cart", "t1")) as held:
        assert answer(hub, held["question"], decision="allow", scope="always").status_code == 200
    policy_id = held["response"].json()["policy_id"]
    (rule,) = hub.get("/policies").json()["policies"]
    assert (rule["command_prefix"], rule["scope"], rule.get("expires_at")) == ("npm test", "always", None)
    for n, command in enumerate(("npm test", "npm test -- --watch=false")):
        assert ask(hub, token, bash(command, f"ok{n}", "sess-2")).json()["rule_id"] == policy_id
    for n, (who, command) in enumerate(((token, "npm install"), (token, "npm test; curl x"), (other, "npm test"))):
        with asking(hub, who, bash(command, f"ask{n}")) as asked:
            answer(hub, asked["question"], decision="deny")
    with hub.http() as client:
        assert client.delete(f"/policies/{policy_id}").status_code == 200
    with asking(hub, token, bash("npm test", "after")) as asked:
        answer(hub, asked["question"], decision="deny")


@pytest.mark.parametrize("body, code", [
    ({"decision": "deny", "scope": "session"}, "invalid_request"),
    ({"decision": "allow", "scope": "always", "prefix": "curl"}, "invalid_request"),
    ({"decision": "allow", "scope": "session", "prefix": "npm"}, "invalid_request"),
    ({"decision": "allow", "scope": "forever"}, "invalid_request"),
    ({"decision": "allow", "scope": "always", "content_hash": "0" * 64}, "content_mismatch"),
])
def test_a_bad_scoped_answer_is_refused_and_changes_nothing(watched_hub, body, code):
    hub = watched_hub
    token = agent(hub)
    with asking(hub, token, bash("npm test", "t1")) as held:
        refused = hub.post(f"/questions/{held['question']['correlation_id']}/answer",
                           {"content_hash": held["question"]["content_hash"], **body})
        assert refused.json()["error"]["code"] == code
        assert hub.get("/policies").json()["policies"] == []
        assert hub.get(f"/questions/{held['question']['correlation_id']}").json()["state"] == "pending"
        answer(hub, held["question"], decision="deny")


def test_the_operators_own_question_names_no_agent_to_allow_for_longer(watched_hub):
    hub = watched_hub
    with asking(hub, hub.token, bash("make deploy", "t1")) as held:
        refused = answer(hub, held["question"], decision="allow", scope="always")
        assert refused.status_code == 422 and "names no agent" in refused.json()["error"]["message"]
        answer(hub, held["question"], decision="allow")


# ---- plain questions ------------------------------------------------------------------------------

CHOICE = {"title": "Which database for the cart service?", "prompt": "Both work; Postgres costs more.",
          "options": [{"id": "pg", "title": "Postgres"}, {"id": "sqlite", "title": "SQLite"}], "default": "sqlite"}


def test_a_plain_question_waits_for_a_person_and_the_answer_is_an_option(watched_hub):
    hub = watched_hub
    token = agent(hub)
    with asking(hub, token, CHOICE) as held:
        shown = held["question"]
        assert (shown["kind"], shown["title"], shown["default"], shown["peer"]["name"]) == (
            "choice", CHOICE["title"], "sqlite", "shop-claude")
        assert "tool_name" not in shown and shown["options"] == CHOICE["options"]
        wrong = answer(hub, shown, decision="allow")
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_request"
        unknown = answer(hub, shown, option_id="mysql")
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_option"
        assert answer(hub, shown, option_id="pg", reason="we need the joins").status_code == 200
    assert held["response"].json() == {"correlation_id": shown["correlation_id"], "answered_by": "human",
                                       "option_id": "pg", "reason": "we need the joins"}
    (audit,) = hub.get("/decisions").json()["decisions"]
    assert (audit["title"], audit["option_id"], audit.get("decision")) == (CHOICE["title"], "pg", None)


def test_a_plain_question_past_its_deadline_takes_its_default(start_hub):
    hub = start_hub("--question-timeout-max", "1", watched=True)
    token = agent(hub)
    timed_out = ask(hub, token, CHOICE).json()
    assert (timed_out["answered_by"], timed_out["option_id"], timed_out["reason"]) == ("timeout", "sqlite", "timeout")
    without_default = ask(hub, token, {**CHOICE, "default": None}).json()
    assert without_default["answered_by"] == "timeout" and "option_id" not in without_default


@pytest.mark.parametrize("body", [
    {"options": CHOICE["options"]},
    {"title": "Pick", "options": CHOICE["options"][:1]},
    {"title": "Pick", "options": [{"id": "a", "title": "A", "decision": "allow"}, {"id": "b", "title": "B"}]},
    {**CHOICE, "default": "mysql"},
    {**CHOICE, "tool_input": {"x": 1}},
    {"tool_name": "Bash", "tool_input": {"command": "ls"}},
    {"tool_name": "Bash", "tool_use_id": "t", "title": "Run?"},
    {"tool_name": "Bash", "tool_use_id": "t", "default": "allow"},
    {"tool_name": "Bash", "tool_use_id": "t", "options": [{"id": "go", "title": "Go"}]},
])
def test_a_malformed_blocking_question_is_refused_and_nothing_is_written(watched_hub, body):
    hub = watched_hub
    refused = ask(hub, hub.token, {k: v for k, v in body.items() if v is not None})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request", refused.text
    assert hub.get("/questions").json()["questions"] == [] and hub.get("/decisions").json()["decisions"] == []


# ---- alerts ------------------------------------------------------------------------------------

def notifier(folder: Path) -> Path:
    """A `notify-send` on PATH for the hub, recording its arguments: this machine has no desktop."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "notify-send"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {folder / 'shown'}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder / "shown"


def test_a_waiting_question_alerts_every_channel_at_once_with_a_link_that_signs_in_once(start_hub, tmp_path):
    with Receiver() as receiver:
        shown = notifier(tmp_path / "bin")
        hub = start_hub("--alert-webhook", f"{receiver.url}/hook", "--alert-ntfy", f"{receiver.url}/repowire-topic",
                        "--alert-desktop",
                        env={"REPOWIRE_ALERT_SECRET": "s3cret", "REPOWIRE_NTFY_TOKEN": "tk_1",
                             "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"})
        token = agent(hub)
        with asking(hub, token, bash("terraform apply -auto-approve", "t1")) as held:   # nobody watches: alerts do
            question = held["question"]
            (hook,) = wait_until(lambda: receiver.got("/hook"), 10, "the webhook")
            (ntfy,) = wait_until(lambda: receiver.got("/repowire-topic"), 10, "the ntfy post")
            wait_until(shown.exists, 10, "the desktop notification")
            expected = hmac.new(b"s3cret", hook.headers["x-repowire-timestamp"].encode() + b"." + hook.body,
                                hashlib.sha256).hexdigest()
            assert hook.headers["x-repowire-signature"] == f"sha256={expected}"
            sent = orjson.loads(hook.body)
            assert (sent["type"], sent["title"], sent["summary"]) == (
                "question_waiting", "repowire: shop-claude@default asks to run Bash", "terraform apply -auto-approve")
            assert sent["question"] == {"correlation_id": question["correlation_id"], "kind": "tool_permission",
                                        "tool_name": "Bash", "title": None, "cwd": PROJECT,
                                        "deadline": question["deadline"],
                                        "agent": {"peer_id": question["peer"]["peer_id"], "name": "shop-claude",
                                                  "circle": "default"}}
            assert hook.at * 1000 - question["created_at"] < 1000, "the alert within a second of the question"
            assert (ntfy.headers["title"], ntfy.headers["authorization"], ntfy.body) == (
                "repowire: shop-claude@default asks to run Bash", "Bearer tk_1", b"terraform apply -auto-approve")
            assert ntfy.headers["click"] != sent["url"], "each alert has its own one-time link"
            assert shown.read_text().splitlines()[:4] == ["--app-name=repowire", "--urgency=critical",
                                                          "repowire: shop-claude@default asks to run Bash",
                                                          "terraform apply -auto-approve"]
            with httpx.Client(follow_redirects=False) as browser:
                first = browser.get(sent["url"])
                assert first.status_code == 303 and first.headers["location"].startswith("/dashboard#key=")
                assert first.headers["location"].endswith(f"&question={question['correlation_id']}")
                assert "repowire_session=" in first.headers["set-cookie"]
                again = browser.get(sent["url"])
                assert again.status_code == 401 and again.json()["error"]["code"] == "login_link_invalid"
            answer(hub, question, decision="deny")
        assert held["response"].json()["answered_by"] == "human"


def test_a_failing_alert_channel_leaves_the_question_waiting(start_hub):
    with Receiver(status=500) as receiver:
        hub = start_hub("--alert-webhook", f"{receiver.url}/hook", env={"REPOWIRE_ALERT_SECRET": "x"})
        token = agent(hub)
        with asking(hub, token, bash("make", "t1")) as held:
            wait_until(lambda: receiver.got("/hook"), 10, "the webhook")
            assert hub.get(f"/questions/{held['question']['correlation_id']}").json()["state"] == "pending"
            answer(hub, held["question"], decision="allow")
        wait_until(lambda: "not sent" in hub.log(), 10, "the failed alert in the hub's log")
        assert held["response"].json()["decision"] == "allow"


def test_without_a_secret_given_the_hub_makes_one_the_owner_alone_can_read(start_hub):
    with Receiver() as receiver:
        hub = start_hub("--alert-webhook", f"{receiver.url}/hook")
        secret_file = hub.home / "alert-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        token = agent(hub)
        with asking(hub, token, bash("make", "t1")) as held:
            (hook,) = wait_until(lambda: receiver.got("/hook"), 10, "the webhook")
            answer(hub, held["question"], decision="deny")
        expected = hmac.new(secret_file.read_bytes().strip(), hook.headers["x-repowire-timestamp"].encode() + b"." +
                            hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["x-repowire-signature"] == f"sha256={expected}"


# ---- the command line -------------------------------------------------------------------------------

def cli(hub: HubProcess | None, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPOWIRE_")}
    return subprocess.run([sys.executable, "-m", "hub.cli.main", *args], capture_output=True, text=True, timeout=60,
                          env={**env, "REPOWIRE_HOME": str(home or hub.home)}, stdin=subprocess.DEVNULL)


def test_policies_presets_dry_runs_and_the_decision_log_at_a_terminal(watched_hub):
    hub = watched_hub
    listing = cli(hub, "policies")
    assert listing.returncode == 0 and "(no rules of your own)" in listing.stdout
    assert "then the approval preset `readonly`: read and search the project" in listing.stdout
    assert "readonly/shell-reads" in listing.stdout and listing.stdout.rstrip().endswith("asks a person.")
    read = cli(hub, "policies", "evaluate", "Read", "--input", f"file_path={PROJECT}/README.md", "--cwd", PROJECT)
    assert read.stdout.strip() == "allow  (preset readonly, rule readonly/read-read): readonly preset: Read inside the " \
                                  "project"
    shell = cli(hub, "policies", "evaluate", "Bash", "--input-json", '{"command": "rm -rf build"}', "--cwd", PROJECT)
    assert shell.stdout.strip() == "ask  (no rule): no rule matched: a person is asked"
    chosen = cli(hub, "policies", "preset", "writes")
    assert chosen.returncode == 0 and chosen.stdout.startswith("approval preset is now `writes`")
    assert cli(hub, "policies", "preset", "everything").returncode == 2

    token = agent(hub)
    with asking(hub, token, bash("npm test", "t1")) as held:
        qid = held["question"]["correlation_id"]
        both = cli(hub, "approve", qid, "--yes", "--for-session", "--always")
        assert both.returncode == 2 and "choose one of --for-session and --always" in both.stderr
        given = cli(hub, "approve", qid, "--yes", "--for-session")
        assert given.returncode == 0, given.stderr
        assert given.stdout.strip() == "allow  Bash: npm test (and again for the rest of this session)"
    assert "session allow of question" in cli(hub, "policies").stdout
    with asking(hub, token, bash("make deploy", "t2")) as held:
        assert cli(hub, "deny", held["question"]["correlation_id"], "--reason", "not today").returncode == 0
    log = cli(hub, "decisions", "--tool", "Bash", "--decision", "deny")
    (header, row) = log.stdout.strip().splitlines()
    assert header.split() == ["WHEN", "PEER", "TOOL", "DECISION", "BY", "REASON"]
    assert row.split()[2:7] == ["shop-claude", "Bash", "deny", "human", "not"]
    assert cli(hub, "decisions", "--peer", "nobody").stdout.strip() == "no decisions recorded"

    with asking(hub, token, CHOICE) as held:
        qid = held["question"]["correlation_id"]
        shown = cli(hub, "questions", "show", qid).stdout
        assert "asks     Which database for the cart service?" in shown and "option   sqlite: SQLite  (the default" in shown
        wrong = cli(hub, "approve", qid, "--yes")
        assert wrong.returncode == 2 and f"repowire questions answer {qid} OPTION" in wrong.stderr
        chose = cli(hub, "questions", "answer", qid, "pg")
        assert chose.returncode == 0 and chose.stdout.strip() == "answered Which database for the cart service?: pg"
    assert held["response"].json()["option_id"] == "pg"


def test_hooks_install_chooses_the_preset_now_or_for_the_next_hub_and_off_leaves_the_approval_hook_out(start_hub,
                                                                                                         tmp_path):
    home = tmp_path / "home"
    settings = tmp_path / "settings.json"
    installed = cli(None, "hooks", "install", "--settings", str(settings), "--approvals", "writes", home=home)
    assert installed.returncode == 0, installed.stderr
    assert "no hub is running, so the next `repowire serve` applies it" in installed.stdout
    assert (home / "approvals-preset").read_text() == "writes\n"
    hub = start_hub(home=home)
    assert hub.get("/policies").json()["preset"]["name"] == "writes"
    assert not (home / "approvals-preset").exists(), "applied once"
    doctor = cli(hub, "hooks", "doctor", "--settings", str(settings))
    assert doctor.returncode == 0 and "ok       approvals: preset `writes`: readonly, and edit files" in doctor.stdout

    again = cli(hub, "hooks", "install", "--settings", str(settings), "--approvals", "all")
    assert "approvals: `all`: every tool call runs without a person" in again.stdout
    assert hub.get("/policies").json()["preset"]["name"] == "all"

    off = cli(hub, "hooks", "install", "--settings", str(settings), "--approvals", "off")
    assert off.returncode == 0 and "no approval hook (--approvals off)" in off.stdout
    hooks = orjson.loads(settings.read_bytes())["hooks"]
    assert "PreToolUse" not in hooks and "SessionStart" in hooks
    doctor = cli(hub, "hooks", "doctor", "--settings", str(settings))
    assert doctor.returncode == 0 and "ok       approvals off: no repowire PreToolUse hook" in doctor.stdout


def test_doctor_says_how_to_turn_approvals_on_and_that_command_works_as_written(start_hub, tmp_path):
    hub = start_hub()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPOWIRE_")}
    env.update(HOME=str(tmp_path / "user"), REPOWIRE_HOME=str(hub.home))

    def run(command: str) -> subprocess.CompletedProcess[str]:
        """As a person types it in their terminal (the console script on PATH)."""
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, env={
            **env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}, stdin=subprocess.DEVNULL)

    assert run("repowire hooks install --approvals off").returncode == 0
    doctor = run("repowire doctor hooks").stdout
    told = re.search(r"\(`(repowire hooks install [^`]+)` turns approvals on\)", doctor)
    assert told, doctor
    assert run(told.group(1)).returncode == 0
    assert "ok       approvals: preset `readonly`" in run("repowire doctor hooks").stdout
    assert "PreToolUse" in orjson.loads((tmp_path / "user" / ".claude" / "settings.json").read_bytes())["hooks"]


def gate_receiver() -> tuple[Receiver, threading.Event]:
    """A receiver that holds every request until the gate opens: an alert channel gone slow."""
    gate = threading.Event()
    receiver = Receiver(hold=gate)
    return receiver, gate


def test_at_most_32_alerts_are_in_flight_and_the_next_is_dropped_and_logged(start_hub):
    receiver, gate = gate_receiver()
    with receiver:
        hub = start_hub("--alert-webhook", f"{receiver.url}/hook", env={"REPOWIRE_ALERT_SECRET": "x"})
        token = agent(hub)
        held = [threading.Thread(target=ask, args=(hub, token, bash(f"make step-{n}", f"t{n}")), daemon=True)
                for n in range(33)]
        for n, thread in enumerate(held[:32]):
            thread.start()
            wait_until(lambda n=n: len(receiver.arrived) == n + 1, 10, f"alert {n + 1} to arrive and wait")
        held[32].start()
        wait_until(lambda: "dropped: 32 alerts are still being sent" in hub.log(), 10, "the 33rd alert dropped")
        assert len(receiver.arrived) == 32
        gate.set()
        wait_until(lambda: len(receiver.got("/hook")) == 32, 10, "the 32 held alerts answered")
        with hub.http() as client:
            for q in client.get("/questions").json()["questions"]:
                client.post(f"/questions/{q['correlation_id']}/answer", json={"decision": "deny"})
        for thread in held:
            thread.join(20)
