"""How peer names and tmux pane ids are written, for the code on both sides of the wire.

Plain Python (no msgspec): the command line and the pane bridge import it cheaply.
"""

from __future__ import annotations

import re

PANE_ID = re.compile(r"%[0-9]{1,9}")   # tmux's pane ids: %0, %12, …
BACKENDS = ("claude", "codex", "gemini", "opencode", "aider", "cursor", "goose", "amp", "other")
# the program name an agent runs as -> its backend
AGENT_COMMANDS = {"claude": "claude", "codex": "codex", "gemini": "gemini", "opencode": "opencode", "aider": "aider",
                  "cursor-agent": "cursor", "goose": "goose", "amp": "amp"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")   # peer names, circles, hub node names (fullmatch)
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def as_name(raw: str, fallback: str) -> str:
    """A valid peer name or circle made from a folder, tmux session or host name."""
    cleaned = _NOT_NAME_CHARS.sub("-", raw).lstrip("._-")[:64].rstrip("._-")
    return cleaned or fallback


# an agent's hook event -> `repowire hook <subcommand>` (Claude Code's names; Codex uses the same)
SESSION_HOOK_EVENTS = {"SessionStart": "session-start", "UserPromptSubmit": "user-prompt-submit", "Stop": "stop",
                       "Notification": "notification", "SessionEnd": "session-end"}


def tmux_bridge_name(host: str, socket: str | None) -> str:
    """The pane bridge of a tmux server, `tmux-<host>-<socket name>`: what the bridge calls
    itself and what a hook inside a pane (from `$TMUX`) computes to find it."""
    socket_name = (socket or "default").rstrip("/").rsplit("/", 1)[-1] or "default"
    return as_name(f"tmux-{host}-{socket_name}", "tmux")
