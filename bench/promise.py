"""What the promises cost, and what the hub costs beyond them (issue 27, How point 3).

    python -m bench.promise [--runs 5] [--pairs 8] [--messages 500] [--asks 500]

Four servers, fresh processes each run, the order turning from run to run, loopback only:
- the hub on its embedded store;
- the ask-keeping relay (`bench/relay.py --durable --asks`): the durable relay below that also
  keeps, on one node, what an ask promises across a restart: each inbox entry's id is its seq
  (promise 2), an ask's record with its deadline and its place in its asker's open-asks index
  are written with it and its close with the reply (promises 3 and 10), and a passed deadline
  closes it as expired;
- the durable relay (`bench/relay.py --durable`): the bare relay that writes each notify, ask
  and reply to the recipient's inbox in its own embedded store, and waits for the write,
  before it delivers or acknowledges it, with its trace in the same packet: the least work
  that keeps promises 1 (accepted means durable) and 3 (every message has a trace), with no
  scripts, seq from the store, identity, limits or ask records;
- the bare relay, which writes nothing: the yardstick of the issue's targets.

Measured in the two shapes whose targets are not met: the latency-bound notify (window 1,
receipts on; `pairs` senders, `messages` each) and the ask round trip at concurrency 1 (`asks`).
The table goes to bench/RESULTS.md, section `promise-cost`: the hub over the relay is the
target's ratio; each relay that keeps promises, over the bare relay, is what those promises
cost at the least; the hub over the ask-keeping relay is what the hub spends beyond them
(frame validation, rate limits, the scripts that keep its writes right when several nodes
share the store, dashboards' events, metrics).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bench.run import (
    ROOT,
    Target,
    alternating,
    ask_round_trips,
    head_commit,
    median,
    publish,
    start_hub,
    start_relay,
    throughput,
)

NAMES = ("hub", "ask-keeping relay", "durable relay", "relay")


def start(name: str) -> Target:
    return start_hub() if name == "hub" else start_relay(durable=name != "relay", asks=name == "ask-keeping relay")


async def bench(args) -> dict[str, dict[str, list]]:
    async def measure(name: str, target: Target, run: int) -> dict[str, dict]:
        await ask_round_trips(target, 10_000 + run, 1, 100)   # warm up: connections, scripts, caches
        return {"tp1": await throughput(target, run, args.pairs, args.messages, 1),
                "ask1": await ask_round_trips(target, run, 1, args.asks)}
    return await alternating(args.runs, start, measure, NAMES)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def report(results: dict[str, dict[str, list]], args) -> str:
    rows, verdicts = [], []
    shapes = (("CPU per notify, window 1 (µs)", "tp1", "cpu_us_per_msg", ".1f", 1.5),
              ("store CPU per notify, window 1 (µs)", "tp1", "store_cpu_us_per_msg", ".1f", None),
              ("notify latency p50, window 1 (ms)", "tp1", "p50_ms", ".2f", None),
              ("ask round trip p50, concurrency 1 (ms)", "ask1", "p50_ms", ".2f", 2.0),
              ("CPU per ask, concurrency 1 (ms)", "ask1", "cpu_ms_per_ask", ".3f", None),
              ("store CPU per ask, concurrency 1 (ms)", "ask1", "store_ms_per_ask", ".3f", None))
    for label, part, key, fmt, target in shapes:
        hub, asks, durable, relay = (median(results[name][part], key) for name in NAMES)
        rows.append(f"| {label} | {hub:{fmt}} | {asks:{fmt}} | {durable:{fmt}} | {relay:{fmt}} | {ratio(hub, relay)} | "
                    f"{ratio(asks, relay)} | {ratio(durable, relay)} | {ratio(hub, asks)} |")
        if target is not None:
            floor = asks / relay
            verdicts.append(
                f"- {label}, target {target:g}x the relay: the durable relay takes {durable / relay:.2f}x and the "
                f"ask-keeping relay {floor:.2f}x, "
                + ("more than the target: it cannot be met while they are kept."
                   if floor > target else
                   f"which leaves the hub {target / floor:.2f}x the ask-keeping relay for all else; it spends "
                   f"{hub / asks:.2f}x."))
    per_run = []
    for part, key, unit in (("tp1", "cpu_us_per_msg", "µs"), ("ask1", "p50_ms", "ms")):
        runs = zip(*(results[name][part] for name in NAMES))
        per_run.append(f"- {part} ({key}, {unit}, {' / '.join(NAMES)}): " + ", ".join(
            "/".join(f"{row[key]:.3g}" for row in four) for four in runs))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "<!-- promise-cost -->",
        "## What the promises cost (issue 27, How point 3)",
        "",
        f"Measured {now} on {head_commit()} by `python -m bench.promise --runs {args.runs} --pairs {args.pairs} "
        f"--messages {args.messages} --asks {args.asks}`. Median of {args.runs} runs; the four servers' order "
        "turns from run to run. The *durable relay* (`bench/relay.py --durable`) is the bare relay keeping "
        "promises 1 and 3 in the least work it can: each notify, ask and reply is appended to the recipient's "
        "inbox in its own embedded store (one `XADD`, awaited) before it is delivered or acknowledged, with its "
        "trace started in the same packet; a receipt deletes the entry and appends its stage, lingering as the "
        "hub's writes do. The *ask-keeping relay* (`--durable --asks`) also keeps, on one node, what an ask "
        "promises across a restart: entries are stored under their seq, an ask's record, deadline and place in "
        "its asker's open-asks index are written with it, and its close with the reply. Neither runs a script "
        "or checks identity. CPU is the server process's; its store's is on its own row.",
        "",
        "| measure | hub | ask-keeping relay | durable relay | relay | hub / relay | ask-keeping / relay "
        "| durable / relay | hub / ask-keeping |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        *verdicts,
        "",
        "Run by run:",
        *per_run,
        "<!-- /promise-cost -->",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--messages", type=int, default=500, help="notifies per sender at window 1")
    parser.add_argument("--asks", type=int, default=500, help="asks at concurrency 1")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report(asyncio.run(bench(args)), args))


if __name__ == "__main__":
    main()
