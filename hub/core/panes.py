"""Pane links: what linking a peer to a tmux pane records, which keys a person may send into a
pane, and the doctor's rules (which facts about a linked peer contradict each other).

Pure: the runtime passes in what the hub and the pane bridge know and gets back records,
findings and plans.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from hub.core.errors import HubError
from schemas.errors import ErrorCode
from schemas.names import BACKENDS, PANE_ID, as_name
from schemas.rest import DoctorChecks, DoctorFinding

# the keys a person may send into a pane, by the name the API takes -> tmux's key name
KEYS = {"Escape": "Escape", "Enter": "Enter", "Tab": "Tab", "Shift-Tab": "BTab", "Backspace": "BSpace",
        "Space": "Space", "Up": "Up", "Down": "Down", "Left": "Left", "Right": "Right", "PageUp": "PPage",
        "PageDown": "NPage", "Home": "Home", "End": "End", "Ctrl-C": "C-c", "Ctrl-D": "C-d", "Ctrl-L": "C-l",
        **{str(digit): str(digit) for digit in range(10)}}
MAX_KEYS = 16
DEFAULT_OUTPUT_LINES = 100
MAX_OUTPUT_LINES = 2000
STALE_ASK_AGE_S = 300


@dataclass(frozen=True, slots=True)
class PaneLink:
    """A peer's tmux pane: which bridge serves it, and the fingerprint taken when it was linked
    (tmux server, pane id, pane pid and its start time, command, folder)."""
    bridge: str
    pane_id: str
    backend: str
    fingerprint: dict[str, Any]
    linked_at: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaneLink:
        return cls(bridge=str(data["bridge"]), pane_id=str(data["pane_id"]), backend=str(data["backend"]),
                   fingerprint=dict(data.get("fingerprint") or {}), linked_at=int(data.get("linked_at", 0)))

    def holds(self, bridge: str, pane_id: str, pid: int) -> bool:
        """Whether this link is to that pane as it is now (a pane id tmux reused for another
        process is not the linked pane)."""
        return self.bridge == bridge and self.pane_id == pane_id and self.fingerprint.get("pid") == pid


def check_pane_id(pane_id: str) -> str:
    if not PANE_ID.fullmatch(pane_id):
        raise HubError(ErrorCode.INVALID_REQUEST, f"{pane_id!r} is not a tmux pane id; pane ids look like %12",
                       {"pane_id": pane_id})
    return pane_id


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise HubError(ErrorCode.INVALID_REQUEST, f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}",
                       {"backends": list(BACKENDS)})
    return backend


def tmux_keys(keys: list[str]) -> list[str]:
    """tmux key names for the allowed keys; anything else is refused whole."""
    if not keys or len(keys) > MAX_KEYS:
        raise HubError(ErrorCode.INVALID_REQUEST, f"send 1 to {MAX_KEYS} keys, not {len(keys)}",
                       {"limit": MAX_KEYS, "count": len(keys)})
    unknown = [k for k in keys if k not in KEYS]
    if unknown:
        raise HubError(ErrorCode.INVALID_REQUEST, f"these keys are not allowed: {', '.join(map(repr, unknown))}",
                       {"unknown": unknown, "allowed": list(KEYS)})
    return [KEYS[k] for k in keys]


def check_lines(lines: int) -> int:
    if not 1 <= lines <= MAX_OUTPUT_LINES:
        raise HubError(ErrorCode.INVALID_REQUEST, f"lines goes from 1 to {MAX_OUTPUT_LINES}, not {lines}",
                       {"limit": MAX_OUTPUT_LINES})
    return lines


def default_name(cwd: str, backend: str) -> str:
    return as_name(os.path.basename(cwd.rstrip("/")), backend)


# ---- doctor ----------------------------------------------------------------------------------

ERROR: Final = "error"
WARNING: Final = "warning"


def diagnose(facts: DoctorChecks) -> list[DoctorFinding]:
    """The contradictions in what is known about a peer, worst first. Pane facts are None
    when there is no pane link or no bridge to ask."""
    found: list[DoctorFinding] = []
    if facts.status != "offline" and not facts.transport_connected:
        found.append(DoctorFinding("online_without_transport", ERROR,
                             f"the hub says {facts.status} but no connection serves this peer"))
    if facts.linked:
        if not facts.bridge_connected:
            found.append(DoctorFinding("bridge_unavailable", ERROR, "no pane bridge for its tmux server is connected"))
        elif facts.pane_exists is False:
            found.append(DoctorFinding("pane_missing", ERROR, "the linked pane no longer exists"))
        else:
            if facts.pane_dead:
                found.append(DoctorFinding("pane_dead", ERROR, "the pane's program has exited"))
            if facts.pid_alive is False:
                found.append(DoctorFinding("pid_dead", ERROR, "the pane's process is gone"))
            if facts.fingerprint_matches is False:
                found.append(DoctorFinding("fingerprint_changed", ERROR,
                                     f"the pane changed since it was linked: {', '.join(facts.changed)}"))
            if facts.fingerprint_matches and not facts.pane_dead and not facts.transport_connected:
                found.append(DoctorFinding("transport_down", WARNING,
                                     "the pane is fine but its transport is not connected; rehook can restart it"))
    if facts.stale_asks:
        found.append(DoctorFinding("stale_pending_asks", WARNING,
                             f"{facts.stale_asks} ask(s) have waited over {STALE_ASK_AGE_S} s for this peer"))
    return found


@dataclass(frozen=True, slots=True)
class RehookPlan:
    action: Literal["restart_transport", "none"]
    reason: str


def plan_rehook(facts: DoctorChecks) -> RehookPlan:
    """Restart a pane transport only where that is the whole fix: a linked pane that is still
    the one linked, whose transport is down. A healthy transport is never touched."""
    if not facts.linked:
        return RehookPlan("none", "the peer has no pane link")
    if facts.transport_connected:
        return RehookPlan("none", "the transport is connected; nothing to do")
    if not facts.bridge_connected:
        return RehookPlan("none", "no pane bridge is connected to restart it with; start `repowire bridge`")
    if facts.pane_exists is False or facts.pane_dead or facts.pid_alive is False:
        return RehookPlan("none", "the pane is gone; unlink the peer or link the pane that replaced it")
    if facts.fingerprint_matches is False:
        return RehookPlan("none", f"the pane changed ({', '.join(facts.changed)}); nothing will be typed into "
                                  "it; link it again if it is the right one")
    return RehookPlan("restart_transport", "the pane is as linked and its transport is down")
