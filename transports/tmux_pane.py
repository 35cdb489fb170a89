"""Typing deliveries into a tmux pane, safely, and confirming they arrived; reading a pane's
screen and sending it named keys.

With the fingerprint the pane was linked with, nothing is typed into a pane that changed
hands: the result is `held` with the reason, and the delivery stays queued. Each delivery is
neutralised (see `pane_text`), loaded into a private tmux buffer, pasted as
one block (bracketed paste when the program in the pane asked for it). Copy mode is left
first, or the paste would land in it. Then, on their own, Enter, and a check that it was
submitted: the delivery counts as `injected` only when its text reached the line at the cursor
and then left it (an agent's input box is empty again; a shell moved to a new line). An Enter
that did not submit is sent again, at most SUBMIT_TRIES times, and then the delivery is
`failed(not_submitted)`, never `injected`. libtmux blocks, so every tmux call runs in a
worker thread; the event loop never waits on tmux.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import libtmux
from libtmux.exc import LibTmuxException

from transports.pane_text import neutralise, strip_terminal_codes
from transports.panes import PaneCheck, check_pane, find_pane

TAIL_CHARS = 12            # the end of a delivery, looked for before the cursor
SUBMIT_TRIES = 3           # Enter sent this often before a delivery is `failed(not_submitted)`
PASTE_STAND_IN = "[Pastedtext"   # what Claude Code shows for a long paste (whitespace removed)


@dataclass(frozen=True, slots=True)
class InjectionResult:
    status: str               # "injected", "failed" or "held", as in a receipt
    reason: str | None = None
    departure: str | None = None  # held: why the transport must stop (pane_closed, pane_replaced, …)


class PaneChanged(Exception):
    """The pane is not the one linked (or is gone): nothing was done to it."""

    def __init__(self, check: PaneCheck):
        self.check = check
        what = f"changed: {', '.join(check.changed)}" if check.pane is not None else "is gone"
        super().__init__(f"the pane {what}")


class PaneInjector:
    def __init__(self, server: libtmux.Server, *, confirm_timeout_s: float = 3.0):
        self.server = server
        self.confirm_timeout_s = confirm_timeout_s

    async def inject(self, pane_id: str, text: str, expected: dict | None = None) -> InjectionResult:
        return await anyio.to_thread.run_sync(self._inject, pane_id, neutralise(text), expected)

    def check(self, pane_id: str, expected: dict) -> PaneCheck:
        return check_pane(find_pane(self.server, pane_id), expected)

    def _require(self, pane_id: str, expected: dict | None) -> None:
        if expected is not None:
            check = self.check(pane_id, expected)
            if check.departure is not None:
                raise PaneChanged(check)

    async def capture(self, pane_id: str, lines: int, expected: dict | None = None) -> list[str]:
        """The last `lines` lines of the screen and scrollback, as plain text."""
        return await anyio.to_thread.run_sync(self._capture, pane_id, lines, expected)

    def _capture(self, pane_id: str, lines: int, expected: dict | None) -> list[str]:
        self._require(pane_id, expected)
        screen = self._tmux("capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{lines}")
        while screen and not screen[-1].strip():
            screen.pop()
        return [strip_terminal_codes(line) for line in screen[-lines:]]

    async def send_keys(self, pane_id: str, keys: list[str], expected: dict | None = None) -> None:
        """Named tmux keys (the hub passes only its allow-list), each as one key press."""
        await anyio.to_thread.run_sync(self._send_keys, pane_id, keys, expected)

    def _send_keys(self, pane_id: str, keys: list[str], expected: dict | None) -> None:
        self._require(pane_id, expected)
        self._tmux("send-keys", "-t", pane_id, *keys)

    def _tmux(self, *args: str) -> list[str]:
        result = self.server.cmd(*args)
        if result.stderr:
            raise LibTmuxException(" ".join(result.stderr))
        return result.stdout

    def _inject(self, pane_id: str, text: str, expected: dict | None = None) -> InjectionResult:
        pane = find_pane(self.server, pane_id)  # one tmux call: the pane, its fingerprint, copy mode
        if expected is not None:
            check = check_pane(pane, expected)
            if check.departure is not None:
                return InjectionResult("held", f"{check.departure}: {PaneChanged(check)}", check.departure)
        if pane is None:
            return InjectionResult("failed", "pane_missing")
        if pane.dead:
            return InjectionResult("failed", "pane_dead")
        buffer = f"repowire-{secrets.token_hex(6)}"
        try:
            if pane.in_mode:
                self._tmux("send-keys", "-t", pane_id, "-X", "cancel")
            self._tmux("set-buffer", "-b", buffer, "--", text)
            self._tmux("paste-buffer", "-d", "-p", "-r", "-b", buffer, "-t", pane_id)
            # the paste first, on its own: an Enter sent with it is sometimes taken by an agent's
            # TUI as part of the paste, and the text then sits in its input box unsent
            if not self._until(lambda: self._at_cursor(pane_id, text)):
                return InjectionResult("failed", "not_visible")
            for _ in range(SUBMIT_TRIES):
                self._tmux("send-keys", "-t", pane_id, "Enter")
                if self._until(lambda: not self._at_cursor(pane_id, text)):
                    return InjectionResult("injected")
        except LibTmuxException as exc:
            self.server.cmd("delete-buffer", "-b", buffer)
            return InjectionResult("failed", f"tmux: {exc}"[:200])
        return InjectionResult("failed", "not_submitted")

    def _until(self, condition: Callable[[], bool]) -> bool:
        """Whether `condition` holds within the confirm bound (read from tmux every 20 ms)."""
        deadline = time.monotonic() + self.confirm_timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)  # in a worker thread, polling tmux for the screen to change
        return True

    def _at_cursor(self, pane_id: str, text: str) -> bool:
        """Whether the pasted text ends at the cursor (or a TUI's "[Pasted text …]" stand-in for
        it is on the cursor's line): typed, and not yet submitted. Once submitted, an agent's
        input box is empty again, and a shell or plain program has moved to a new line."""
        where = self._tmux("display-message", "-p", "-t", pane_id, "#{cursor_x} #{cursor_y}")
        x, _, y = (where[0] if where else "").partition(" ")
        if not (x.isdigit() and y.isdigit()):
            return False
        screen = self._tmux("capture-pane", "-p", "-t", pane_id)
        line = strip_terminal_codes(screen[int(y)]) if int(y) < len(screen) else ""
        before = "".join(line[:int(x)].split())
        if PASTE_STAND_IN in before:
            return True
        tail = "".join(text.split())[-TAIL_CHARS:]
        if not before or not tail:
            return False
        return before.endswith(tail) if len(before) >= len(tail) else tail.endswith(before)
