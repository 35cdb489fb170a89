"""The `PaneService`: tmux panes through the pane bridges connected to this node.

The hub never runs tmux itself. A pane bridge (`repowire bridge`, started by `repowire serve`)
connects with role `bridge` and the hub token; the hub sends it `bridge_call` frames (list
the panes, inspect one, attach or detach a pane transport, capture a screen, send keys) and
waits, bounded, for the `bridge_result` with the same call id. Each linked pane's deliveries
travel over a connection of its own that the bridge opens as that peer, with a token the hub
mints for it; so presence, inbox, replay and receipts are the ones every peer has.

Linking fails closed: the peer is registered, the bridge is asked to bring the transport up,
and if it does not within the bound, the registration is undone and the caller told why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from hub.core.errors import HubError
from hub.core.ids import new_peer_id
from hub.core.panes import (
    STALE_ASK_AGE_S,
    PaneLink,
    check_backend,
    check_lines,
    check_pane_id,
    default_name,
    diagnose,
    plan_rehook,
    tmux_keys,
)
from hub.core.peers import OFFLINE, PeerRecord
from hub.core.trace import Stage, stage_entry
from hub.runtime.connection import Connection
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.store.state import StoreState
from schemas.codec import encode
from schemas.errors import ErrorCode
from schemas.frames import BridgeCall, BridgeOp
from schemas.names import as_name
from schemas.rest import (
    DoctorChecks,
    DoctorReport,
    KeysSent,
    Linked,
    OrphanList,
    PaneOutput,
    PaneView,
    RehookReport,
    Unlinked,
)

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0


@dataclass(slots=True)
class BridgeLink:
    name: str
    peer_id: str
    conn: Connection


def require_person(sender: Sender, what: str) -> None:
    if not sender.is_person:
        raise HubError(ErrorCode.FORBIDDEN, f"only a person (the hub token or a `person` peer) may {what}")


def require_self_or_person(sender: Sender, peer: PeerRecord, what: str) -> None:
    if not sender.is_person and (sender.peer is None or sender.peer.peer_id != peer.peer_id):
        raise HubError(ErrorCode.FORBIDDEN, f"only {peer.address} itself or a person may {what}",
                       {"peer_id": peer.peer_id})


class PaneService:
    def __init__(self, hub: Hub, state: StoreState, *, link_timeout_s: float = 10.0, call_timeout_s: float = CALL_TIMEOUT_S,
                 started_bridge_grace_s: float = 0.0):
        """`started_bridge_grace_s`: the hub started a pane bridge of its own (`repowire serve`);
        for this long after start-up a pane route waits for it to say hello instead of answering
        `bridge_unavailable` (it connects a fraction of a second after the hub listens)."""
        self.hub = hub
        self.state = state   # the shared store: traces, inboxes, the writer
        self.link_timeout_s = link_timeout_s
        self.call_timeout_s = call_timeout_s
        self.bridges: dict[str, BridgeLink] = {}
        self._calls: dict[str, tuple[str, asyncio.Future]] = {}   # call id -> (bridge name, its result)
        self._linking: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task] = set()
        self._a_bridge_joined = asyncio.Event()
        self._started_bridge_until = time.monotonic() + started_bridge_grace_s

    # ---- bridges -----------------------------------------------------------------------------

    def bridge_joined(self, peer: PeerRecord, conn: Connection) -> None:
        """A bridge said hello: it serves calls from now on, and the panes linked through it
        before (its previous run) get their transports back."""
        self.bridges[peer.name] = BridgeLink(peer.name, peer.peer_id, conn)
        self._a_bridge_joined.set()
        task = asyncio.create_task(self._reattach(peer.name), name=f"reattach {peer.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def bridge_left(self, conn: Connection) -> None:
        for name, link in list(self.bridges.items()):
            if link.conn is conn:
                del self.bridges[name]
                for bridge, future in list(self._calls.values()):
                    if bridge == name and not future.done():
                        future.set_exception(HubError(ErrorCode.BRIDGE_UNAVAILABLE,
                                                      f"the pane bridge {name} disconnected"))

    def result(self, call_id: str, ok: bool, result: dict | None, error: dict | None) -> None:
        entry = self._calls.get(call_id)
        if entry is None or entry[1].done():
            return  # answered after its caller gave up
        future = entry[1]
        if ok:
            future.set_result(result or {})
            return
        error = error or {}
        code = error.get("code", "")
        known = code in ErrorCode.__members__.values()
        future.set_exception(HubError(ErrorCode(code) if known else ErrorCode.TRANSPORT_FAILED,
                                      str(error.get("message") or "the pane bridge failed"),
                                      error.get("details") or {}))

    async def call(self, bridge: BridgeLink, op: BridgeOp, args: dict[str, Any],
                   timeout: float | None = None) -> dict[str, Any]:
        call_id = new_peer_id()
        future = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (bridge.name, future)
        try:
            frame = encode(BridgeCall(call_id=call_id, op=op, args=args))
            if not bridge.conn.push(frame):
                raise HubError(ErrorCode.BRIDGE_UNAVAILABLE, f"the pane bridge {bridge.name} is not connected")
            bound = timeout or self.call_timeout_s
            try:
                async with asyncio.timeout(bound):
                    return await future
            except TimeoutError:
                raise HubError(ErrorCode.BRIDGE_UNAVAILABLE,
                               f"the pane bridge {bridge.name} did not answer {op} within {bound:g} s") from None
        finally:
            self._calls.pop(call_id, None)

    async def _started_bridge(self) -> None:
        """Wait, bounded by the start-up grace, for the bridge this hub started; at once when a
        bridge is connected or the grace is over."""
        remaining = self._started_bridge_until - time.monotonic()
        if self.bridges or remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await self._a_bridge_joined.wait()

    async def _ready_bridge(self, name: str | None) -> BridgeLink:
        await self._started_bridge()
        return self._bridge(name)

    def _bridge(self, name: str | None) -> BridgeLink:
        if name is not None:
            found = self.bridges.get(name)
            if found is None:
                raise HubError(ErrorCode.BRIDGE_UNAVAILABLE, f"the pane bridge {name} is not connected to this node",
                               {"bridges": sorted(self.bridges)})
            return found
        if not self.bridges:
            raise HubError(ErrorCode.BRIDGE_UNAVAILABLE,
                           "no pane bridge is connected: `repowire serve` starts one unless --no-bridge; "
                           "or run `repowire bridge`")
        if len(self.bridges) > 1:
            raise HubError(ErrorCode.INVALID_REQUEST, "several pane bridges are connected; name one with `bridge`",
                           {"bridges": sorted(self.bridges)})
        return next(iter(self.bridges.values()))

    def seat_owner(self, bridge: str, pane_id: str) -> PeerRecord | None:
        """The peer linked to this pane id of this bridge's tmux server, whatever runs in it now."""
        return next((p for p in self.hub.peers.values()
                     if p.pane and p.pane.bridge == bridge and p.pane.pane_id == pane_id), None)

    def _owner(self, bridge: str, pane_id: str, pid: int) -> PeerRecord | None:
        return next((p for p in self.hub.peers.values() if p.pane and p.pane.holds(bridge, pane_id, pid)), None)

    @staticmethod
    def _link_of(peer: PeerRecord) -> PaneLink:
        if peer.pane is None:
            raise HubError(ErrorCode.NOT_LINKED, f"{peer.address} has no tmux pane linked to it",
                           {"peer_id": peer.peer_id})
        return peer.pane

    # ---- orphans and links -------------------------------------------------------------------

    async def orphans(self) -> OrphanList:
        """Every pane of every connected bridge's tmux server that no peer is linked to."""
        await self._started_bridge()
        if not self.bridges:
            self._bridge(None)  # says why there is no answer
        panes = []
        for bridge in list(self.bridges.values()):
            listed = await self.call(bridge, "panes", {})
            panes += [{**pane, "bridge": bridge.name} for pane in listed.get("panes", [])
                      if self._owner(bridge.name, pane["pane_id"], pane["pid"]) is None]
        return OrphanList(panes=msgspec.convert(panes, list[PaneView]), bridges=sorted(self.bridges))

    async def link(self, sender: Sender, pane_id: str, backend: str, name: str | None = None,
                   circle: str | None = None, bridge_name: str | None = None) -> Linked:
        require_person(sender, "link a pane")
        check_pane_id(pane_id)
        check_backend(backend)
        bridge = await self._ready_bridge(bridge_name)
        key = (bridge.name, pane_id)
        if key in self._linking:
            raise HubError(ErrorCode.ALREADY_LINKED, f"{pane_id} is being linked right now", {"pane_id": pane_id})
        self._linking.add(key)
        try:
            pane = (await self.call(bridge, "inspect", {"pane_id": pane_id})).get("pane")
            if pane is None:
                raise HubError(ErrorCode.PANE_NOT_FOUND, f"no pane {pane_id} on the tmux server of {bridge.name}",
                               {"pane_id": pane_id, "bridge": bridge.name})
            owner = self._owner(bridge.name, pane_id, pane["pid"])
            if owner is not None:
                raise HubError(ErrorCode.ALREADY_LINKED, f"{pane_id} is already linked to {owner.address}",
                               {"pane_id": pane_id, "peer_id": owner.peer_id})
            link = PaneLink(bridge.name, pane_id, backend, pane["fingerprint"], self.hub.now_ms())
            peer, token, undo = await self.hub.lifecycle.bind_pane(name or default_name(pane["cwd"], backend),
                                                         circle or as_name(pane["session"], "default"), link)
            try:
                await self.attach(bridge, peer, token)
            except HubError as exc:
                await self.detach_quietly(bridge, peer.peer_id, "link_undone")
                await undo()
                raise HubError(ErrorCode.TRANSPORT_FAILED,
                               f"the pane transport for {pane_id} did not come up, so the link was undone: "
                               f"{exc.message}", {"pane_id": pane_id, "cause": exc.code.value}) from None
        finally:
            self._linking.discard(key)
        return Linked(peer=await self.hub.peer_view(peer), transport="connected")

    async def attach(self, bridge: BridgeLink, peer: PeerRecord, token: str) -> None:
        link = self._link_of(peer)
        await self.call(bridge, "attach", {"peer_id": peer.peer_id, "name": peer.name, "circle": peer.circle,
                                           "pane_id": link.pane_id, "fingerprint": link.fingerprint, "token": token},
                        timeout=self.link_timeout_s)
        if not self.hub.presence.connected_here(peer):
            raise HubError(ErrorCode.TRANSPORT_FAILED, "the bridge answered but the pane's connection is not up")

    async def detach_quietly(self, bridge: BridgeLink, peer_id: str, reason: str) -> None:
        try:
            await self.call(bridge, "detach", {"peer_id": peer_id, "reason": reason}, timeout=2.0)
        except HubError as exc:
            log.info("detach of %s on %s: %s", peer_id, bridge.name, exc.message)

    async def _reattach(self, bridge_name: str) -> None:
        """Bring back the transports of the panes linked through this bridge that are offline."""
        for peer_id in [p.peer_id for p in self.hub.peers.values() if p.pane and p.pane.bridge == bridge_name]:
            bridge = self.bridges.get(bridge_name)
            peer = self.hub.peers.get(peer_id)   # as it is now: each attach before this one awaited
            if peer is None:
                continue
            if bridge is None or self.hub.presence.connected_here(peer) or peer.status != OFFLINE:
                continue
            try:
                peer, token = await self.hub.lifecycle.reissue_token(peer)
                await self.attach(bridge, peer, token)
            except HubError as exc:
                log.info("pane transport of %s not restarted: %s", peer.address, exc.message)
                self.hub.presence.note(peer, exc.code.value)

    async def unlink(self, sender: Sender, peer: PeerRecord) -> Unlinked:
        require_person(sender, "unlink a pane")
        link = self._link_of(peer)
        bridge = self.bridges.get(link.bridge)
        if bridge is not None:
            await self.detach_quietly(bridge, peer.peer_id, "unlinked")
        peer = await self.hub.lifecycle.unbind_pane(peer, "unlinked")
        return Unlinked(peer_id=peer.peer_id, pane_id=link.pane_id, status=peer.status)

    # ---- looking in and steering -------------------------------------------------------------

    def _traced(self, kind: str, sender: Sender, peer: PeerRecord, final: Stage, **extra) -> str:
        now = self.hub.now_ms()
        trace_id = self.hub.ids.next(now)
        node = self.hub.node
        stages = [stage_entry(Stage.ACCEPTED, now, node, kind=kind, from_peer=sender.key_owner, to=peer.peer_id),
                  stage_entry(final, now, node, peer_id=peer.peer_id, **extra)]
        self.state.writer.submit([self.state.trace_cmd(trace_id, stages, self.hub.settings.trace_retention_s)],
                                     wait=False)
        return trace_id

    async def _pane_call(self, kind: str, sender: Sender, peer: PeerRecord, op: BridgeOp, args: dict[str, Any],
                         done: Stage, **extra) -> tuple[dict, str, PaneLink]:
        link = self._link_of(peer)
        bridge = await self._ready_bridge(link.bridge)
        try:
            result = await self.call(bridge, op, {"pane_id": link.pane_id, "expected": link.fingerprint, **args})
        except HubError as exc:
            self._traced(kind, sender, peer, Stage.FAILED, reason=exc.code.value, **extra)
            raise
        return result, self._traced(kind, sender, peer, done, **extra), link

    async def output(self, sender: Sender, peer: PeerRecord, lines: int) -> PaneOutput:
        """The pane's screen and recent scrollback, as text."""
        check_lines(lines)
        result, trace_id, link = await self._pane_call("pane_output", sender, peer, "capture", {"lines": lines},
                                                       Stage.RECEIVED, lines=lines)
        return PaneOutput(peer_id=peer.peer_id, pane_id=link.pane_id, lines=list(result.get("lines", [])),
                          trace_id=trace_id)

    async def keys(self, sender: Sender, peer: PeerRecord, keys: list[str]) -> KeysSent:
        require_person(sender, "send keys to a pane")
        names = tmux_keys(keys)
        _, trace_id, link = await self._pane_call("pane_keys", sender, peer, "keys", {"keys": names},
                                                  Stage.INJECTED, keys=" ".join(keys))
        return KeysSent(peer_id=peer.peer_id, pane_id=link.pane_id, sent=keys, trace_id=trace_id)

    # ---- doctor and rehook -------------------------------------------------------------------

    async def _facts(self, peer: PeerRecord) -> DoctorChecks:
        hub = self.hub
        elsewhere = peer.node not in ("", hub.node) and peer.status != OFFLINE
        connected = hub.presence.connected_here(peer) or elsewhere
        entries = await self.state.read_inbox(peer.peer_id, 0, 1000)
        pending = (await self.state.inbox_lengths([peer.peer_id]))[peer.peer_id]
        now = hub.now_ms()
        ages = [(now - int(orjson.loads(e.payload).get("sent_at", now))) / 1000 for e in entries]
        stale = sum(1 for e, age in zip(entries, ages) if e.kind == "ask" and age > STALE_ASK_AGE_S)
        pane = check = None
        bridge = self.bridges.get(peer.pane.bridge) if peer.pane else None
        if peer.pane is not None and bridge is not None:
            inspected = await self.call(bridge, "inspect", {"pane_id": peer.pane.pane_id,
                                                            "expected": peer.pane.fingerprint})
            pane, check = inspected.get("pane"), inspected.get("check") or {}
        linked = peer.pane is not None
        known = linked and bridge is not None
        return DoctorChecks(
            status=peer.status, transport_connected=connected, linked=linked, bridge_connected=bridge is not None,
            pane_exists=(pane is not None) if known else None,
            pane_dead=bool(pane["dead"]) if pane else None,
            pid_alive=check.get("pid_alive") if pane and check is not None else None,
            fingerprint_matches=(not check.get("changed")) if pane and check is not None else None,
            changed=list(check.get("changed") or ()) if check else [],
            pending=int(pending), oldest_pending_age_s=round(max(ages), 3) if ages else None, stale_asks=stale)

    async def doctor(self, peer: PeerRecord) -> DoctorReport:
        facts = await self._facts(peer)
        findings = diagnose(facts)
        return DoctorReport(peer_id=peer.peer_id, name=peer.name, healthy=not findings, checks=facts,
                            contradictions=findings)

    async def rehook(self, sender: Sender, peer: PeerRecord, apply: bool) -> RehookReport:
        """Dry run unless `apply`: restart a dead pane transport; a healthy one is never touched."""
        require_person(sender, "rehook a pane")
        plan = plan_rehook(await self._facts(peer))
        applied = False
        if apply and plan.action == "restart_transport":
            bridge = await self._ready_bridge(self._link_of(peer).bridge)
            try:
                peer, token = await self.hub.lifecycle.reissue_token(peer)
                await self.attach(bridge, peer, token)
            except HubError as exc:
                self.hub.presence.note(peer, exc.code.value)
                raise HubError(ErrorCode.TRANSPORT_FAILED, f"the pane transport did not come back: {exc.message}",
                               {"cause": exc.code.value}) from None
            applied = True
        return RehookReport(peer_id=peer.peer_id, action=plan.action, reason=plan.reason, applied=applied,
                            transport_connected=self.hub.presence.connected_here(peer))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
