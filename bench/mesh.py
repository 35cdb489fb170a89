"""Mesh and soak benchmarks: two hub nodes on one shared Valkey, beside the bare relay.

    python -m bench.mesh [--runs 3] [--asks 2000] [--peers 1000] [--rate 200] [--seconds 10] [--soak-s 180]

- cross-node ask round trip: the asker on node 1, the responder on node 2 (concurrency 1 and 32),
  beside the same asks inside one node of the mesh and on the relay (which has no nodes).
- peers per node with traffic: `peers` peers connect to each node, then `rate` notifies a second
  for `seconds` go from a random peer on one node to a random peer on the other; delivered count,
  send -> deliver p50/p99, each node's CPU per message.
- memory per idle peer: each node's resident memory growth for its `peers` idle peers.
- soak: `soak-s` seconds of notifies and asks across the nodes while peers leave and come back;
  each node's memory, open files and asyncio tasks before the peers come, at the end of the
  traffic, and after they left.
Fresh processes for every run, loopback only, each stopped by its pid; medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

from bench.run import (
    ROOT,
    STEP_TIMEOUT_S,
    Target,
    ask_round_trips,
    cpu_seconds,
    median,
    open_peer,
    percentiles,
    start_relay,
    write_section,
)
from hub.store.embedded import find_server_binary


def start_mesh_node(store_url: str, folder: Path, name: str, *, max_connections: int,
                    extra: tuple[str, ...] = ()) -> Target:
    """A hub node on a shared store (`--redis-url`), home in `folder/name`, rate limits out of
    the way; started and waited for (bounded), stopped with `Target.stop`."""
    home = folder / name
    env = {**os.environ, "REPOWIRE_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli.main", "serve", "--port", "0", "--no-bridge",
                             "--redis-url", store_url, "--node", name,
                             "--limit", "messages_per_second=1000000", "--limit", "message_burst=1000000",
                             "--limit", f"max_connections={max_connections}", *extra],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (home / "hub.json").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"node {name} did not start")
        time.sleep(0.05)
    info = orjson.loads((home / "hub.json").read_bytes())
    return Target(name, info["url"].replace("http", "ws") + "/ws", proc, (home / "hub.token").read_text().strip(),
                  None, home)


class MeshUnderTest:
    """A Valkey with append-only persistence and two hub nodes on it."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rw-mesh-"))
        sock = self.folder / "store.sock"
        self.store = subprocess.Popen([find_server_binary(), "--port", "0", "--unixsocket", str(sock),
                                       "--appendonly", "yes", "--save", "", "--dir", str(self.folder)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the store did not start")
            time.sleep(0.02)
        self.nodes = [self._node(f"unix://{sock}", f"n{i}") for i in (1, 2)]

    def _node(self, store_url: str, name: str) -> Target:
        return start_mesh_node(store_url, self.folder, name, max_connections=5000)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.store.poll() is None:
            self.store.terminate()
            self.store.wait(10)


def http_url(target: Target) -> str:
    return target.url.replace("ws://", "http://").removesuffix("/ws")


async def facts(target: Target) -> dict:
    """What a node's process holds: resident memory, open files, asyncio tasks."""
    proc = psutil.Process(target.process.pid)
    async with httpx.AsyncClient(timeout=10) as client:
        health = (await client.get(f"{http_url(target)}/health")).json()
    return {"rss_mib": proc.memory_info().rss / 2**20, "fds": proc.num_fds(), "tasks": health["tasks"]}


# ---- asks across nodes ---------------------------------------------------------------------------

async def known_to(target: Target, names: list[str]) -> None:
    """Wait (bounded) until a node has heard of peers that registered on another node."""
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {target.token}"}) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            known = {p["name"] for p in (await client.get(f"{http_url(target)}/peers")).json()["peers"]}
            if set(names) <= known:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{target.name} did not hear of {names}")


async def cross_node_asks(n1: Target, n2: Target, run: int, concurrency: int, total: int) -> dict:
    responder = f"responder{run}-{concurrency}"
    ready = asyncio.ensure_future(known_to(n1, [responder]))
    return await ask_round_trips(n1, run, concurrency, total, responder_target=n2, before_asking=ready)


async def asks(args, run: int) -> dict:
    mesh = MeshUnderTest()
    try:
        n1, n2 = mesh.nodes
        row = {"cross_c1": await cross_node_asks(n1, n2, run, 1, args.asks // 4),
               "cross_c32": await cross_node_asks(n1, n2, run + 100, 32, args.asks),
               "same_c1": await ask_round_trips(n1, run + 200, 1, args.asks // 4)}
    finally:
        mesh.stop()
    relay = start_relay()
    try:
        row["relay_c1"] = await ask_round_trips(relay, run, 1, args.asks // 4)
    finally:
        relay.stop()
    return row


# ---- peers per node, with traffic ----------------------------------------------------------------

async def connect_many(target: Target, prefix: str, count: int) -> list:
    room = asyncio.Semaphore(50)
    sockets: list = [None] * count

    async def one(i: int) -> None:
        async with room:
            sockets[i] = await open_peer(target, f"{prefix}{i}")
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), STEP_TIMEOUT_S)
    return sockets


async def read_and_confirm(ws, latencies: list[int], ack_asks: bool = False) -> None:
    """Confirm every delivery; a notify's text carries when it was sent (perf_counter_ns)."""
    async for raw in ws:
        frame = orjson.loads(raw)
        if frame.get("type") != "deliver":
            continue
        await ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"], "status": "received"}))
        if frame["kind"] == "notify" and frame["text"].isdigit():
            latencies.append(time.perf_counter_ns() - int(frame["text"]))
        elif frame["kind"] == "ask" and ack_asks:
            await ws.send(orjson.dumps({"type": "ack", "id": frame["correlation_id"],
                                        "correlation_id": frame["correlation_id"], "text": "ok"}))


async def crossing_traffic(sides: list[list], rate: int, seconds: float, ask_every: int = 0) -> int:
    """Send `rate` messages a second from a random peer of one node to a random peer of the
    other (every `ask_every`-th an ask); returns how many were sent."""
    total = int(rate * seconds)
    start = time.monotonic()
    for n in range(total):
        due = start + n / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        source, target_side = (sides[0], 1) if n % 2 else (sides[1], 0)
        sender, (recipient_name, _) = random.choice(source)[1], random.choice(sides[target_side])
        if ask_every and n % ask_every == 0:
            frame = {"type": "ask", "id": f"a{n}", "to": recipient_name, "text": "status?", "timeout_s": 60}
        else:
            frame = {"type": "notify", "id": f"m{n}", "to": recipient_name, "text": str(time.perf_counter_ns())}
        await sender.send(orjson.dumps(frame))
    return total


async def drain_others(ws) -> None:
    async for _ in ws:
        pass


async def peers_per_node(args, run: int) -> dict:
    mesh = MeshUnderTest()
    readers: list[asyncio.Task] = []
    try:
        procs = [psutil.Process(n.process.pid) for n in mesh.nodes]
        rss0 = [p.memory_info().rss for p in procs]
        sides = []
        for index, node in enumerate(mesh.nodes):
            sockets = await connect_many(node, f"r{run}n{index}-", args.peers)
            sides.append([(f"r{run}n{index}-{i}", ws) for i, ws in enumerate(sockets)])
        rss1 = [p.memory_info().rss for p in procs]
        await known_to(mesh.nodes[0], [name for name, _ in sides[1]])
        await known_to(mesh.nodes[1], [name for name, _ in sides[0]])
        latencies: list[int] = []
        readers = [asyncio.create_task(read_and_confirm(ws, latencies)) for side in sides for _, ws in side]
        cpu0 = [cpu_seconds(p) for p in procs]
        sent = await crossing_traffic(sides, args.rate, args.seconds)
        deadline = time.monotonic() + 30
        while len(latencies) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        cpu1 = [cpu_seconds(p) for p in procs]
        row = {"sent": sent, "delivered": len(latencies), **percentiles(latencies),
               "cpu_ms_per_msg_n1": (cpu1[0] - cpu0[0]) * 1000 / sent, "cpu_ms_per_msg_n2": (cpu1[1] - cpu0[1]) * 1000 / sent,
               "kib_per_idle_peer": statistics.mean([(b - a) / args.peers / 1024 for a, b in zip(rss0, rss1)]),
               "rss_mib_n1": rss1[0] / 2**20, "rss_mib_n2": rss1[1] / 2**20}
        for side in sides:
            for _, ws in side:
                await ws.close()
        return row
    finally:
        for task in readers:
            task.cancel()
        mesh.stop()


# ---- soak ----------------------------------------------------------------------------------------

async def soak(args) -> dict:
    mesh = MeshUnderTest()
    peers_per_node, readers = 100, []
    try:
        before = [await facts(n) for n in mesh.nodes]
        sides, latencies = [], []
        for index, node in enumerate(mesh.nodes):
            sockets = await connect_many(node, f"soak{index}-", peers_per_node)
            sides.append([(f"soak{index}-{i}", ws) for i, ws in enumerate(sockets)])
        await known_to(mesh.nodes[0], [name for name, _ in sides[1]])
        await known_to(mesh.nodes[1], [name for name, _ in sides[0]])
        readers = [asyncio.create_task(read_and_confirm(ws, latencies, ack_asks=True)) for s in sides for _, ws in s]
        sent, reconnects, started = 0, 0, time.monotonic()
        while time.monotonic() - started < args.soak_s:
            sent += await crossing_traffic(sides, args.rate, 10, ask_every=4)
            for index, node in enumerate(mesh.nodes):   # some peers leave and come back
                for slot in random.sample(range(peers_per_node), 5):
                    name, ws = sides[index][slot]
                    await ws.close()
                    fresh = await open_peer(node, name)
                    sides[index][slot] = (name, fresh)
                    readers.append(asyncio.create_task(read_and_confirm(fresh, latencies, ack_asks=True)))
                    reconnects += 1
        peak = [await facts(n) for n in mesh.nodes]
        for side in sides:
            for _, ws in side:
                await ws.close()
        await asyncio.sleep(3)   # let the nodes finish closing what the peers left
        after = [await facts(n) for n in mesh.nodes]
        return {"seconds": round(time.monotonic() - started), "sent": sent, "reconnects": reconnects,
                "before": before, "peak": peak, "after": after}
    finally:
        for task in readers:
            task.cancel()
        mesh.stop()


# ---- report --------------------------------------------------------------------------------------

def report(ask_rows: list[dict], peer_rows: list[dict], soaked: dict | None, args) -> str:
    def m(part: str, key: str) -> float:
        return median([r[part] for r in ask_rows], key)
    lines = ["<!-- mesh -->", "## Two hub nodes on one store (`python -m bench.mesh`)", "",
             f"{datetime_now()}, {args.runs} runs (median), two nodes on one Valkey (append-only, Unix socket), "
             "loopback.", "",
             "| ask round trip | asks/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for part, label in (("cross_c1", "node 1 -> node 2, concurrency 1"), ("cross_c32", "node 1 -> node 2, concurrency 32"),
                        ("same_c1", "inside one node of the mesh, concurrency 1"),
                        ("relay_c1", "bare relay (no store, no nodes), concurrency 1")):
        lines.append(f"| {label} | {m(part, 'asks_per_s'):.0f} | {m(part, 'p50_ms'):.2f} | {m(part, 'p99_ms'):.2f} |")
    ratio = m("cross_c1", "p50_ms") / m("relay_c1", "p50_ms")
    lines += ["", f"Cross-node ask p50 is {ratio:.1f}x the relay's and "
              f"{m('cross_c1', 'p50_ms') / m('same_c1', 'p50_ms'):.2f}x the same ask inside one node.", ""]
    p = {k: median(peer_rows, k) for k in peer_rows[0]}
    lines += [f"**{args.peers} peers on each node**, {args.rate} notifies/s for {args.seconds:g} s, each from a "
              "peer on one node to a peer on the other:", "",
              "| measure | value |", "|---|---:|",
              f"| delivered / sent | {p['delivered']:.0f} / {p['sent']:.0f} |",
              f"| send -> deliver p50 / p99 | {p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms |",
              f"| CPU per message, node 1 / node 2 | {p['cpu_ms_per_msg_n1']:.3f} / {p['cpu_ms_per_msg_n2']:.3f} ms |",
              f"| memory per idle peer (each node) | {p['kib_per_idle_peer']:.1f} KiB |",
              f"| resident memory with its peers, node 1 / node 2 | {p['rss_mib_n1']:.0f} / {p['rss_mib_n2']:.0f} MiB |",
              ""]
    if soaked:
        lines += [f"**Soak**: {soaked['seconds']} s, {soaked['sent']} messages (a quarter asks) across the nodes, "
                  f"{soaked['reconnects']} reconnects, 100 peers per node:", "",
                  "| node | memory MiB before / end of traffic / after | open files | asyncio tasks |",
                  "|---|---:|---:|---:|"]
        for i in range(2):
            b, e, a = soaked["before"][i], soaked["peak"][i], soaked["after"][i]
            lines.append(f"| n{i + 1} | {b['rss_mib']:.0f} / {e['rss_mib']:.0f} / {a['rss_mib']:.0f} | "
                         f"{b['fds']} / {e['fds']} / {a['fds']} | {b['tasks']} / {e['tasks']} / {a['tasks']} |")
        lines.append("")
    lines.append("<!-- /mesh -->")
    return "\n".join(lines)


def datetime_now() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


async def bench(args) -> str:
    ask_rows, peer_rows = [], []
    for run in range(args.runs):
        ask_rows.append(await asks(args, run))
        peer_rows.append(await peers_per_node(args, run))
        print(f"run {run + 1}/{args.runs}: {ask_rows[-1]} {peer_rows[-1]}", flush=True)
    soaked = await soak(args) if args.soak_s > 0 else None
    return report(ask_rows, peer_rows, soaked, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--asks", type=int, default=2000, help="asks at concurrency 32 (a quarter at concurrency 1)")
    parser.add_argument("--peers", type=int, default=1000, help="peers connected to each node")
    parser.add_argument("--rate", type=int, default=200, help="messages a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--soak-s", type=float, default=180.0, help="0 skips the soak")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    section = asyncio.run(bench(args))
    write_section(args.out, section)
    print(section)


if __name__ == "__main__":
    main()
