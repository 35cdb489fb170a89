"""The panes of a tmux server, which of them run a coding agent, and each pane's fingerprint.

An agent is recognised by name: the pane's foreground command first (tmux's
`pane_current_command`, the process's own name), then any process under the pane's shell
(`node …/claude`, `python -m aider`). The first kind of match is near certain, the second a
good guess; the confidence says which.

A fingerprint says which pane a link was made to: the tmux server (socket and pid), the pane
id, the pane's process and its start time, the foreground command and the folder. A pane id
that tmux reused, a process that was replaced, an agent that exited back to its shell: each
changes the fingerprint, and a pane transport types nothing into a pane whose fingerprint
changed. Blocking (tmux, /proc): call from a worker thread.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import libtmux
import psutil

from schemas.names import AGENT_COMMANDS as AGENTS
from schemas.names import PANE_ID

_FORMAT = "\t".join(["#{pane_id}", "#{pane_pid}", "#{pane_current_command}", "#{pane_current_path}",
                     "#{session_name}", "#{window_index}", "#{window_name}", "#{pane_dead}", "#{socket_path}",
                     "#{pid}", "#{pane_in_mode}"])


FINGERPRINT_FIELDS = ("server", "server_pid", "pane_id", "pid", "started_at", "command", "cwd")


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
    fingerprint: dict
    in_mode: bool = False   # in copy mode (a paste would land there)

    def public(self) -> dict:
        data = asdict(self)
        del data["in_mode"]
        return data


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


def started_at_ms(pid: int) -> int:
    """When a process started (ms since the epoch); 0 if it is gone."""
    try:
        return int(psutil.Process(pid).create_time() * 1000)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return 0


def list_panes(server: libtmux.Server, *, detect: bool = True) -> list[PaneInfo]:
    """Every pane of the server (none if it is not running). Without `detect`, no process trees
    are read: what the watcher needs to compare fingerprints, cheaply."""
    result = server.cmd("list-panes", "-a", "-F", _FORMAT)
    if result.stderr:  # no server running, or no sessions: no panes
        return []
    return [_pane(line, detect) for line in result.stdout]


def find_pane(server: libtmux.Server, pane_id: str, *, detect: bool = False) -> PaneInfo | None:
    """One pane by id (`%12`), in one tmux call; None if it does not exist."""
    if not PANE_ID.fullmatch(pane_id):
        return None
    result = server.cmd("display-message", "-p", "-t", pane_id, _FORMAT)
    if result.stderr or not result.stdout:
        return None
    pane = _pane(result.stdout[0], detect)
    return pane if pane.pane_id == pane_id else None


def _pane(line: str, detect: bool) -> PaneInfo:
    pane_id, pid_text, command, cwd, session, window, window_name, dead, socket, server_pid, in_mode = \
        (line.split("\t") + [""] * 11)[:11]
    pid = int(pid_text) if pid_text.isdigit() else 0
    agent, confidence = detect_agent(command, _process_tree(pid) if pid else []) if detect else (None, 0.0)
    fingerprint = {"server": socket, "server_pid": int(server_pid) if server_pid.isdigit() else 0,
                   "pane_id": pane_id, "pid": pid, "started_at": started_at_ms(pid) if pid else 0,
                   "command": command, "cwd": cwd}
    return PaneInfo(pane_id, pid, command, cwd, session, window, window_name, dead == "1", agent, confidence,
                    fingerprint, in_mode == "1")


def changed_fields(expected: dict, current: dict) -> list[str]:
    """The fingerprint fields that differ (an empty list: the same pane, as linked)."""
    return [name for name in FINGERPRINT_FIELDS if expected.get(name) != current.get(name)]


@dataclass(frozen=True, slots=True)
class PaneCheck:
    """A linked pane now: whether it exists, has exited, still has its process, and what of
    its fingerprint changed."""
    pane: PaneInfo | None
    changed: list[str]

    @property
    def pid_alive(self) -> bool:
        return self.pane is not None and "pid" not in self.changed and "started_at" not in self.changed \
            and self.pane.fingerprint["started_at"] != 0

    @property
    def departure(self) -> str | None:
        """Why a pane transport must stop (the reason the peer goes offline with), or None."""
        if self.pane is None:
            return "pane_closed"
        if self.pane.dead:
            return "pane_dead"
        if not self.changed:
            return None
        if {"server", "server_pid", "pane_id", "pid", "started_at"} & set(self.changed):
            return "pane_replaced"
        if "command" in self.changed:
            return "agent_exited"
        return "pane_changed"

    def public(self) -> dict:
        return {"changed": self.changed, "pid_alive": self.pid_alive, "departure": self.departure}


def check_pane(pane: PaneInfo | None, expected: dict) -> PaneCheck:
    return PaneCheck(pane, changed_fields(expected, pane.fingerprint) if pane else list(FINGERPRINT_FIELDS))
