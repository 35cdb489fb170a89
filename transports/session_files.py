"""The files in which an agent session keeps what it is on the hub.

The SessionStart hook writes `$REPOWIRE_HOME/sessions/<agent pid>.json` and a copy named by
the agent's session id, `id-<session id>.json`, both mode 0600 in a 0700 folder: the peer, the
hub it joined, and the session's credential. The later hooks find it by the session id of
their payload; the CLI and the MCP server by their agent process (transports.identity). Only
the standard library (transports.lean_json): the PreToolUse hook reads these on every tool call.
"""

from __future__ import annotations

import os
import tempfile

from schemas.local import home_folder
from transports import lean_json
from transports.discovery import HubAddress

SESSIONS_DIR = "sessions"
AGENT_PID_ENV = "REPOWIRE_AGENT_PID"   # names the agent process when the process tree cannot (tests, wrappers)
_SESSION_ID_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class SessionFile:
    """What one agent session is on the hub, as its SessionStart hook wrote it (a plain class:
    `dataclasses` costs a hook more to import than its work)."""
    __slots__ = ("data", "path")

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: str) -> SessionFile:
        try:
            with open(path, "rb") as file:
                data = lean_json.loads(file.read())
        except (OSError, ValueError):
            data = {}
        return cls(path, data if isinstance(data, dict) else {})

    @classmethod
    def of_agent(cls, home: str | None, agent_pid: int) -> SessionFile:
        return cls.load(os.path.join(home_folder(home), SESSIONS_DIR, f"{agent_pid}.json"))

    @classmethod
    def of_session_id(cls, home: str | None, session_id: str) -> SessionFile:
        return cls.load(session_id_path(home, session_id))

    @property
    def is_own_peer(self) -> bool:
        """The session is its peer (not a subprocess agent nested in another agent's pane)."""
        return bool(self.data.get("peer_id")) and self.data.get("joined") != "nested"

    @property
    def token(self) -> str:
        return str(self.data.get("token") or "") if self.is_own_peer else ""

    def hub_address(self) -> HubAddress | None:
        """The hub the session joined, as its SessionStart hook wrote it down: the later hooks
        ask that hub, whatever hub.json says now."""
        hub = self.data.get("hub")
        if not isinstance(hub, dict) or not isinstance(hub.get("url"), str):
            return None
        return HubAddress(hub["url"], hub["uds"] if isinstance(hub.get("uds"), str) else None)

    @property
    def address(self) -> str:
        return f"{self.data.get('name', '?')}@{self.data.get('circle', '?')}"

    def save(self) -> None:
        write_private(self.path, lean_json.dumps(self.data))

    def remove(self) -> None:
        remove_file(self.path)


def session_id_path(home: str | None, session_id: str) -> str:
    safe = "".join(c if c in _SESSION_ID_SAFE else "_" for c in session_id[:200]) or "none"
    return os.path.join(home_folder(home), SESSIONS_DIR, f"id-{safe}.json")


def write_private(path: str, data: bytes) -> None:
    """Write a file only its owner can read, whole or not at all."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".session-")
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)   # mkstemp makes it 0600


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
