"""What an agent pays for being on the hub: the hooks' wall time per run, the MCP server's
start-up, and an MCP tool call's round trip.

- Hooks: `repowire hook pretooluse` (a policy allows the call), `user-prompt-submit`, `stop`
  (nothing new) and `session-start` (outside tmux), run exactly as the agent runs them (the
  command lines `repowire hooks install` writes: `python -S hub/cli/entry.py hook …`; a new
  process each, the payload on stdin). The floor is
  `python -c pass`: what any Python program pays to start. Target (issue 21): a hook in at
  most 50 ms end to end.
- MCP start-up: from starting `repowire mcp` to its answers to `initialize` and `tools/list`
  (what an agent waits for before its first turn). Target: at most 300 ms.
- MCP: `notify` through `repowire mcp` driven by the MCP SDK's client over stdio, against the
  same notify as one direct REST call (httpx, kept-alive connection) in the same run.

Median of the runs' medians; the hub runs on its embedded store, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from mcp import ClientSession, StdioServerParameters, stdio_client

from bench.run import ROOT, publish, start_hub

FLOOR = "pass"
REPOWIRE = str(Path(sys.executable).parent / "repowire")   # the console script, as hooks install writes it
LEAN = [sys.executable, "-S", str(ROOT / "hub" / "cli" / "entry.py")]   # the hooks that need only the stdlib


def _env(home: Path, agent_pid: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPOWIRE_", "TMUX"))}
    return {**env, "REPOWIRE_HOME": str(home), "REPOWIRE_AGENT_PID": str(agent_pid), "REPOWIRE_REMIND_INTERVAL": "0"}


def timed_process(argv: list[str], env: dict, stdin: bytes) -> float:
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, env=env, cwd=ROOT, capture_output=True, timeout=30, check=True)
    return (time.perf_counter() - started) * 1000


def hook_times(home: Path, count: int) -> dict[str, float]:
    env = _env(home, os.getpid())
    payload = orjson.dumps({"session_id": "bench", "cwd": str(ROOT), "hook_event_name": "x"})
    tool_call = orjson.dumps({"session_id": "bench", "cwd": str(ROOT), "hook_event_name": "PreToolUse",
                              "tool_name": "Read", "tool_input": {"file_path": "README.md"}})
    lean = [*LEAN, "hook"]   # exactly the command lines `repowire hooks install` writes
    timed_process([*lean, "session-start"], env, payload)   # registers the session the others use
    samples: dict[str, list[float]] = {"floor": [], "pretooluse": [], "user-prompt-submit": [], "stop": [],
                                       "session-start": []}
    for index in range(count):
        samples["floor"].append(timed_process([sys.executable, "-c", FLOOR], env, b""))
        call = tool_call.replace(b'"PreToolUse"', b'"PreToolUse","tool_use_id":"toolu_%d"' % index)
        samples["pretooluse"].append(timed_process([*lean, "pretooluse", "--timeout", "60"], env, call))
        for event in ("user-prompt-submit", "stop"):
            samples[event].append(timed_process([*lean, event], env, payload))
        samples["session-start"].append(timed_process([*lean, "session-start"], env, payload))
    samples["mcp-start"] = [mcp_start(env) for _ in range(count)]
    return {name: statistics.median(values) for name, values in samples.items()}


def mcp_start(env: dict) -> float:
    """ms from starting `repowire mcp` to its answer to `tools/list` (after `initialize`)."""
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                 "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    started = time.perf_counter()
    server = subprocess.Popen([REPOWIRE, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    server.stdin.flush()
    answers = [orjson.loads(server.stdout.readline()) for _ in range(2)]
    elapsed = (time.perf_counter() - started) * 1000
    server.stdin.close()
    server.wait(10)
    assert answers[1]["result"]["tools"], answers
    return elapsed


async def mcp_times(home: Path, url: str, token: str, count: int) -> dict[str, float]:
    params = StdioServerParameters(command=REPOWIRE, args=["mcp"], env=_env(home, os.getpid()))
    session_token = orjson.loads((home / "sessions" / f"{os.getpid()}.json").read_bytes())["token"]
    mcp_ms, rest_ms = [], []
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        http = await stack.enter_async_context(httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {session_token}"}))
        for index in range(count):
            started = time.perf_counter()
            result = await session.call_tool("notify", {"to": "sink", "text": f"m{index}"})
            mcp_ms.append((time.perf_counter() - started) * 1000)
            assert not result.is_error, result.content
            started = time.perf_counter()
            response = await http.post("/messages", json={"to": "sink", "text": f"r{index}"})
            rest_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
    return {"mcp": statistics.median(mcp_ms), "rest": statistics.median(rest_ms)}


def one_run(hooks: int, calls: int) -> dict[str, float]:
    hub = start_hub()
    try:
        assert hub.home is not None and hub.token is not None
        url = hub.url.replace("ws://", "http://").removesuffix("/ws")
        httpx.post(f"{url}/sessions", headers={"Authorization": f"Bearer {hub.token}"},
                   json={"backend": "other", "cwd": "/x", "agent_pid": 1, "name": "sink"}).raise_for_status()
        httpx.post(f"{url}/policies", headers={"Authorization": f"Bearer {hub.token}"},
                   json={"action": "allow", "tool": "Read"}).raise_for_status()
        results = hook_times(hub.home, hooks)
        results.update(asyncio.run(mcp_times(hub.home, url, hub.token, calls)))
        return results
    finally:
        hub.stop()


def report(runs: list[dict[str, float]], args) -> str:
    def med(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [("`hook pretooluse`, a policy allows (the question asked and decided, the decision printed)",
             med("pretooluse")),
            ("`hook user-prompt-submit` (presence)", med("user-prompt-submit")),
            ("`hook stop`, nothing new, outside tmux (presence, take, asks: 3 calls; a pane agent makes 2)", med("stop")),
            ("`hook session-start`, outside tmux (register, context)", med("session-start")),
            ("`repowire mcp` start-up: started to `tools/list` answered", med("mcp-start"))]
    lines = ["<!-- sessions -->", "## Agent sessions: hooks and MCP tools", "",
             f"Measured {when} by `python -m bench.sessions --runs {args.runs} --hooks {args.hooks} --calls "
             f"{args.calls}`. Median of {args.runs} runs' medians. Each hook is a new process, as the agent runs it; "
             f"the floor is `python -c {FLOOR}`, what any Python program pays to start. Targets: a hook in at most 50 ms, "
             "the MCP server ready in at most 300 ms.", "",
             "| measure | ms | over the floor (ms) |", "|---|---:|---:|",
             f"| floor: `python -c pass` | {med('floor'):.1f} | — |"]
    lines += [f"| {name} | {value:.1f} | {value - med('floor'):.1f} |" for name, value in rows]
    lines += ["", "| one notify | ms |", "|---|---:|",
              f"| through `repowire mcp` (MCP SDK client → stdio → REST) | {med('mcp'):.2f} |",
              f"| the same REST call directly (httpx, kept alive) | {med('rest'):.2f} |", "<!-- /sessions -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hooks", type=int, default=15, help="runs of each hook per run")
    parser.add_argument("--calls", type=int, default=200, help="notify calls each way per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report([one_run(args.hooks, args.calls) for _ in range(args.runs)], args))


if __name__ == "__main__":
    main()
