"""Typing deliveries into a tmux pane, safely, and confirming they arrived.

Each delivery is neutralised (see `pane_text`), loaded into a private tmux buffer, pasted as
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

from transports.pane_text import neutralise

CONFIRM_PREFIX_CHARS = 48


@dataclass(frozen=True, slots=True)
class InjectionResult:
    status: str               # "injected" or "failed", as in a receipt
    reason: str | None = None


class PaneInjector:
    def __init__(self, server: libtmux.Server, *, confirm_timeout_s: float = 3.0):
        self.server = server
        self.confirm_timeout_s = confirm_timeout_s

    async def inject(self, pane_id: str, text: str) -> InjectionResult:
        return await anyio.to_thread.run_sync(self._inject, pane_id, neutralise(text))

    def _tmux(self, *args: str) -> list[str]:
        result = self.server.cmd(*args)
        if result.stderr:
            raise LibTmuxException(" ".join(result.stderr))
        return result.stdout

    def _inject(self, pane_id: str, text: str) -> InjectionResult:
        try:
            state = self._tmux("display-message", "-p", "-t", pane_id, "#{pane_id} #{pane_in_mode} #{pane_dead}")
        except LibTmuxException:
            return InjectionResult("failed", "pane_missing")
        found, in_mode, dead = (state[0].split() + ["", "", ""])[:3] if state else ("", "", "")
        if found != pane_id:
            return InjectionResult("failed", "pane_missing")
        if dead == "1":
            return InjectionResult("failed", "pane_dead")
        buffer = f"repowire-{secrets.token_hex(6)}"
        try:
            if in_mode == "1":
                self._tmux("send-keys", "-t", pane_id, "-X", "cancel")
            self._tmux("set-buffer", "-b", buffer, "--", text)
            self._tmux("paste-buffer", "-d", "-p", "-r", "-b", buffer, "-t", pane_id)
            self._tmux("send-keys", "-t", pane_id, "Enter")
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
