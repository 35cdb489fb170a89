"""Hub nodes on a Valkey cluster: many connected peers per node, traffic across nodes.

    python -m bench.cluster [--nodes 4] [--peers 5000] [--rate 400] [--seconds 20] [--runs 1]

A real cluster (3 primaries, 3 replicas, append-only, started from the embedded store's
valkey-server on loopback ports: tests/store_cluster.py) and `nodes` hub processes on it. Each
node gets `peers` idle peers (WebSocket, hello, one reader each); then `rate` notifies a second
for `seconds` go from a random peer to a random peer on another node, every delivery confirmed
by a receipt. Reported: sent, delivered, lost, send -> deliver p50/p99, each node's CPU per
message, the store's commands and CPU per message (primaries), how the commands spread over the
primaries, and memory per connected peer (hub nodes, and the store). The model in
bench/RESULTS.md is built from these numbers. Everything runs on this machine (2 cores): the
clients, the hub nodes and the six store servers share them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil
import redis

from bench.mesh import connect_many, known_to, start_mesh_node
from bench.run import ROOT, Target, cpu_seconds, percentiles, throughput, write_section
from tests.store_cluster import LocalCluster
from tests.support import paced

RESULTS = Path(__file__).with_name("RESULTS.md")
QUIET_S = 5.0   # seconds with peers connected and no traffic


def start_node(cluster: LocalCluster, folder: Path, name: str, peers: int, extra: tuple[str, ...] = ()) -> Target:
    return start_mesh_node(cluster.url, folder, name, max_connections=peers + 100, extra=extra)


def store_counts(cluster: LocalCluster) -> dict[int, dict[str, float]]:
    """Per primary: commands processed, CPU seconds, memory used."""
    counts = {}
    for server in cluster.primary_servers():
        client = redis.Redis(host="127.0.0.1", port=server.port)
        try:
            stats, cpu, memory = client.info("stats"), client.info("cpu"), client.info("memory")
            by_kind = {name.removeprefix("cmdstat_"): row["calls"] for name, row in client.info("commandstats").items()}
        finally:
            client.close()
        counts[server.port] = {"commands": stats["total_commands_processed"],
                               "cpu_s": cpu["used_cpu_user"] + cpu["used_cpu_sys"], "memory": memory["used_memory"],
                               **{f"cmd:{kind}": calls for kind, calls in by_kind.items()}}
    return counts


# ---- a client process: one node's peers ---------------------------------------------------------
# 5,000 peers per node for 4 nodes is more sockets than one process may open here (20,000), so
# each node's peers live in a process of their own, driven over its standard input and output.

async def worker(url: str, token: str, prefix: str, count: int, others: list[str], rate: float, seconds: float) -> None:
    """Connect `count` peers, then on "go" send `rate` notifies a second for `seconds` from them
    to random peers named in `others`, confirming every delivery; answers "count" with how many
    arrived, and "stop" with the send -> deliver latencies (perf_counter_ns: one clock for all
    processes of this machine)."""
    target = Target(prefix, url, None, token)   # type: ignore[arg-type]
    lines = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    started = time.monotonic()
    sockets = await connect_many(target, prefix, count)
    # The load generator's own pauses are not the hub's: 5,000 connections make a full garbage
    # collection here long enough to show as a delivery's latency. Keep what exists out of it.
    gc.freeze()
    print(f"connected {time.monotonic() - started:.2f}", flush=True)
    latencies: list[tuple[int, int]] = []   # (sent at, send -> deliver), ns
    readers = [asyncio.create_task(confirm_and_time(ws, latencies)) for ws in sockets]
    while (command := (await lines.readline()).decode().strip()) not in ("", "stop"):
        if command == "go":
            total = int(rate * seconds)
            async for n in paced(total, rate):
                await random.choice(sockets).send(orjson.dumps({
                    "type": "notify", "id": f"m{n}", "to": random.choice(others), "text": str(time.perf_counter_ns())}))
            print(f"sent {total}", flush=True)
        elif command == "count":
            print(f"received {len(latencies)}", flush=True)
    print(orjson.dumps(latencies).decode(), flush=True)
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()


async def confirm_and_time(ws, latencies: list[tuple[int, int]]) -> None:
    """Confirm every delivery; a notify's text is when it was sent (perf_counter_ns)."""
    async for raw in ws:
        frame = orjson.loads(raw)
        if frame.get("type") == "deliver":
            await ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"], "status": "received"}))
            sent = int(frame["text"])
            latencies.append((sent, time.perf_counter_ns() - sent))


