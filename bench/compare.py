"""Before and after: this tree's hub against the hub of an earlier commit, same load, same run.

    python -m bench.compare --baseline f7ce722 [--runs 3] [--pairs 8] [--messages 2000] [--idle 1000]

The earlier commit is checked out with `git worktree` into a temporary folder (removed after)
and its hub started from there, on its own embedded store, exactly as this tree's is. Per run,
in alternating order, each hub is measured fresh (loopback only):
- hub CPU per delivered notify, throughput shape (window 32) and latency-bound (window 1);
- ask round trip p50 at concurrency 1;
- resident memory per idle peer.
Each figure is the median over runs; the section `typed-core` of bench/RESULTS.md is replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.run import (
    ROOT,
    Target,
    ask_round_trips,
    checked_out,
    head_commit,
    idle_peers,
    publish,
    start_hub,
    throughput,
)

SECTION = "typed-core"


async def measure(target: Target, run: int, args: argparse.Namespace) -> dict[str, float]:
    tp = await throughput(target, run, args.pairs, args.messages, 32)
    latency = await throughput(target, 1000 + run, args.pairs, args.messages // 4, 1)
    ask = await ask_round_trips(target, run, 1, args.asks)
    idle = await idle_peers(target, run, args.idle)
    return {"cpu_tp": tp["cpu_us_per_msg"], "cpu_latency": latency["cpu_us_per_msg"],
            "store_cpu_tp": tp["store_cpu_us_per_msg"], "msgs_per_s": tp["msgs_per_s"],
            "ask_p50": ask["p50_ms"], "kib_per_peer": idle["kib_per_peer"]}


async def compare(args: argparse.Namespace, baseline_tree: Path) -> dict[str, list[dict[str, float]]]:
    trees = {"before": baseline_tree, "after": ROOT}
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for run in range(args.runs):
        for name in (("before", "after") if run % 2 == 0 else ("after", "before")):
            target = start_hub(tree=trees[name])
            try:
                results[name].append(await measure(target, run, args))
            finally:
                target.stop()
            print(f"run {run + 1}/{args.runs} {name}: {results[name][-1]}", flush=True)
    return results


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, head: str) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(row[key] for row in results[name])

    rows = []
    for label, key, fmt in (("hub CPU per delivered notify, window 32 (µs)", "cpu_tp", ".1f"),
                            ("hub CPU per delivered notify, window 1 (µs)", "cpu_latency", ".1f"),
                            ("store CPU per notify, window 32 (µs)", "store_cpu_tp", ".1f"),
                            ("notify throughput (delivered msg/s)", "msgs_per_s", ",.0f"),
                            ("ask round trip p50, concurrency 1 (ms)", "ask_p50", ".2f"),
                            ("memory per idle peer (KiB, hub RSS)", "kib_per_peer", ".1f")):
        before, after = median("before", key), median("after", key)
        rows.append(f"| {label} | {format(before, fmt)} | {format(after, fmt)} | {after / before:.2f} |")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f"<!-- {SECTION} -->",
        "## The typed core (issue 24): before and after",
        "",
        f"Measured {when} by `python -m bench.compare --baseline {args.baseline} --runs {args.runs} "
        f"--pairs {args.pairs} --messages {args.messages} --asks {args.asks} --idle {args.idle}`: the hub of "
        f"{args.baseline} (before) and of {head} (after), fresh processes each run, alternating order, median of "
        f"{args.runs} runs. Window 1 sends a quarter as many notifies per sender, one in flight at a time.",
        "",
        "| measure | before | after | after / before |",
        "|---|---:|---:|---:|",
        *rows,
        f"<!-- /{SECTION} -->",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with (before)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000, help="per sender, window 32")
    parser.add_argument("--asks", type=int, default=500, help="asks at concurrency 1")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    head = head_commit()
    with checked_out(args.baseline) as tree:
        results = asyncio.run(compare(args, tree))
    publish(args.out, report(results, args, head))


if __name__ == "__main__":
    main()
