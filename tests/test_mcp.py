"""`repowire mcp` driven by the MCP SDK's own client over stdio: two agents whose sessions
joined through their hooks, in real tmux panes, talk through the tools."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from contextlib import AsyncExitStack

import orjson
from mcp import ClientSession, StdioServerParameters, stdio_client

from schemas.names import tmux_bridge_name
from tests.support import eventually, start_recorder, wait_until
from tests.test_sessions import claude_payload, context_of, hook, pane_pid, received

TOOLS = {"whoami", "list_peers", "notify", "ask", "wait_for_reply", "ack", "answer", "pending_asks", "inbox",
         "wait_for_message", "job_add", "job_status", "job_list", "job_cancel"}


async def mcp_session(stack: AsyncExitStack, hub, agent_pid: int, token: str | None = None) -> ClientSession:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPOWIRE_", "TMUX"))}
    env.update({"REPOWIRE_HOME": str(hub.home), "REPOWIRE_AGENT_PID": str(agent_pid)})
    if token is not None:
        env["REPOWIRE_TOKEN"] = token
    params = StdioServerParameters(command=sys.executable, args=["-m", "hub.cli.main", "mcp"], env=env)
    read, write = await stack.enter_async_context(stdio_client(params))
    session = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


async def tool(session: ClientSession, name: str, **arguments) -> dict:
    result = await session.call_tool(name, arguments)
    assert not result.is_error, result.content
    return orjson.loads(result.content[0].text)


def test_two_agents_ask_wait_and_reply_through_the_mcp_tools(pane_hub, tmux, tmp_path):
    folders = {name: tmp_path / name for name in ("api", "web")}
    panes = {}
    for name, folder in folders.items():
        folder.mkdir()
        panes[name] = pane = start_recorder(tmux, tmp_path / f"{name}.bin", session=name)
        context_of(hook(pane_hub, "session-start", claude_payload("SessionStart", folder), agent_pid=pane_pid(pane),
                        pane=pane, tmux=tmux))

    async def exchange() -> str:
        async with AsyncExitStack() as stack:
            api = await mcp_session(stack, pane_hub, pane_pid(panes["api"]))
            web = await mcp_session(stack, pane_hub, pane_pid(panes["web"]))
            assert {t.name for t in (await api.list_tools()).tools} == TOOLS

            me = await tool(api, "whoami")
            assert (me["name"], me["circle"], me["status"]) == ("api-claude", "api", "online")
            listed = await tool(api, "list_peers", status="online")
            assert {p["name"] for p in listed["peers"]} == {"api-claude", "web-claude", tmux_bridge_name(socket.gethostname(), tmux.socket_name)}

            asked = await tool(api, "ask", to="web-claude@web", text="which port does the web app use?")
            cid = asked["correlation_id"]
            assert asked["state"] in ("delivered", "sent", "received", "injected")
            waiting = await tool(web, "pending_asks")
            assert [(a["correlation_id"], a["from"], a["text"]) for a in waiting["asks"]] == [
                (cid, "api-claude@api", "which port does the web app use?")]
            assert (await tool(api, "wait_for_reply", correlation_id=cid, timeout_s=0))["state"] == "pending"

            waiter = asyncio.create_task(tool(api, "wait_for_reply", correlation_id=cid, timeout_s=30))
            closed = await tool(web, "ack", correlation_id=cid, text="8080")
            assert closed == {"correlation_id": cid, "ask_state": "replied"}
            reply = await asyncio.wait_for(waiter, 40)
            assert (reply["state"], reply["result"]["text"]) == ("replied", "8080")
            assert (await tool(web, "pending_asks"))["asks"] == []

            sent = await tool(web, "notify", to="api-claude@api", text="deploying now")
            assert sent["state"] in ("delivered", "sent", "received", "injected")
            refused = await web.call_tool("ack", {"correlation_id": "0" * 32, "text": "x"})
            assert refused.is_error and "ask_not_found" in refused.content[0].text
            return cid

    cid = asyncio.run(exchange())
    wait_until(lambda: received(tmp_path / "web.bin", "which port does the web app use?"), 10, "the ask in web's pane")
    wait_until(lambda: received(tmp_path / "api.bin", "[notify from web-claude] «deploying now»"), 10, "the notify")
    assert pane_hub.get(f"/asks/{cid}").json()["state"] == "replied"


def test_the_mcp_server_says_when_the_session_is_not_on_the_hub(hub, tmp_path):
    async def check() -> None:
        async with AsyncExitStack() as stack:
            session = await mcp_session(stack, hub, 1)
            result = await session.call_tool("whoami", {})
            assert result.is_error and "not on the hub" in result.content[0].text

    asyncio.run(check())


def test_an_agent_hands_off_a_job_and_follows_it_through_the_mcp_tools(hub, tmp_path):
    async def check() -> None:
        async with AsyncExitStack() as stack, hub.client("lead") as lead, hub.client("reviewer") as reviewer:
            session = await mcp_session(stack, hub, 1, token=lead.token)
            added = await tool(session, "job_add", prompt="review the migration", peer="reviewer", timeout_s=60)
            assert (added["kind"], added["target"]) == ("work", "reviewer@default")
            assert added["state"] in ("queued", "running")
            ask = await reviewer.receive(15)
            assert (ask["kind"], ask["text"], ask["from"]["name"]) == ("ask", "review the migration", "lead")
            await reviewer.ack(ask["correlation_id"], "ship it")

            async def done():
                status = await tool(session, "job_status", id=added["id"])
                return status if status["state"] == "succeeded" else None
            followed = await eventually(done, 15, "the job to succeed")
            assert followed["result"] == {"summary": "ship it"}
            listed = await tool(session, "job_list")
            assert [j["id"] for j in listed["work"]] == [added["id"]] and listed["recurring"] == []
            later = await tool(session, "job_add", prompt="again tomorrow", peer="reviewer", cron="0 9 * * *")
            assert later["id"].startswith("cal-") and later["next_fire_at"].endswith("09:00:00.000Z")
            assert (await tool(session, "job_cancel", id=later["id"]))["state"] == "cancelled"
            refused = await session.call_tool("job_add", {"prompt": "x", "path": str(tmp_path), "backend": "gpt"})
            assert refused.is_error and "invalid_request" in refused.content[0].text
            other = await session.call_tool("job_status", {"id": "0" * 32})
            assert other.is_error and "job_not_found" in other.content[0].text

    asyncio.run(check())