class Clients:
    """The client process of one node's peers."""

    def __init__(self, node: Target, prefix: str, count: int, others: list[str], rate: float, seconds: float):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.cluster", "--worker", node.url, str(node.token), prefix, str(count),
             str(rate), str(seconds)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps(others).decode() + "\n")
        self.process.stdin.flush()

    def tell(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def answer(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a client process ended early")
        return line.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


async def one_run(args, run: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="rw-cluster-"))
    cluster = LocalCluster(folder / "store").start()
    nodes: list[Target] = []
    clients: list[Clients] = []
    try:
        nodes = [start_node(cluster, folder, f"k{i + 1}", args.peers) for i in range(args.nodes)]
        procs = [psutil.Process(n.process.pid) for n in nodes]
        rss0 = [p.memory_info().rss for p in procs]
        store0 = store_counts(cluster)
        names = [[f"r{run}k{index}-{i}" for i in range(args.peers)] for index in range(args.nodes)]
        share = args.rate / args.nodes
        started = time.monotonic()
        for index, node in enumerate(nodes):   # one node's peers at a time: each connects at full speed
            others = [name for j, side in enumerate(names) if j != index for name in side]
            clients.append(Clients(node, f"r{run}k{index}-", args.peers, others, share, args.seconds))
            clients[-1].answer()
        connect_s = time.monotonic() - started
        for index, node in enumerate(nodes):   # every node has heard of the others' last peers
            await known_to(node, [side[-1] for j, side in enumerate(names) if j != index])
        rss1 = [p.memory_info().rss for p in procs]
        store1 = store_counts(cluster)
        quiet0 = [cpu_seconds(p) for p in procs]
        await asyncio.sleep(QUIET_S)   # the idle cost of the connected peers, measured apart
        quiet1 = [cpu_seconds(p) for p in procs]
        idle_share = [(b - a) / QUIET_S for a, b in zip(quiet0, quiet1)]
        quiet_store = store_counts(cluster)
        idle_commands_per_s = sum(quiet_store[p]["commands"] - store1[p]["commands"] for p in store1) / QUIET_S
        store1 = quiet_store
        cpu0 = [cpu_seconds(p) for p in procs]
        traffic_started = time.monotonic()
        for client in clients:
            client.tell("go")
        sent = sum(int(client.answer().split()[1]) for client in clients)
        delivered, deadline = 0, time.monotonic() + 60
        while delivered < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            delivered = 0
            for client in clients:
                client.tell("count")
                delivered += int(client.answer().split()[1])
        await asyncio.sleep(1)   # the last receipts reach the store
        cpu1 = [cpu_seconds(p) for p in procs]
        traffic_s = time.monotonic() - traffic_started
        store2 = store_counts(cluster)
        timed: list[tuple[int, int]] = []
        for client in clients:
            client.tell("stop")
            timed += [tuple(pair) for pair in orjson.loads(client.answer())]
        first = min(sent_at for sent_at, _ in timed)
        latencies = [latency for _, latency in timed]
        slow: dict[str, int] = {}   # second of the run -> deliveries slower than 100 ms sent in it
        for sent_at, latency in timed:
            if latency > 100_000_000:
                second = str((sent_at - first) // 1_000_000_000)
                slow[second] = slow.get(second, 0) + 1
        commands = {port: store2[port]["commands"] - store1[port]["commands"] for port in store2}
        kinds: dict[str, float] = {}
        for port in store2:
            for key, calls in store2[port].items():
                if key.startswith("cmd:"):
                    kinds[key[4:]] = kinds.get(key[4:], 0) + (calls - store1[port].get(key, 0)) / sent
        top_kinds = dict(sorted(((k, round(v, 2)) for k, v in kinds.items() if v >= 0.05), key=lambda kv: -kv[1])[:8])
        total_peers = args.nodes * args.peers
        return {
            "nodes": args.nodes, "peers_per_node": args.peers, "connect_s": connect_s,
            "sent": sent, "delivered": len(latencies), "lost": sent - len(latencies), **percentiles(latencies or [0]),
            "hub_cpu_ms_per_msg": [(b - a) * 1000 / sent for a, b in zip(cpu0, cpu1)],
            "hub_idle_cpu_share": idle_share,
            "hub_cpu_ms_per_msg_less_idle": [((b - a) - idle * traffic_s) * 1000 / sent
                                             for a, b, idle in zip(cpu0, cpu1, idle_share)],
            "store_commands_per_msg": sum(commands.values()) / sent,
            "store_commands_by_kind_per_msg": top_kinds,
            "store_idle_commands_per_s": idle_commands_per_s,
            "store_commands_per_msg_less_idle": (sum(commands.values()) - idle_commands_per_s * traffic_s) / sent,
            "p999_ms": sorted(latencies)[int(len(latencies) * 0.999)] / 1e6 if latencies else 0,
            "max_ms": max(latencies, default=0) / 1e6, "slow_by_second": slow,
            "store_commands_share": sorted((round(c / max(1, sum(commands.values())), 3) for c in commands.values()),
                                           reverse=True),
            "store_cpu_ms_per_msg": sum(store2[p]["cpu_s"] - store1[p]["cpu_s"] for p in store2) * 1000 / sent,
            "store_bytes_per_msg": sum(store2[p]["memory"] - store1[p]["memory"] for p in store2) / sent,
            "hub_kib_per_peer": statistics.mean((b - a) / args.peers / 1024 for a, b in zip(rss0, rss1)),
            "store_kib_per_peer": sum(store1[p]["memory"] - store0[p]["memory"] for p in store1) / total_peers / 1024,
            "hub_rss_mib": [round(r / 2**20) for r in rss1],
        }
    finally:
        for client in clients:
            client.stop()
        for node in nodes:
            node.stop()
        cluster.stop()


# ---- what --replica-acks costs ------------------------------------------------------------------

async def durability(args) -> dict[int, dict]:
    """One hub node on a fresh cluster with --replica-acks 0, then 1: notifies between 8 pairs,
    one in flight per sender (each waits for `accepted`) and 32 in flight; medians of `runs`."""
    rows: dict[int, dict] = {}
    for acks in (0, 1):
        samples: dict[str, list[dict]] = {"w1": [], "w32": []}
        for run in range(args.runs):
            folder = Path(tempfile.mkdtemp(prefix="rw-acks-"))
            cluster = LocalCluster(folder / "store").start()
            node = None
            try:
                node = start_node(cluster, folder, "d1", 100, ("--replica-acks", str(acks)))
                samples["w1"].append(await throughput(node, run, 8, args.acks_messages // 4, 1))
                samples["w32"].append(await throughput(node, run + 100, 8, args.acks_messages, 32))
            finally:
                if node is not None:
                    node.stop()
                cluster.stop()
        rows[acks] = {shape: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                      for shape, runs in samples.items()}
        print(acks, orjson.dumps(rows[acks]).decode(), flush=True)
    return rows


def durability_report(rows: dict[int, dict], args) -> str:
    lines = ["<!-- cluster-durability -->",
             "## What `--replica-acks 1` costs (one hub node on a 3+3 Valkey cluster)", "",
             f"`python -m bench.cluster --durability --runs {args.runs}`: 8 sender/receiver pairs, medians of "
             f"{args.runs} runs. With one in flight per sender, each notify waits for its `accepted`, so the "
             "rate shows the added round trip; send → deliver is the receiver's view.", "",
             "| | acks 0 | acks 1 | acks 1 / acks 0 |", "|---|---:|---:|---:|"]
    for shape, label in (("w1", "one in flight"), ("w32", "32 in flight")):
        zero, one = rows[0][shape], rows[1][shape]
        lines.append(f"| {label}: notifies/s | {zero['msgs_per_s']:,.0f} | {one['msgs_per_s']:,.0f} | "
                     f"{one['msgs_per_s'] / zero['msgs_per_s']:.2f} |")
        lines.append(f"| {label}: send → deliver p50 | {zero['p50_ms']:.2f} ms | {one['p50_ms']:.2f} ms | "
                     f"{one['p50_ms'] / zero['p50_ms']:.2f} |")
        lines.append(f"| {label}: hub CPU per notify | {zero['cpu_us_per_msg']:.0f} µs | {one['cpu_us_per_msg']:.0f} µs | "
                     f"{one['cpu_us_per_msg'] / zero['cpu_us_per_msg']:.2f} |")
    lines.append("<!-- /cluster-durability -->")
    return "\n".join(lines)


def _slow(by_second: dict) -> str:
    return ", ".join(f"{count} in s{second}" for second, count in sorted(by_second.items(), key=lambda kv: int(kv[0]))) or "none"


def report(rows: list[dict], args) -> str:
    row = rows[len(rows) // 2] if len(rows) == 1 else {k: v for k, v in rows[0].items()}
    cpu = row["hub_cpu_ms_per_msg"]
    lines = [
        "<!-- cluster -->",
        f"## Cluster: {row['nodes']} hub nodes × {row['peers_per_node']:,} peers on a 3+3 Valkey cluster",
        "",
        f"`python -m bench.cluster --nodes {args.nodes} --peers {args.peers} --rate {args.rate} "
        f"--seconds {args.seconds}` ({len(rows)} run; this machine's 2 cores run the clients, "
        "the hub nodes and the six store servers).",
        "",
        "| | |", "|---|---:|",
        f"| peers connected | {row['nodes'] * row['peers_per_node']:,} in {row['connect_s']:.1f} s |",
        f"| notifies sent across nodes | {row['sent']:,} ({args.rate}/s) |",
        f"| delivered / lost | {row['delivered']:,} / {row['lost']} |",
        f"| send → deliver p50 / p99 / p99.9 / max | {row['p50_ms']:.1f} / {row['p99_ms']:.1f} / "
        f"{row['p999_ms']:.1f} / {row['max_ms']:.0f} ms |",
        f"| deliveries over 100 ms, by second of the run | {_slow(row['slow_by_second'])} |",
        f"| hub CPU per message, each node | {', '.join(f'{c:.2f}' for c in cpu)} ms |",
        f"| hub CPU per message, all nodes | {sum(cpu):.2f} ms |",
        f"| … less the nodes' idle cost, all nodes | {sum(row['hub_cpu_ms_per_msg_less_idle']):.2f} ms |",
        f"| idle hub CPU, each node, with its peers connected | "
        f"{', '.join(f'{share:.1%}' for share in row['hub_idle_cpu_share'])} of a core |",
        f"| store commands per message (primaries) | {row['store_commands_per_msg']:.1f} "
        f"({row['store_commands_per_msg_less_idle']:.1f} less the idle {row['store_idle_commands_per_s']:,.0f}/s) |",
        f"| store CPU per message (primaries) | {row['store_cpu_ms_per_msg']:.3f} ms |",
        f"| store commands per message, by kind (scripts' own calls counted too) | "
        f"{', '.join(f'{kind} {count:g}' for kind, count in row['store_commands_by_kind_per_msg'].items())} |",
        f"| commands per primary (share) | {' / '.join(f'{s:.0%}' for s in row['store_commands_share'])} |",
        f"| store memory per message kept (inbox gone; trace, events) | {row['store_bytes_per_msg']:,.0f} bytes |",
        f"| memory per connected peer: hub node | {row['hub_kib_per_peer']:.1f} KiB |",
        f"| memory per connected peer: store (all primaries) | {row['store_kib_per_peer']:.2f} KiB |",
        f"| hub node resident memory | {', '.join(str(r) for r in row['hub_rss_mib'])} MiB |",
        "<!-- /cluster -->",
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:   # a client process (see Clients)
        url, token, prefix, count, rate, seconds = sys.argv[2:8]
        others = orjson.loads(sys.stdin.readline())
        asyncio.run(worker(url, token, prefix, int(count), others, float(rate), float(seconds)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--peers", type=int, default=5000, help="peers per node")
    parser.add_argument("--rate", type=int, default=400, help="notifies a second, across nodes")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print, do not write bench/RESULTS.md")
    parser.add_argument("--durability", action="store_true", help="measure what --replica-acks 1 costs instead")
    parser.add_argument("--acks-messages", type=int, default=2000, help="with --durability: notifies per pair")
    args = parser.parse_args()
    if args.durability:
        section = durability_report(asyncio.run(durability(args)), args)
        print(section)
        if not args.no_write:
            write_section(RESULTS, section)
        return
    rows = []
    for run in range(args.runs):
        rows.append(asyncio.run(one_run(args, run)))
        print(orjson.dumps(rows[-1]).decode(), flush=True)
    section = report(rows, args)
    print(section)
    if not args.no_write:
        write_section(RESULTS, section)


if __name__ == "__main__":
    main()
