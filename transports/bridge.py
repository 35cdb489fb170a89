"""The pane bridge: runs one tmux server's panes for the hub.

It connects to the hub like any client, with role `bridge` and the hub token, and answers the
hub's `bridge_call` frames: list the panes, inspect one, attach or detach a pane transport,
capture a screen, send named keys. The same code serves the hub's own machine (`repowire
serve` starts one) and another machine (`repowire bridge --hub-url …`).

A pane transport is one hub connection per linked pane, opened as that peer with the token the
hub minted for it. It types each delivery into the pane (framed, neutralised, pasted as one
block, confirmed by reading the pane back) and answers with a receipt: `injected`, `failed`
with a reason, or `held` when the pane changed hands, in which case nothing is typed, the
delivery stays queued and the transport leaves with the reason (`bye`). A watcher compares the
linked panes' fingerprints every `watch_interval_s`, so a pane that closes, dies or is
replaced takes its peer offline with the reason even when nothing is being delivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass, field

import anyio
import libtmux
from libtmux.exc import LibTmuxException, TmuxCommandNotFound
from websockets.exceptions import ConnectionClosed

from schemas.names import tmux_bridge_name
from transports.client import HubClient, HubRefused
from transports.discovery import HubAddress
from transports.pane_text import frame_delivery
from transports.panes import check_pane, find_pane, list_panes
from transports.tmux_pane import PaneChanged, PaneInjector

log = logging.getLogger(__name__)

BRIDGE_CIRCLE = "bridges"


class BridgeError(Exception):
    """A call the bridge cannot do; `code` is from the hub's error table."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def bridge_name(server: libtmux.Server) -> str:
    """`tmux-<host>-<socket>`: one bridge per tmux server on a machine."""
    return tmux_bridge_name(socket.gethostname(), server.socket_name or (str(server.socket_path) if server.socket_path else None))


