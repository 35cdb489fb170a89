"""The `SessionService`: agent sessions that join the hub by themselves, through their hooks.

A session's SessionStart hook says what it knows of itself (agent kind, folder, agent pid and
its ancestors, tmux pane and session); `start` decides the identity by the rules of
`hub.core.sessions` and, when the session sits in a pane a connected bridge serves, brings up
that pane's transport, as `repowire link` would. Its presence then follows its hooks
(`presence`), its SessionEnd takes it offline (`end`), and a session with no pane reads its
queued messages over REST (`Hub.take_inbox`).
"""

from __future__ import annotations

from hub.core.errors import HubError
from hub.core.panes import PaneLink, check_backend
from hub.core.peers import BRIDGE, OFFLINE, ONLINE, PeerRecord
from hub.core.sessions import Joined, is_nested, plan_pane_seat, session_name
from hub.runtime.credentials import Sender
from hub.runtime.hub import Hub
from hub.runtime.panes import BridgeLink, PaneService, require_person, require_self_or_person
from hub.runtime.policies import PolicyService
from hub.runtime.questions import QuestionService
from schemas.errors import ErrorCode
from schemas.names import as_name
from schemas.rest import InboxTaken, PeerView, SessionJoined

MAX_LISTED_ONLINE = 50


class SessionService:
    def __init__(self, hub: Hub, panes: PaneService, questions: QuestionService, policies: PolicyService):
        self.hub = hub
        self.panes = panes
        self.questions = questions
        self.policies = policies

    async def start(self, sender: Sender, *, backend: str, cwd: str, agent_pid: int, ancestors: list[int],
                    pane_id: str | None = None, bridge_name: str | None = None, tmux_session: str | None = None,
                    name: str | None = None, circle: str | None = None) -> SessionJoined:
        require_person(sender, "start an agent session (hooks use the hub token)")
        check_backend(backend)
        name = name or session_name(cwd, backend)
        bridge = self.panes.bridges.get(bridge_name) if pane_id and bridge_name else None
        pane = None
        if bridge is not None:
            pane = (await self.panes.call(bridge, "inspect", {"pane_id": pane_id})).get("pane")
        circle = circle or as_name(tmux_session or (pane or {}).get("session") or "", "default")
        if pane is None or pane_id is None or bridge is None:
            note = "no_pane" if not pane_id else "no_bridge" if bridge is None else "pane_not_found"
            return await self._without_pane(name, circle, agent_pid, ancestors, note)
        owner = self.panes.seat_owner(bridge.name, pane_id)
        same_name = self.hub.peer_named(name, circle)
        plan = plan_pane_seat(owner=owner, same_name=same_name, name=name, pane_id=pane_id, agent_pid=agent_pid,
                              ancestors=ancestors,
                              same_name_live=same_name is not None and self.hub.presence.connected_here(same_name))
        if plan.joined is Joined.NESTED:
            holder = owner or same_name
            assert holder is not None
            return await self._answer(Joined.NESTED, holder, "subprocess_of_pane_agent")
        link = PaneLink(bridge.name, pane_id, backend, pane["fingerprint"], self.hub.now_ms())
        if plan.joined is Joined.REUSED:
            assert owner is not None
            await self._reseat(bridge, owner, link, agent_pid)
            return await self._answer(Joined.REUSED, owner)
        peer, token, undo = await self.hub.lifecycle.bind_pane(plan.name, circle, link, agent_pid)
        try:
            await self.panes.attach(bridge, peer, token)
        except HubError as exc:
            await self.panes.detach_quietly(bridge, peer.peer_id, "link_undone")
            await undo()
            raise HubError(ErrorCode.TRANSPORT_FAILED, f"the pane transport for {pane_id} did not come up, so the "
                           f"session was not linked: {exc.message}", {"pane_id": pane_id, "cause": exc.code.value}) from None
        return await self._answer(Joined.LINKED, peer)

    async def _reseat(self, bridge: BridgeLink, peer: PeerRecord, link: PaneLink, agent_pid: int) -> None:
        """The pane's own peer again: unchanged if its transport is live for this very agent;
        otherwise its link takes the pane as it is now and the transport (re)starts."""
        assert peer.pane is not None
        if (peer.agent_pid == agent_pid and self.hub.presence.connected_here(peer)
                and peer.pane.fingerprint == link.fingerprint):
            return
        peer, token = await self.hub.lifecycle.reissue_token(peer, pane=link, agent_pid=agent_pid)
        try:
            await self.panes.attach(bridge, peer, token)
        except HubError as exc:
            self.hub.presence.note(peer, exc.code.value)
            raise HubError(ErrorCode.TRANSPORT_FAILED, f"the pane transport of {peer.address} did not come back: "
                           f"{exc.message}", {"pane_id": link.pane_id, "cause": exc.code.value}) from None

    async def _without_pane(self, name: str, circle: str, agent_pid: int, ancestors: list[int], note: str) -> SessionJoined:
        same_name = self.hub.peer_named(name, circle)
        if is_nested(same_name, agent_pid, ancestors):
            assert same_name is not None
            return await self._answer(Joined.NESTED, same_name, "subprocess_of_session_agent")
        peer = await self.hub.lifecycle.register_agent(name, circle, agent_pid, note)
        return await self._answer(Joined.REGISTERED, peer, note)

    async def _answer(self, joined: Joined, peer: PeerRecord, note: str = "") -> SessionJoined:
        """Who the session is. A session that is its peer (not nested) gets the credential its
        hooks, shell and MCP server act with from now on; the previous session's stops working."""
        session_token = ""
        if joined is not Joined.NESTED:
            peer, session_token = await self.hub.lifecycle.issue_session_token(peer)
        if joined is Joined.REGISTERED:
            peer = self.hub.presence.set(peer, ONLINE)   # live, reading its inbox (hooks, MCP tools)
        online = [p for p in await self.hub.list_peers()
                  if p.status != OFFLINE and p.peer_id != peer.peer_id and p.role != BRIDGE]
        return SessionJoined(joined=joined.value, peer=await self.hub.peer_view(peer),
                             transport="connected" if self.hub.presence.connected_here(peer) else "none",
                             online=online[:MAX_LISTED_ONLINE], note=note, session_token=session_token)

    async def presence(self, sender: Sender, peer: PeerRecord, status: str, reason: str | None) -> PeerView:
        """`online`, `busy`, `awaiting_input` for a connected peer; `offline`: the session ended."""
        require_self_or_person(sender, peer, "change its presence")
        if status == OFFLINE:
            await self.end(peer, reason or "session_ended")
        else:
            self.hub.presence.set(peer, status)
        return await self.hub.peer_view(peer)

    async def end(self, peer: PeerRecord, reason: str) -> None:
        """Stop the pane transport (the bridge sends `bye` with the reason); the link, id and
        inbox stay, so the next session in that pane is the same peer."""
        bridge = self.panes.bridges.get(peer.pane.bridge) if peer.pane else None
        if bridge is not None:
            await self.panes.detach_quietly(bridge, peer.peer_id, reason)
        await self.hub.lifecycle.revoke_session_token(peer)
        await self.hub.lifecycle.end_session(peer, reason)
        await self.questions.abandon_for(peer.peer_id, reason)
        await self.policies.drop_session(peer.peer_id)

    async def take_inbox(self, sender: Sender, peer: PeerRecord, limit: int) -> InboxTaken:
        require_self_or_person(sender, peer, "take its messages")
        return await self.hub.inboxes.take(peer, limit)

    async def wait_for_inbox(self, sender: Sender, peer: PeerRecord, timeout_s: float) -> None:
        """Until the peer's inbox holds something, or `timeout_s`; takes nothing."""
        require_self_or_person(sender, peer, "take its messages")
        await self.hub.inboxes.wait(peer, timeout_s)
