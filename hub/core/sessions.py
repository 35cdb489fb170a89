"""Agent sessions that join the hub through their own hooks: which identity a session gets.

Pure rules. A session names itself by its folder and agent kind (`repowire-claude`), in the
circle of its tmux session. It sits in a *seat* (a tmux pane, or no pane at all). The rules:

- A session whose seat already belongs to a peer takes that peer's identity (same id, inbox
  and name: an agent restarted in its pane is the same peer, never `-2`), unless the peer's
  agent process is one of the session's ancestors: then the session is an agent that the
  pane's own agent started (a subprocess), and it must not take the pane over.
- A session in a pane nobody holds takes its name; if that name is held by a peer that is
  live in another pane, the session is told apart by its pane (`repowire-claude-12`), a name
  that stays the same across restarts in that pane.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum

from hub.core.peers import OFFLINE, PeerRecord
from schemas.names import as_name


class Joined(str, Enum):
    LINKED = "linked"          # a new peer, or an offline one of the same name, now typed into the pane
    REUSED = "reused"          # the pane's own peer, restarted or resumed
    REGISTERED = "registered"  # no pane the hub can type into: a peer with an inbox, shown offline
    NESTED = "nested"          # a subprocess agent inside another agent's pane: not registered


def session_name(cwd: str, backend: str) -> str:
    """`<folder>-<agent kind>`, e.g. `repowire-claude`; the agent kind alone for `/`."""
    folder = os.path.basename(cwd.rstrip("/"))
    return as_name(f"{folder}-{backend}", backend) if folder else as_name(backend, "agent")


def pane_suffixed(name: str, pane_id: str) -> str:
    """The name told apart by its pane (`%12` -> `name-12`), within the name length limit."""
    suffix = "-" + pane_id.lstrip("%")
    return name[:64 - len(suffix)] + suffix


def is_nested(holder: PeerRecord | None, agent_pid: int, ancestors: list[int]) -> bool:
    """Whether the session is a subprocess of the agent that holds this identity."""
    return (holder is not None and holder.agent_pid > 0 and holder.agent_pid != agent_pid
            and holder.agent_pid in ancestors)


@dataclass(frozen=True, slots=True)
class SeatPlan:
    joined: Joined
    name: str


def plan_pane_seat(*, owner: PeerRecord | None, same_name: PeerRecord | None, name: str, pane_id: str,
                   agent_pid: int, ancestors: list[int], same_name_live: bool) -> SeatPlan:
    """What a session in a pane becomes. `owner`: the peer linked to this pane (any process);
    `same_name`: the peer registered under the session's name in its circle."""
    if owner is not None:
        return SeatPlan(Joined.NESTED if is_nested(owner, agent_pid, ancestors) else Joined.REUSED, owner.name)
    if is_nested(same_name, agent_pid, ancestors):
        return SeatPlan(Joined.NESTED, name)
    if same_name is not None and (same_name_live or same_name.status != OFFLINE):
        return SeatPlan(Joined.LINKED, pane_suffixed(name, pane_id))
    return SeatPlan(Joined.LINKED, name)
