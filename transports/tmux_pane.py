"""Typing deliveries into a tmux pane, safely, and confirming they arrived; reading a pane's
screen and sending it named keys.

With the fingerprint the pane was linked with, nothing is typed into a pane that changed
hands: the result is `held` with the reason, and the delivery stays queued. Each delivery is
neutralised (see `pane_text`), loaded into a private tmux buffer, pasted as
one block (bracketed paste when the program in the pane asked for it), then Enter. Copy mode
is left first, or the paste would land in it. The pane is then read back: the delivery counts
as `injected` only when its text is on the screen. libtmux blocks, so every tmux call runs in a
worker thread; the event loop never waits on tmux.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import anyio
import libtmux
from libtmux.exc import LibTmuxException

from transports.pane_text import neutralise, strip_terminal_codes
from transports.panes import PaneCheck, check_pane, find_pane

CONFIRM_PREFIX_CHARS = 48


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
            # one tmux call for paste and Enter (";" alone is tmux's command separator; the text
            # never travels in this call, so it cannot split it)
            self._tmux("paste-buffer", "-d", "-p", "-r", "-b", buffer, "-t", pane_id, ";", "send-keys", "-t", pane_id,
                       "Enter")
        except LibTmuxException as exc:
            self.server.cmd("delete-buffer", "-b", buffer)
            return InjectionResult("failed", f"tmux: {exc}"[:200])
        return self._confirm(pane_id, text)

    def _confirm(self, pane_id: str, text: str) -> InjectionResult:
        """Read the pane back until the delivery's beginning shows, within a bound."""
        wanted = " ".join(text[:CONFIRM_PREFIX_CHARS].split())
        deadline = time.monotonic() + self.confirm_timeout_s
        while True:
            try:
                screen = self._tmux("capture-pane", "-p", "-J", "-t", pane_id, "-S", "-200")
            except LibTmuxException:
                return InjectionResult("failed", "pane_missing")
            if wanted in " ".join(" ".join(screen).split()):
                return InjectionResult("injected")
            if time.monotonic() > deadline:
                return InjectionResult("failed", "not_visible")
            time.sleep(0.02)  # in a worker thread, polling tmux for the screen to show it
