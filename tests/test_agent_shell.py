"""The rule every `repowire` command follows to pick who it acts as (transports.identity), met
the way an agent's shell meets it: a command whose ancestor is an agent acts as that agent's
session, or refuses; never silently as the operator. A person's terminal acts as the operator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson

from tests.test_sessions import claude_payload


def fake_agent(tmp_path) -> str:
    """A copy of the shell named `claude`: whatever it runs has an agent among its ancestors."""
    path = tmp_path / "claude"
    shutil.copy("/bin/sh", path)
    return str(path)


def run_in(shell: str, hub, command: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REPOWIRE_", "TMUX", "CLAUDE"))}
    return subprocess.run([shell, "-c", command], env={**base, "REPOWIRE_HOME": str(hub.home), **env},
                          capture_output=True, text=True, timeout=60)


def cli(*args: str) -> str:
    return " ".join([sys.executable, "-m", "hub.cli.main", *args])


def test_a_person_s_terminal_acts_as_the_operator(hub):
    done = run_in("/bin/sh", hub, cli("whoami", "--json"))
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["operator"] is True


def test_inside_an_agent_with_no_session_a_command_refuses_instead_of_acting_as_the_operator(hub, tmp_path):
    hub.post("/peers", {"name": "bob"})
    done = run_in(fake_agent(tmp_path), hub, cli("notify", "bob", "hi"))
    assert done.returncode == 2
    assert "runs inside an agent session" in done.stderr and "would act as the operator" in done.stderr
    assert hub.peers()["bob"]["pending"] == 0   # nothing was sent
    explicit = run_in(fake_agent(tmp_path), hub, cli("whoami", "--json"), REPOWIRE_TOKEN=hub.token)
    assert explicit.returncode == 0 and orjson.loads(explicit.stdout)["operator"] is True   # said on purpose


def test_inside_an_agent_session_a_command_acts_as_that_agent_through_the_process_tree(hub, tmp_path):
    """No env file reached this shell (Codex has none): the session file of the agent process
    does it. The agent here registers itself with its own SessionStart hook, then runs the CLI."""
    agent = fake_agent(tmp_path)
    start = orjson.dumps(claude_payload("SessionStart", tmp_path)).decode()
    script = (f"printf '%s' '{start}' | {cli('hook', 'session-start')} > /dev/null && "
              f"{cli('whoami', '--json')}")
    done = run_in(agent, hub, script)
    assert done.returncode == 0, done.stderr
    me = orjson.loads(done.stdout)
    assert (me["operator"], me["peer"]["name"]) == (False, f"{tmp_path.name}-claude")
