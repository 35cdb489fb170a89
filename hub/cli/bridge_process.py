"""The pane bridge beside a hub: `repowire serve` runs `repowire bridge` for the local tmux
server as a child process, once the hub listens; restarts it with backoff if it exits; and
stops it by its pid when the hub stops. The bridge is told the hub's pid (`--exit-with`), so
it exits by itself when the hub dies without stopping it (SIGKILL): a restarted hub never
finds the old bridge in the way of its own.

A separate process, not a task in the hub: the bridge is a client like any other (the same
program serves another machine), and tmux and /proc work never shares the hub's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

BACKOFF_S = (1.0, 30.0)
STOP_GRACE_S = 5.0


@dataclass
class BridgeSupervisor:
    home: str
    hub_url: str
    hub_token: str
    tmux_socket: str | None = None
    log_level: str = "warning"

    def __post_init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self._stopping = False

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "hub.cli.main", "--home", self.home, "bridge", "--hub-url", self.hub_url,
                "--log-level", self.log_level, "--exit-with", str(os.getpid())]
        if self.tmux_socket:
            argv += ["--tmux-socket", self.tmux_socket]
        return argv

    async def run(self, hub_ready: asyncio.Event) -> None:
        await hub_ready.wait()
        env = {**os.environ, "REPOWIRE_HOME": self.home, "REPOWIRE_TOKEN": self.hub_token}
        env.pop("REPOWIRE_URL", None)
        delay = BACKOFF_S[0]
        while not self._stopping:
            self.process = await asyncio.create_subprocess_exec(*self.argv(), env=env, stdin=asyncio.subprocess.DEVNULL)
            log.info("pane bridge started (pid %s)", self.process.pid)
            code = await self.process.wait()
            if self._stopping:
                return
            log.warning("pane bridge exited with %s; starting it again in %.0f s", code, delay)
            await asyncio.sleep(delay)
            delay = min(BACKOFF_S[1], delay * 2)

    async def stop(self) -> None:
        self._stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            process.kill()
            await process.wait()
