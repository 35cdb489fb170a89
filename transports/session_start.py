"""`repowire hook session-start`: an agent session joins the hub by itself.

It registers the session (`POST /sessions`, with the hub token): its name from the folder and
agent kind, its circle from the tmux session, its pane from `$TMUX_PANE`, its agent process
(the nearest agent among the hook's ancestors, or `$REPOWIRE_AGENT_PID`). The hub links the
pane, or gives back the pane's own peer, or says the session is a subprocess of the pane's
agent (then nothing is registered and the other hooks stay silent). The hub gives the
session its own credential (the session token): this hook keeps it in the session's files
(transports.session_files) and writes `export REPOWIRE_TOKEN=…` to Claude Code's
`$CLAUDE_ENV_FILE`, so `repowire …` run by the agent acts as the agent (transports.identity).
It prints context for the agent: who it is on the hub, who else is online, how to reply.

The other session hooks (transports.session_hooks) need none of the process-tree work here.
"""

from __future__ import annotations

import os
import socket
import sys

from schemas.local import HOME_ENV, TOKEN_ENV, home_folder
from schemas.names import PANE_ID, tmux_bridge_name
from transports import lean_json
from transports.discovery import find_hub, find_token
from transports.identity import ancestors, is_agent, started_at
from transports.processes import Process, ProcessGone, process
from transports.session_files import AGENT_PID_ENV, SessionFile, session_id_path
from transports.session_hooks import HookFailed, HookRun, Hub, run_hook

START_DEADLINE_S = 8.0       # a link waits for the pane transport to come up
CLAUDE_ENV_FILE = "CLAUDE_ENV_FILE"   # Claude Code: `export` lines written here reach the agent's Bash commands
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "env", "timeout"})
MAX_ONLINE_LISTED = 15


def agent_process(env: dict) -> tuple[int, list[int]]:
    """(agent pid, its ancestors' pids): `$REPOWIRE_AGENT_PID`, else the nearest ancestor of
    this hook that runs an agent, else the nearest one that is not a shell."""
    explicit = env.get(AGENT_PID_ENV, "")
    agent: Process | None = None
    try:
        if explicit.isdigit():
            agent = process(int(explicit))
        else:
            chain = ancestors()
            agent = next((p for p in chain if is_agent(p)), None) or next(
                (p for p in chain if p.name() not in SHELLS), chain[0])
        return agent.pid, [p.pid for p in agent.parents()[:64]]
    except (ProcessGone, IndexError):
        pid = int(explicit) if explicit.isdigit() else os.getppid()
        return pid, []


def sh_quoted(text: str) -> str:
    """One shell word, whatever `text` holds (shlex.quote, without importing shlex and re)."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def env_file_lines(token: str, home: str | None) -> bytes:
    """What the session's shell gets through `$CLAUDE_ENV_FILE`: its credential and its hub's
    home, so `repowire …` run by the agent acts as the agent; and the folder of the `repowire`
    that runs this hook first on PATH, so the commands the hub tells the agent to run are
    found as written, whatever the agent's login shell puts on PATH."""
    lines = [f"export {TOKEN_ENV}={sh_quoted(token)}", f"export {HOME_ENV}={sh_quoted(home_folder(home))}"]
    folder = os.path.dirname(sys.executable)
    if os.access(os.path.join(folder, "repowire"), os.X_OK):
        lines.append(f'export PATH={sh_quoted(folder)}:"$PATH"')
    return ("\n".join(lines) + "\n").encode()


def _context(joined: dict) -> str:
    """What the agent is told at the start of its session."""
    peer = joined["peer"]
    me = f"{peer['name']}@{peer['circle']}"
    lines = [f"repowire: you are {me} on the repowire hub (peer {peer['peer_id']})."]
    if joined.get("transport") == "connected":
        lines.append('Messages reach you in this terminal as "[notify from NAME] «TEXT»" and '
                     '"[ask ID from NAME] «TEXT»"; asks wait for your reply. Only the part in brackets comes '
                     'from the hub: «TEXT» is the sender\'s own words.')
    else:
        lines.append("No tmux pane carries messages to you, so they wait in your inbox: read them with the repowire "
                     "MCP tools inbox and wait_for_message, and new ones are shown to you when you stop.")
    online = joined.get("online") or []
    if online:
        listed = ", ".join(f"{p['name']}@{p['circle']} ({p['role']}, {p['status']})" for p in online[:MAX_ONLINE_LISTED])
        more = f" and {len(online) - MAX_ONLINE_LISTED} more" if len(online) > MAX_ONLINE_LISTED else ""
        lines.append(f"Online now: {listed}{more}.")
    else:
        lines.append("Nobody else is online right now.")
    lines.append('Reply to an ask: repowire ack ID "your answer". Send: repowire notify NAME "text". '
                 'Ask and wait: repowire ask NAME "question" --wait. The repowire MCP tools do the same.')
    return "\n".join(lines)


def _context_output(text: str) -> bytes:
    return lean_json.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": text}})


def session_start(run: HookRun) -> bytes:
    """Register the session (`POST /sessions`, with the hub token), keep what it is on the hub
    in its files, give its shell the session's credential, and print its context."""
    token = find_token(run.home)
    if not token:
        raise HookFailed("no hub token")
    hub = Hub(find_hub(run.home), token, run.deadline)
    agent_pid, agent_ancestors = agent_process(run.env)
    tmux = run.env.get("TMUX", "")
    pane_id = run.env.get("TMUX_PANE", "")
    session_id = str(run.payload.get("session_id") or "")[:200]
    request: dict = {"backend": run.backend, "cwd": str(run.payload.get("cwd") or os.getcwd()),
                     "agent_pid": agent_pid, "ancestors": agent_ancestors, "session_id": session_id}
    if tmux and PANE_ID.fullmatch(pane_id):
        request["pane_id"] = pane_id
        request["bridge"] = tmux_bridge_name(socket.gethostname(), tmux.split(",")[0])
    for key, env_name in (("name", "REPOWIRE_NAME"), ("circle", "REPOWIRE_CIRCLE")):
        if run.env.get(env_name):
            request[key] = run.env[env_name]
    joined = hub.call("POST", "/sessions", request)
    assert isinstance(joined, dict)
    peer = joined["peer"]
    session = SessionFile.of_agent(run.home, agent_pid)
    session.data = {"peer_id": peer["peer_id"], "name": peer["name"], "circle": peer["circle"],
                    "joined": joined["joined"], "backend": run.backend, "session_id": session_id,
                    "agent_pid": agent_pid, "agent_started": started_at(Process(agent_pid)),
                    "token": joined.get("session_token", ""),
                    "hub": {"url": hub.address.http_url, "uds": hub.address.uds},
                    "shown": [], "reminded_at": 0}
    session.save()
    if session_id:
        SessionFile(session_id_path(run.home, session_id), session.data).save()
    if joined["joined"] == "nested":
        return b""
    env_file = run.env.get(CLAUDE_ENV_FILE)
    if env_file and session.token:
        with open(env_file, "ab") as out:
            out.write(env_file_lines(session.token, run.home))
    return _context_output(_context(joined))


def run(backend: str = "claude", home: str | None = None) -> int:
    return run_hook("session-start", lambda payload, deadline: session_start(
        HookRun("session-start", payload, dict(os.environ), home, backend, deadline)), START_DEADLINE_S)
