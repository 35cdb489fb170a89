"""`repowire bridge`: run a pane bridge for one tmux server until stopped (SIGTERM or Ctrl-C).

`repowire serve` starts one for the local tmux server by itself, with `--exit-with <its pid>`:
a bridge whose hub died (even by SIGKILL) exits within a watch interval, and the restarted
hub's own bridge takes the panes back. One bridge per tmux server on a machine: each holds
an exclusive lock, `$REPOWIRE_HOME/bridges/<bridge name>.lock`; a second one waits up to
LOCK_WAIT_S for the first to go, then exits. Run this by hand for another tmux socket, or on
another machine with `--hub-url` and the hub token in REPOWIRE_TOKEN.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
import time
from pathlib import Path

import libtmux

from schemas.local import home_folder
from transports.bridge import BridgeOrphaned, PaneBridge
from transports.client import HubRefused
from transports.discovery import HubAddress, find_hub, find_token

LOCK_WAIT_S = 15.0


def tmux_server(socket_name: str | None, socket_path: str | None) -> libtmux.Server:
    if socket_path:
        return libtmux.Server(socket_path=socket_path)
    return libtmux.Server(socket_name=socket_name) if socket_name else libtmux.Server()


async def _run(bridge: PaneBridge) -> None:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await bridge.run()
    except (asyncio.CancelledError, BridgeOrphaned):
        pass


def hold_lock(path: Path, wait_s: float) -> int | None:
    """An exclusive lock on `path`, held while the returned descriptor stays open; None if
    another process still holds it after `wait_s`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.1)  # the other bridge is on its way out (its hub is gone)


def bridge(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = find_token(args.home)
    if not token:
        print("repowire bridge: no hub token (set REPOWIRE_TOKEN or run on the hub's machine)", file=sys.stderr)
        return 2
    address = HubAddress(args.hub_url.rstrip("/")) if args.hub_url else find_hub(args.home)
    server = tmux_server(args.tmux_socket, args.tmux_socket_path)
    pane_bridge = PaneBridge(server, address=address, hub_token=token, watch_interval_s=args.watch_interval,
                             exit_with=args.exit_with)
    lock_path = Path(home_folder(args.home)) / "bridges" / f"{pane_bridge.name}.lock"
    if hold_lock(lock_path, LOCK_WAIT_S) is None:
        holder = lock_path.read_text().strip() if lock_path.exists() else "?"
        print(f"repowire bridge: another bridge (pid {holder}) serves this tmux server ({pane_bridge.name}); "
              "there is one per tmux server", file=sys.stderr)
        return 1
    try:
        asyncio.run(_run(pane_bridge))
    except HubRefused as exc:
        print(f"repowire bridge: the hub refused the bridge: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"repowire bridge: cannot reach the hub at {address.http_url}: {exc}", file=sys.stderr)
        return 2
    return 0
