"""Tool-permission question benchmark: the hub against the bare relay, same frames, same run.

    python -m bench.questions [--runs 3] [--questions 300] [--hooks 20] [--out bench/RESULTS.md]

Per run and target (fresh processes, loopback only), one asker sends `ask_blocking` frames one
at a time and waits for each `decision`:
- policy-answered: on the hub a policy rule allows the tool (rules are read from the store,
  the question and its trace and audit entry are written before the decision); the relay
  answers at once.
- human-answered: a person client (role person) answers each `question` frame with `decide`
  as soon as it arrives.
For the hub alone it also measures the REST route the hook uses (POST /questions/ask-blocking,
policy-answered, one keep-alive connection) and the real hook program end to end (process
start, stdin, the REST call, the printed decision).
Results go to the `questions` section of bench/RESULTS.md; figures are medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect

from bench.run import ROOT, STEP_TIMEOUT_S, Target, alternating, percentiles, publish, start_hub, start_relay
from hub.cli.claude_settings import hook_command

SECTION_START, SECTION_END = "<!-- questions -->", "<!-- /questions -->"


async def open_client(target: Target, name: str, role: str = "agent"):
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    ws = await connect(target.url, additional_headers=headers, compression=None, ping_interval=None, open_timeout=30)
    await ws.send(orjson.dumps({"type": "hello", "name": name, "role": role}).decode())
    welcome = orjson.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


async def round_trips(target: Target, run: int, count: int, with_person: bool) -> dict:
    asker = await open_client(target, f"asker{run}{with_person}")
    person = await open_client(target, f"ana{run}{with_person}", "person") if with_person else None

    async def answer() -> None:
        assert person is not None
        for n in range(count):
            while True:
                frame = orjson.loads(await person.recv())
                if frame["type"] == "question":
                    break
            await person.send(orjson.dumps({"type": "decide", "id": f"d{n}", "correlation_id": frame["correlation_id"],
                                            "decision": "allow"}).decode())

    async def ask() -> list[int]:
        samples = []
        for n in range(count):
            started = time.perf_counter_ns()
            await asker.send(orjson.dumps({"type": "ask_blocking", "id": f"q{n}", "tool_name": "Bash",
                                           "tool_input": {"command": f"npm test -- --shard {n}"},
                                           "tool_use_id": f"toolu_{run}_{with_person}_{n}", "hook_timeout_s": 60,
                                           }).decode())
            while True:
                frame = orjson.loads(await asker.recv())
                if frame["type"] == "decision" and frame["ref"] == f"q{n}":
                    assert frame["decision"] == "allow", frame
                    break
            samples.append(time.perf_counter_ns() - started)
        return samples

    tasks = [ask(), answer()] if with_person else [ask()]
    samples = (await asyncio.wait_for(asyncio.gather(*tasks), STEP_TIMEOUT_S))[0]
    await asker.close()
    if person is not None:
        await person.close()
    return percentiles(samples)


def rest_round_trips(target: Target, run: int, count: int) -> dict:
    base = target.url.replace("ws://", "http://").removesuffix("/ws")
    samples = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target.token}"}, timeout=30) as client:
        for n in range(count):
            started = time.perf_counter_ns()
            decided = client.post("/questions/ask-blocking", json={
                "tool_name": "Bash", "tool_input": {"command": f"npm test -- --shard {n}"},
                "tool_use_id": f"toolu_rest_{run}_{n}", "hook_timeout_s": 60}).json()
            samples.append(time.perf_counter_ns() - started)
            assert decided["decision"] == "allow", decided
    return percentiles(samples)


def hook_runs(target: Target, run: int, count: int) -> dict:
    argv = shlex.split(hook_command(60))
    env = {**os.environ, "REPOWIRE_HOME": str(target.home)}
    samples = []
    for n in range(count):
        event = orjson.dumps({"session_id": "bench", "cwd": str(ROOT), "hook_event_name": "PreToolUse",
                              "tool_name": "Bash", "tool_input": {"command": "npm test"},
                              "tool_use_id": f"toolu_hook_{run}_{n}"})
        started = time.perf_counter_ns()
        done = subprocess.run(argv, input=event, capture_output=True, env=env, timeout=60)
        samples.append(time.perf_counter_ns() - started)
        assert done.returncode == 0, done.stdout
    return percentiles(samples)


async def bench(args) -> dict:
    async def measure(name: str, target: Target, run: int) -> dict[str, dict]:
        rows = {}
        if name == "hub":
            base = target.url.replace("ws://", "http://").removesuffix("/ws")
            httpx.post(f"{base}/policies", headers={"Authorization": f"Bearer {target.token}"},
                       json={"action": "allow", "tool": "Bash", "input": {"command": "npm test*"}})
        rows["policy"] = await round_trips(target, run, args.questions, with_person=False)
        if name == "hub":
            rows["rest"] = await asyncio.to_thread(rest_round_trips, target, run, args.questions)
            rows["hook"] = await asyncio.to_thread(hook_runs, target, run, args.hooks)
            httpx.delete(f"{base}/policies/{_only_policy(base, target.token)}",
                         headers={"Authorization": f"Bearer {target.token}"})
        rows["human"] = await round_trips(target, run, args.questions, with_person=True)
        return rows
    return await alternating(args.runs, lambda name: start_hub() if name == "hub" else start_relay(), measure)


def _only_policy(base: str, token: str) -> str:
    (policy,) = httpx.get(f"{base}/policies", headers={"Authorization": f"Bearer {token}"}).json()["policies"]
    return policy["id"]


def report(results: dict, args) -> str:
    hub, relay = results["hub"], results["relay"]

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rows = []
    for label, part in (("policy-answered question, socket", "policy"), ("human-answered question, socket", "human")):
        for key in ("p50_ms", "p99_ms"):
            h, r = med(hub[part], key), med(relay[part], key)
            rows.append(f"| {label} {key[:3]} (ms) | {h:.2f} | {r:.2f} | {h / r:.2f}x |")
    for label, part in (("policy-answered question, REST (what the hook calls)", "rest"),
                        ("the hook program end to end, policy-answered", "hook")):
        for key in ("p50_ms", "p99_ms"):
            rows.append(f"| {label} {key[:3]} (ms) | {med(hub[part], key):.2f} | - | - |")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        SECTION_START,
        "## Tool-permission questions",
        "",
        f"Measured {when} by `python -m bench.questions --runs {args.runs} --questions {args.questions} "
        f"--hooks {args.hooks}`. Median of {args.runs} runs; one question at a time. The relay forwards each "
        "question to the person and the answer back, or decides at once when no person is connected; the hub "
        "reads the policy rules, writes the question, its trace and its audit entry to the store before it "
        "answers, and the person's answer likewise.",
        "",
        "| measure | hub | relay | hub / relay |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "The hook program's time is mostly the Python interpreter starting (the CLI imports only what the "
        "hook needs).",
        SECTION_END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--questions", type=int, default=300, help="questions per measure and run")
    parser.add_argument("--hooks", type=int, default=20, help="hook program runs per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report(asyncio.run(bench(args)), args))


if __name__ == "__main__":
    main()