@dataclass
class PaneTransport:
    """Deliveries of one linked peer, typed into its pane."""
    peer_id: str
    pane_id: str
    fingerprint: dict
    client: HubClient
    injector: PaneInjector
    task: asyncio.Task | None = None
    left: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pane {self.pane_id}")

    @property
    def live(self) -> bool:
        return self.task is not None and not self.task.done()

    async def _run(self) -> None:
        deliver = asyncio.create_task(self._deliver())
        finished = asyncio.create_task(self.client.finished())
        try:
            await asyncio.wait({deliver, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deliver.cancel()
            finished.cancel()
            self.left.set()

    async def _deliver(self) -> None:
        while True:
            frame = await self.client.receive()
            result = await self.injector.inject(self.pane_id, frame_delivery(frame, self.client.address.http_url),
                                                 self.fingerprint)
            try:
                await self.client.receipt(frame["message_id"], result.status, result.reason)
            except (ConnectionClosed, OSError):
                continue  # the hub redelivers what it has no receipt for
            if result.status == "held":
                log.info("pane %s changed (%s): leaving, deliveries stay queued", self.pane_id, result.reason)
                await self.client.bye(result.departure or "pane_changed")
                return

    async def leave(self, reason: str) -> None:
        await self.client.bye(reason)
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=5)


class BridgeOrphaned(Exception):
    """The hub process that started this bridge is gone."""


class PaneBridge:
    def __init__(self, server: libtmux.Server, *, address: HubAddress, hub_token: str, name: str | None = None,
                 watch_interval_s: float = 0.5, confirm_timeout_s: float = 3.0, exit_with: int | None = None):
        self.server = server
        self.address = address
        self.hub_token = hub_token
        self.name = name or bridge_name(server)
        self.watch_interval_s = watch_interval_s
        self.injector = PaneInjector(server, confirm_timeout_s=confirm_timeout_s)
        self.transports: dict[str, PaneTransport] = {}
        self.control: HubClient | None = None
        self._calls: set[asyncio.Task] = set()
        self.exit_with = exit_with   # the hub process that started this bridge: when it is gone, so is the bridge

    def hub_process_gone(self) -> bool:
        """The hub that started this bridge died (this process was handed to another parent)."""
        return self.exit_with is not None and os.getppid() != self.exit_with

    async def run(self) -> None:
        """Connect, then serve the hub's calls and watch the linked panes until cancelled."""
        self.control = HubClient(self.name, BRIDGE_CIRCLE, "bridge", address=self.address, hub_token=self.hub_token)
        await self.control.connect()
        log.info("pane bridge %s connected to %s", self.name, self.address.http_url)
        watcher = asyncio.create_task(self._watch(), name="pane watcher")
        serving = asyncio.create_task(self._serve(), name="bridge calls")
        try:
            done, _ = await asyncio.wait({watcher, serving}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()   # BridgeOrphaned, or why the hub's connection ended
        finally:
            watcher.cancel()
            serving.cancel()
            await self.close()

    async def _serve(self) -> None:
        assert self.control is not None
        while True:
            call = await self.control.next_event()
            if call.get("type") == "bridge_call":
                task = asyncio.create_task(self._answer(call))
                self._calls.add(task)
                task.add_done_callback(self._calls.discard)

    async def close(self) -> None:
        for task in list(self._calls):
            task.cancel()
        for transport in list(self.transports.values()):
            await transport.leave("bridge_stopped")
        self.transports.clear()
        if self.control is not None:
            await self.control.close()

    # ---- calls -------------------------------------------------------------------------------

    async def _answer(self, call: dict) -> None:
        op, args = call.get("op", ""), call.get("args") or {}
        reply: dict = {"type": "bridge_result", "call_id": call.get("call_id", "")}
        handler = {"panes": self.op_panes, "inspect": self.op_inspect, "attach": self.op_attach,
                   "detach": self.op_detach, "capture": self.op_capture, "keys": self.op_keys}.get(op)
        try:
            if handler is None:
                raise BridgeError("invalid_request", f"this bridge does not know the call {op!r}")
            reply.update(ok=True, result=await handler(args))
        except BridgeError as exc:
            reply.update(ok=False, error={"code": exc.code, "message": exc.message})
        except PaneChanged as exc:
            code = "pane_not_found" if exc.check.pane is None else "fingerprint_changed"
            reply.update(ok=False, error={"code": code, "message": str(exc), "details": exc.check.public()})
        except (LibTmuxException, TmuxCommandNotFound) as exc:
            reply.update(ok=False, error={"code": "transport_failed", "message": f"tmux: {exc}"[:300]})
        except Exception as exc:
            log.exception("bridge call %s failed", op)
            reply.update(ok=False, error={"code": "transport_failed", "message": f"the bridge failed: {exc}"[:300]})
        assert self.control is not None
        try:
            await self.control.send_frame(reply)
        except (ConnectionClosed, OSError):
            log.info("the hub left before the answer to %s", op)

    async def op_panes(self, args: dict) -> dict:
        panes = await anyio.to_thread.run_sync(list_panes, self.server)
        return {"panes": [pane.public() for pane in panes]}

    async def op_inspect(self, args: dict) -> dict:
        pane_id = str(args.get("pane_id", ""))
        pane = await anyio.to_thread.run_sync(lambda: find_pane(self.server, pane_id, detect=True))
        result: dict = {"pane": pane.public() if pane else None}
        if args.get("expected") is not None:
            result["check"] = check_pane(pane, args["expected"]).public()
        return result

    async def op_attach(self, args: dict) -> dict:
        peer_id, pane_id, expected = str(args["peer_id"]), str(args["pane_id"]), dict(args["fingerprint"])
        check = await anyio.to_thread.run_sync(self.injector.check, pane_id, expected)
        if check.departure is not None:
            raise PaneChanged(check)
        existing = self.transports.get(peer_id)
        if existing is not None and existing.live:
            await existing.leave("transport_restarted")
        client = HubClient(str(args["name"]), str(args["circle"]), "agent", address=self.address,
                           token=str(args["token"]), auto_receipt=False)
        try:
            await client.connect()
        except HubRefused as exc:
            raise BridgeError("transport_failed", f"the hub refused the pane's connection: {exc}") from None
        except (TimeoutError, OSError, ConnectionClosed) as exc:
            raise BridgeError("transport_failed", f"could not reach the hub for the pane: {exc}") from None
        transport = PaneTransport(peer_id, pane_id, expected, client, self.injector)
        transport.start()
        self.transports[peer_id] = transport
        return {"attached": True, "peer_id": client.peer_id}

    async def op_detach(self, args: dict) -> dict:
        transport = self.transports.pop(str(args.get("peer_id", "")), None)
        if transport is not None:
            await transport.leave(str(args.get("reason") or "detached"))
        return {"detached": transport is not None}

    async def op_capture(self, args: dict) -> dict:
        lines = await self.injector.capture(str(args["pane_id"]), int(args.get("lines", 100)), args.get("expected"))
        return {"lines": lines}

    async def op_keys(self, args: dict) -> dict:
        keys = [str(k) for k in args.get("keys", [])]
        await self.injector.send_keys(str(args["pane_id"]), keys, args.get("expected"))
        return {"sent": len(keys)}

    # ---- watching ----------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval_s)
            if self.hub_process_gone():
                log.warning("the hub that started this bridge (pid %s) is gone; the bridge stops", self.exit_with)
                raise BridgeOrphaned(self.exit_with)
            for peer_id, transport in list(self.transports.items()):
                if not transport.live:
                    self.transports.pop(peer_id, None)
            if not self.transports:
                continue
            try:
                panes = {p.pane_id: p for p in await anyio.to_thread.run_sync(
                    lambda: list_panes(self.server, detect=False))}
            except (LibTmuxException, TmuxCommandNotFound) as exc:
                log.warning("cannot list panes: %s", exc)
                continue
            for peer_id, transport in list(self.transports.items()):
                departure = check_pane(panes.get(transport.pane_id), transport.fingerprint).departure
                if departure is not None:
                    log.info("pane %s: %s; its peer goes offline", transport.pane_id, departure)
                    self.transports.pop(peer_id, None)
                    await transport.leave(departure)
