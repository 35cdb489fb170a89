"""Finding agent panes on a real tmux server (private socket, `-f /dev/null`)."""

from __future__ import annotations

import shlex
import shutil

import anyio
import pytest

from tests.support import wait_until
from transports.panes import detect_agent, list_panes


def fake_agent(tmp_path, name: str) -> str:
    """A binary named like an agent (a copy of `sleep`): its process is called that, as a real
    agent's is. Returns the command that runs it for two minutes."""
    path = tmp_path / name
    shutil.copy(shutil.which("sleep"), path)
    return f"{shlex.quote(str(path))} 120"


def script_agent(tmp_path, name: str) -> str:
    """An agent started by an interpreter (`sh …/codex`): found in the pane's process tree."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\nsleep 120\n")
    path.chmod(0o755)
    return shlex.quote(str(path))


async def test_agent_panes_are_found_with_their_details(tmux, tmp_path):
    claude = tmux.new_session(session_name="work", window_command=f"cd {shlex.quote(str(tmp_path))} && "
                                                                 f"{fake_agent(tmp_path, 'claude')}", detach=True)
    plain = tmux.new_session(session_name="shell", window_command="sleep 120", detach=True)
    tmux.new_session(session_name="scripted", window_command=script_agent(tmp_path, "codex"), detach=True)
    wait_until(lambda: {p.command for p in list_panes(tmux)} >= {"claude", "sleep", "sh"}, 10, "the panes to start")
    panes = {p.session: p for p in await anyio.to_thread.run_sync(list_panes, tmux)}
    assert panes["work"].agent == "claude" and panes["work"].confidence == 0.95
    assert panes["work"].pane_id == claude.active_window.active_pane.pane_id
    assert panes["work"].cwd == str(tmp_path) and panes["work"].pid > 0
    assert panes["shell"].agent is None and panes["shell"].confidence == 0.0
    assert panes["shell"].pane_id == plain.active_window.active_pane.pane_id
    assert (panes["scripted"].agent, panes["scripted"].confidence) == ("codex", 0.6)


def test_no_server_means_no_panes(tmux):
    assert list_panes(tmux) == []


@pytest.mark.parametrize("command, processes, expected", [
    ("claude", [], ("claude", 0.95)),
    ("node", [["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"], ["node", "/opt/bin/codex"]],
     ("codex", 0.6)),
    ("bash", [["bash"], ["gemini", "--yolo"]], ("gemini", 0.8)),
    ("vim", [["vim", "notes.md"]], (None, 0.0)),
])
def test_detection_rules(command, processes, expected):
    assert detect_agent(command, processes) == expected
