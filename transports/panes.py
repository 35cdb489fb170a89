"""The panes of a tmux server, and which of them run a coding agent.

An agent is recognised by name: the pane's foreground command first (tmux's
`pane_current_command`, the process's own name), then any process under the pane's shell
(`node …/claude`, `python -m aider`). The first kind of match is near certain, the second a
good guess; the confidence says which. Blocking (tmux, /proc): call from a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import libtmux
import psutil

AGENTS = {"claude": "claude", "codex": "codex", "gemini": "gemini", "opencode": "opencode", "aider": "aider",
          "cursor-agent": "cursor", "goose": "goose", "amp": "amp"}
_FORMAT = "\t".join(["#{pane_id}", "#{pane_pid}", "#{pane_current_command}", "#{pane_current_path}",
                     "#{session_name}", "#{window_index}", "#{window_name}", "#{pane_dead}"])


@dataclass(frozen=True, slots=True)
class PaneInfo:
    pane_id: str
    pid: int
    command: str
    cwd: str
    session: str
    window: str
    window_name: str
    dead: bool
    agent: str | None
    confidence: float

    def public(self) -> dict:
        return asdict(self)


def detect_agent(command: str, processes: list[list[str]]) -> tuple[str | None, float]:
    """(agent kind, confidence) from the foreground command and the argv of the pane's processes."""
    if command in AGENTS:
        return AGENTS[command], 0.95
    for argv in processes:
        names = [os.path.basename(arg) for arg in argv[:3]]
        for name in names:
            if name in AGENTS:
                return AGENTS[name], 0.8 if name == names[0] else 0.6
    return None, 0.0


def _process_tree(pid: int) -> list[list[str]]:
    try:
        root = psutil.Process(pid)
        return [p.cmdline() for p in [root, *root.children(recursive=True)]]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def list_panes(server: libtmux.Server) -> list[PaneInfo]:
    result = server.cmd("list-panes", "-a", "-F", _FORMAT)
    if result.stderr:  # no server running, or no sessions: no panes
        return []
    panes = []
    for line in result.stdout:
        pane_id, pid, command, cwd, session, window, window_name, dead = (line.split("\t") + [""] * 8)[:8]
        agent, confidence = detect_agent(command, _process_tree(int(pid)) if pid.isdigit() else [])
        panes.append(PaneInfo(pane_id, int(pid) if pid.isdigit() else 0, command, cwd, session, window, window_name,
                              dead == "1", agent, confidence))
    return panes
