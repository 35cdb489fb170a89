"""What idle peers cost: the CPU a hub (and its store) spends while many peers are connected
and nobody sends anything.

    python -m bench.idle [--peers 8000] [--seconds 30] [--runs 3] [--heartbeat 20] [--baseline <commit>]

A fresh hub on its embedded store (loopback only) takes `--peers` connections, each a peer
that said hello and then stays quiet (answering the hub's keepalive pings, as any client
does; the hub pings each every `--heartbeat` seconds, by default the hub's own default). Once
all are connected, the hub's and the store's CPU time are read over `--seconds`; the result is
the share of one core per 1,000 peers, median over `--runs`. The bare websockets relay
(bench/relay.py), pinging at the same interval, is measured in the same runs, alternating:
what any WebSocket server pays to know its peers are alive. With `--baseline`, an earlier
commit's hub (checked out with `git worktree`) is measured too. Section `idle-cost` of
bench/RESULTS.md is replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from bench.run import (
    ROOT,
    Target,
    checked_out,
    cpu_seconds,
    head_commit,
    open_peer,
    start_hub,
    start_relay,
    write_section,
)
from hub.core.settings import Settings

CONNECTS_IN_FLIGHT = 100
DEFAULT_HEARTBEAT_S = next(f.default for f in fields(Settings) if f.name == "heartbeat_s")
RELAY = "relay"


async def idle_cost(target: Target, peers: int, seconds: float) -> dict[str, float]:
    server, store = target.procs()
    sockets = []
    room = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

    async def one(i: int) -> None:
        async with room:
            sockets.append(await open_peer(target, f"idle-{i}"))

    try:
        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(peers))), 600)
        await asyncio.sleep(2.0)   # the hellos' own writes and events settle first
        hub0, store0, t0 = cpu_seconds(server), cpu_seconds(store), time.monotonic()
        await asyncio.sleep(seconds)
        hub1, store1, t1 = cpu_seconds(server), cpu_seconds(store), time.monotonic()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    per_thousand = 1000 / peers
    return {"hub_pct": (hub1 - hub0) / (t1 - t0) * 100 * per_thousand,
            "store_pct": (store1 - store0) / (t1 - t0) * 100 * per_thousand}


def start(name: str, trees: dict[str, Path], args: argparse.Namespace) -> Target:
    if name == RELAY:
        return start_relay(args.heartbeat)
    return start_hub(["--no-bridge", "--limit", f"max_connections={args.peers + 100}",
                      "--heartbeat", f"{args.heartbeat:g}"], tree=trees[name])


async def measure(trees: dict[str, Path], args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    names = [*trees, RELAY]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for run in range(args.runs):
        for name in (names if run % 2 == 0 else names[::-1]):
            target = start(name, trees, args)
            try:
                results[name].append(await idle_cost(target, args.peers, args.seconds))
            finally:
                target.stop()
            print(f"run {run + 1}/{args.runs} {name}: {results[name][-1]}", flush=True)
    return results


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, labels: dict[str, str]) -> str:
    rows = []
    for name, runs in results.items():
        server = statistics.median(r["hub_pct"] for r in runs)
        store = "-" if name == RELAY else f"{statistics.median(r['store_pct'] for r in runs):.2f}%"
        rows.append(f"| {labels[name]} | {server:.2f}% | {store} |")
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (f"python -m bench.idle --peers {args.peers} --seconds {args.seconds:g} --runs {args.runs} "
               f"--heartbeat {args.heartbeat:g}")
    if args.baseline:
        command += f" --baseline {args.baseline}"
    return (f"<!-- idle-cost -->\n## What idle peers cost\n\nMeasured {now} by `{command}`: {args.peers:,} peers "
            f"connected and quiet, pinged every {args.heartbeat:g} s, CPU time read over {args.seconds:g} s, as the share of one core per 1,000 "
            f"peers, median of {args.runs} runs. The relay pings as often and writes nothing.\n\n"
            "| server | server CPU per 1,000 idle peers | store CPU per 1,000 "
            "idle peers |\n|---|---:|---:|\n" + "\n".join(rows) + "\n<!-- /idle-cost -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT_S,
                        help=f"seconds between pings, the hub's --heartbeat and the relay's (default {DEFAULT_HEARTBEAT_S:g}, "
                             "the hub's default)")
    parser.add_argument("--baseline", help="an earlier commit to measure beside this tree")
    args = parser.parse_args()
    trees = {"after": ROOT}
    labels = {"after": f"this tree ({head_commit()})", RELAY: "bare websockets relay"}
    with contextlib.ExitStack() as stack:
        if args.baseline:
            trees = {"before": stack.enter_context(checked_out(args.baseline)), **trees}
            labels = {"before": args.baseline, **labels}
        results = asyncio.run(measure(trees, args))
    section = report(results, args, labels)
    write_section(ROOT / "bench" / "RESULTS.md", section)
    print(section)


if __name__ == "__main__":
    main()
