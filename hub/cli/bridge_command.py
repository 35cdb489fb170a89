"""`repowire bridge`: run a pane bridge for one tmux server until stopped (SIGTERM or Ctrl-C).

`repowire serve` starts one for the local tmux server by itself; run this by hand for another
tmux socket, or on another machine with `--hub-url` and the hub token in REPOWIRE_TOKEN.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import libtmux

from transports.bridge import PaneBridge
from transports.client import HubRefused
from transports.discovery import HubAddress, find_hub, find_token


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
    except asyncio.CancelledError:
        pass


def bridge(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = find_token(args.home)
    if not token:
        print("repowire bridge: no hub token (set REPOWIRE_TOKEN or run on the hub's machine)", file=sys.stderr)
        return 2
    address = HubAddress(args.hub_url.rstrip("/")) if args.hub_url else find_hub(args.home)
    server = tmux_server(args.tmux_socket, args.tmux_socket_path)
    pane_bridge = PaneBridge(server, address=address, hub_token=token, watch_interval_s=args.watch_interval)
    try:
        asyncio.run(_run(pane_bridge))
    except HubRefused as exc:
        print(f"repowire bridge: the hub refused the bridge: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"repowire bridge: cannot reach the hub at {address.http_url}: {exc}", file=sys.stderr)
        return 2
    return 0
