"""`repowire mcp`: an MCP server (stdio, official MCP Python SDK) that gives an agent tools to
talk to its peers on the hub: whoami, list_peers, notify, ask, wait_for_reply, ack, answer,
inbox, wait_for_message, pending_asks. With inbox and wait_for_message an agent outside tmux
reads its messages while it works, not only when it stops.

The agent (Claude Code, Codex) starts it for its session. It acts as the agent's own peer,
with the credential the session's SessionStart hook was given (`$REPOWIRE_HOME/sessions/<agent
pid>.json`, looked up again on every call, since the server and the hook start together and
a resumed session gets a new one), or `$REPOWIRE_TOKEN` when set: whatever it sends is from
that peer, and it can do nothing the peer could not. `wait_for_reply` and `wait_for_message`
are one bounded long-poll on the hub each (at most 60 s a call), never a polling loop. Results are short JSON.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from schemas.local import TOKEN_ENV
from transports.discovery import HubAddress, find_hub
from transports.identity import session_of_process
from transports.session_files import SessionFile
from transports.session_hooks import AGENT_PID_ENV

MAX_WAIT_S = 60.0
INSTRUCTIONS = ("Tools to talk to other coding agents and people on the repowire hub. Use list_peers to see who is "
                "online, notify for a one-way message, ask to ask a peer (then wait_for_reply with its "
                "correlation_id), inbox to read your new messages, wait_for_message to wait for the next one, "
                "pending_asks to see asks waiting for your reply, and ack to reply to one.")


class HubToolError(ToolError):
    """The hub refused a call (or cannot be reached); the agent sees the code and the hub's
    sentence as the tool's error result."""


