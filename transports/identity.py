"""Who a local client acts as on the hub: the one rule the CLI, the MCP server and the hooks share.

An agent session that joined through its SessionStart hook gets a credential of its own (the
session token). The hook keeps it in the session's file, `$REPOWIRE_HOME/sessions/<agent
pid>.json` (mode 0600, with a copy named by the agent's session id for the later hooks), and
gives it to the agent's shell through Claude Code's `CLAUDE_ENV_FILE`.

A client picks its credential in this order:

1. `REPOWIRE_TOKEN`, when set (a peer token, a session token, or the hub token on purpose);
2. the session file of the nearest ancestor process that has one: a command an agent runs, in
   its shell or through its tools, acts as that agent;
3. if an ancestor is an agent with no session on the hub: refuse (`NotOnHub`), never act as the
   operator behind the agent's back;
4. the hub token (`$REPOWIRE_HOME/hub.token`): a person's own terminal acts as the operator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum

from schemas.local import TOKEN_ENV, TOKEN_FILE, home_folder
from schemas.names import AGENT_COMMANDS
from transports.processes import MAX_ANCESTORS, Process, ProcessGone, process
from transports.session_files import SessionFile


class Acting(str, Enum):
    ENV = "env"            # REPOWIRE_TOKEN
    SESSION = "session"    # the agent session this process runs in
    OPERATOR = "operator"  # the hub token of a person's own terminal
    NONE = "none"          # no credential at all (the hub was never started here)


class NotOnHub(Exception):
    """This process runs inside an agent session that has no credential on the hub."""


def is_agent(found: Process) -> bool:
    try:
        names = [found.name(), *(os.path.basename(a) for a in found.cmdline()[:2])]
    except ProcessGone:
        return False
    return any(name in AGENT_COMMANDS for name in names)


def ancestors(pid: int | None = None) -> list[Process]:
    """This process's parent and its parents, nearest first."""
    try:
        start = process(pid if pid is not None else os.getppid())
        return [start, *start.parents()[:MAX_ANCESTORS - 1]]
    except ProcessGone:
        return []


def started_at(found: Process) -> float:
    """When the process started: with its pid, tells it apart from a later one that reuses the pid."""
    try:
        return round(found.create_time(), 2)
    except ProcessGone:
        return 0.0


class Credential:
    __slots__ = ("acting", "session", "token")

    def __init__(self, token: str | None, acting: Acting, session: SessionFile | None = None):
        self.token, self.acting, self.session = token, acting, session


def session_of_process(home: str | None, pid: int | None = None) -> tuple[SessionFile | None, int | None]:
    """(the session file of the nearest ancestor that has one, the pid of the nearest agent
    ancestor): the agent session a process runs in, as far as the process tree tells."""
    agent_pid = None
    for ancestor in ancestors(pid):
        found = SessionFile.of_agent(home, ancestor.pid)
        if found.token and found.data.get("agent_started") == started_at(ancestor):
            return found, ancestor.pid
        if agent_pid is None and is_agent(ancestor):
            agent_pid = ancestor.pid
    return None, agent_pid


def hub_token(home: str | None) -> str | None:
    try:
        with open(os.path.join(home_folder(home), TOKEN_FILE), encoding="utf-8") as file:
            return file.read().strip() or None
    except OSError:
        return None


def resolve(home: str | None = None, env: Mapping[str, str] | None = None) -> Credential:
    """The credential a command acts with, by the rule in this module's docstring."""
    env = os.environ if env is None else env
    explicit = (env.get(TOKEN_ENV) or "").strip()
    if explicit:
        return Credential(explicit, Acting.ENV)
    session, agent_pid = session_of_process(home)
    if session is not None:
        return Credential(session.token, Acting.SESSION, session)
    if agent_pid is not None:
        raise NotOnHub(f"this command runs inside an agent session (pid {agent_pid}) that is not on the hub, so it "
                       "would act as the operator. Install the hooks (`repowire hooks install`) and start a new "
                       "session, or set REPOWIRE_TOKEN to the token to act with")
    token = hub_token(home)
    return Credential(token, Acting.OPERATOR if token else Acting.NONE)