class HubTools:
    """The tools' work: one REST call each, with the agent session's own credential."""

    def __init__(self, home: str | None = None, env: dict | None = None):
        self.home = home
        self.env = dict(os.environ if env is None else env)
        self.address: HubAddress = find_hub(home)
        self._me: dict | None = None
        transport = httpx.AsyncHTTPTransport(uds=self.address.uds) if self.address.uds else None
        self.http = httpx.AsyncClient(base_url=self.address.http_url, transport=transport, timeout=MAX_WAIT_S + 10)

    def credential(self) -> tuple[str, str | None]:
        """(token, peer id when known): `$REPOWIRE_TOKEN`, else the session of the agent that
        started this server (`$REPOWIRE_AGENT_PID`, else the process tree), read again on every
        call: a resumed or cleared session gets a new credential."""
        explicit = (self.env.get(TOKEN_ENV) or "").strip()
        if explicit:
            return explicit, None
        pid = self.env.get(AGENT_PID_ENV, "")
        session = SessionFile.of_agent(self.home, int(pid)) if pid.isdigit() else session_of_process(self.home)[0]
        if session is None or not session.token:
            raise HubToolError("this session is not on the hub: its SessionStart hook has not registered it "
                               "(run `repowire hooks install` and start a new session, or set REPOWIRE_TOKEN)")
        return session.token, str(session.data["peer_id"])

    async def peer(self) -> str:
        """This agent's peer id."""
        _, peer_id = self.credential()
        if peer_id is None:
            me = await self.call("GET", "/whoami")
            if not me.get("peer"):
                raise HubToolError("REPOWIRE_TOKEN is the hub token: the MCP tools act as an agent, so give them "
                                   "an agent's token")
            peer_id = str(me["peer"]["peer_id"])
        return peer_id

    async def call(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> dict:
        token, _ = self.credential()
        headers = {"Authorization": f"Bearer {token}"}
        try:
            response = await self.http.request(method, path, json=body, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise HubToolError(f"the hub at {self.address.http_url} did not answer ({exc.__class__.__name__})") from None
        data = response.json() if response.content else {}
        if response.status_code >= 300:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise HubToolError(f"{error.get('code', response.status_code)}: {error.get('message', '')}".rstrip(": "))
        return data

    async def close(self) -> None:
        await self.http.aclose()


def _brief(peer: dict) -> dict:
    return {"name": peer["name"], "circle": peer["circle"], "status": peer["status"], "role": peer["role"],
            "peer_id": peer["peer_id"]}


def _ask_brief(ask: dict) -> dict:
    brief = {"correlation_id": ask["correlation_id"], "state": ask["state"], "text": ask.get("text", ""),
             "from": f"{ask['from']['name']}@{ask['from']['circle']}", "to": f"{ask['to']['name']}@{ask['to']['circle']}",
             "deadline": ask.get("deadline")}
    if ask.get("question"):
        brief["question"] = ask["question"]
    if ask.get("result"):
        brief["result"] = ask["result"]
    return brief


def _message(delivery: dict) -> dict:
    """A delivery as the agent reads it: who, what, and for an ask how to reply."""
    sender = delivery.get("from") or {}
    message = {"kind": delivery.get("kind", "notify"), "from": f"{sender.get('name', '?')}@{sender.get('circle', '?')}",
               "text": delivery.get("text", "")}
    for key in ("correlation_id", "question", "option_id", "outcome", "reason", "attachments"):
        if delivery.get(key):
            message[key] = delivery[key]
    if message["kind"] == "ask":
        message["reply_with"] = "the ack tool, with this correlation_id and your answer as text"
    return message


async def _take(tools: HubTools, how: str, body: dict) -> dict:
    try:
        taken = await tools.call("POST", f"/peers/{await tools.peer()}/inbox/{how}", body)
    except HubToolError as exc:
        if str(exc).startswith("conflict"):   # a pane transport types them into the agent's terminal
            return {"messages": [], "remaining": 0, "note": "your messages are typed into your terminal as they come"}
        raise
    return {"messages": [_message(d) for d in taken["deliveries"]], "remaining": taken["remaining"]}


def build_server(tools: HubTools) -> MCPServer:
    server = MCPServer("repowire", instructions=INSTRUCTIONS)

    @server.tool()
    async def whoami() -> dict:
        """Who this agent is on the repowire hub: name, circle, peer id and presence."""
        peer = await tools.call("GET", f"/peers/{await tools.peer()}")
        return {**_brief(peer), "pending": peer.get("pending", 0), "hub": tools.address.http_url}

    @server.tool()
    async def list_peers(circle: str | None = None,
                         status: Literal["online", "busy", "awaiting_input", "offline"] | None = None) -> dict:
        """The peers on the hub (agents and people), optionally of one circle or status."""
        params = {k: v for k, v in (("circle", circle), ("status", status)) if v}
        listed = await tools.call("GET", "/peers", params=params)
        return {"peers": [_brief(p) for p in listed["peers"]]}

    @server.tool()
    async def notify(to: str, text: str) -> dict:
        """Send a one-way message to a peer (name, name@circle or peer id) or a circle (*@circle)."""
        sent = await tools.call("POST", "/messages", {"to": to, "text": text})
        return {"message_id": sent["message_id"], "state": sent["state"]}

    @server.tool()
    async def ask(to: str, text: str, timeout_s: float | None = None, queue_if_offline: bool = False) -> dict:
        """Ask a peer; returns the correlation_id to pass to wait_for_reply. The ask expires after
        timeout_s (hub default 300). queue_if_offline waits for an offline peer instead of failing."""
        body: dict = {"to": to, "text": text, "queue_if_offline": queue_if_offline}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        sent = await tools.call("POST", "/ask", body)
        return {"correlation_id": sent["correlation_id"], "state": sent["state"], "deadline": sent["deadline"]}

    @server.tool()
    async def wait_for_reply(correlation_id: str, timeout_s: float = 30.0) -> dict:
        """Wait (at most timeout_s, up to 60) for the reply to an ask you sent. state `pending`
        means no reply yet: call again, or carry on and check later."""
        bounded = min(max(timeout_s, 0.0), MAX_WAIT_S)
        return _ask_brief(await tools.call("POST", f"/asks/{correlation_id}/wait", {"timeout_s": bounded}))

    @server.tool()
    async def ack(correlation_id: str, text: str | None = None) -> dict:
        """Reply to an ask you were asked (with text), or just close it (without)."""
        body: dict = {"correlation_id": correlation_id, **({"text": text} if text else {})}
        closed = await tools.call("POST", "/ack", body)
        return {"correlation_id": closed["correlation_id"], "ask_state": closed["ask_state"]}

    @server.tool()
    async def answer(correlation_id: str, option: str | None = None, text: str | None = None,
                     outcome: Literal["accepted", "declined", "dismissed"] | None = None) -> dict:
        """Answer an ask's structured question: the chosen option id, or text, or an outcome."""
        body: dict = {"correlation_id": correlation_id}
        body.update({k: v for k, v in (("option_id", option), ("text", text), ("outcome", outcome)) if v})
        closed = await tools.call("POST", "/answer", body)
        return {"correlation_id": closed["correlation_id"], "ask_state": closed["ask_state"]}

    @server.tool()
    async def inbox(limit: int = 20) -> dict:
        """Your unread messages (notifies, asks, replies), oldest first; each is marked read and
        shown once. Reply to an ask with ack. `remaining`: how many more are waiting."""
        return await _take(tools, "take", {"limit": min(max(limit, 1), 100)})

    @server.tool()
    async def wait_for_message(timeout_s: float = 30.0) -> dict:
        """Wait (at most timeout_s, up to 60) for your next message and return it, marked read;
        an empty list when none came. Returns at once if messages are already waiting."""
        return await _take(tools, "wait", {"timeout_s": min(max(timeout_s, 0.0), MAX_WAIT_S)})

    @server.tool()
    async def pending_asks(direction: Literal["inbound", "outbound", "both"] = "inbound") -> dict:
        """Open asks: inbound ones wait for your reply (ack), outbound ones for someone else's."""
        listed = await tools.call("GET", "/asks/pending", params={"peer": await tools.peer(), "direction": direction})
        return {"asks": [_ask_brief(a) for a in listed["asks"]], "total": listed["total"]}

    return server


def run(home: str | None = None) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one line per call would flood the agent's MCP log
    tools = HubTools(home)
    build_server(tools).run("stdio")
    return 0
