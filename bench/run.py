"""Notify benchmark: the hub against a bare websockets relay, same load, same run.

    python -m bench.run [--runs 3] [--pairs 8] [--messages 2000] [--idle 1000] [--out bench/RESULTS.md]

Per run and target (fresh processes each time, loopback only):
- throughput: `pairs` senders each send `messages` notifies to their own receiver with up to
  `window` unaccepted at once; receivers confirm each delivery with a receipt. Reports
  delivered messages/s, send->deliver latency p50/p99, and server CPU per delivered message
  (the hub process; the embedded store's CPU is reported beside it).
- latency-bound: the same with one notify in flight per sender (window 1), a quarter as many.
- asks: round trips at concurrency 1 and 32, the responder acking each with a reply; at
  concurrency 1 also the server's CPU and its wake-ups (voluntary context switches) per ask.
- idle peers: `idle` peers connect and say hello (50 at a time); reports connects/s and
  resident memory per idle peer.
- the store's round trip (hub only): `PING` to the embedded store over its Unix socket, one at
  a time, the floor under each write the hub awaits (an ask awaits two in series).
The figure in each table is the median over runs. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil
from websockets.asyncio.client import connect

from bench.relay import PING_INTERVAL_S

ROOT = Path(__file__).resolve().parents[1]
STEP_TIMEOUT_S = 300


@dataclass
class Target:
    name: str
    url: str
    process: subprocess.Popen
    token: str | None = None
    store_pid: int | None = None
    home: Path | None = None

    def procs(self) -> tuple[psutil.Process, psutil.Process | None]:
        return psutil.Process(self.process.pid), psutil.Process(self.store_pid) if self.store_pid else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_hub(extra: list[str] | None = None, tree: Path = ROOT) -> Target:
    """A hub on its embedded store; without a pane bridge unless `extra` names a tmux socket.
    `tree`: the source it runs from (another checkout, for bench.compare)."""
    home = Path(tempfile.mkdtemp(prefix="rw-bench-")) / "home"
    env = {**os.environ, "REPOWIRE_HOME": str(home), "PYTHONPATH": str(tree)}
    extra = extra if extra is not None else ["--no-bridge"]
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli.main", "serve", "--port", "0",
                             "--limit", "messages_per_second=1000000", "--limit", "message_burst=1000000",
                             "--limit", "max_connections=5000", *extra],
                            env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (home / "hub.json").exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"the hub from {tree} did not start")
        time.sleep(0.05)
    info = orjson.loads((home / "hub.json").read_bytes())
    store_pid = int((home / "store" / "valkey.pid").read_text())
    return Target("hub", info["url"].replace("http", "ws") + "/ws", proc,
                  (home / "hub.token").read_text().strip(), store_pid, home)


def head_commit() -> str:
    """This tree's commit, short, to name it in a table."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@contextlib.contextmanager
def checked_out(commit: str) -> Iterator[Path]:
    """An earlier commit checked out with `git worktree` into a temporary folder (removed after),
    for a benchmark to start that commit's hub beside this tree's (start_hub(tree=...))."""
    with tempfile.TemporaryDirectory(prefix="rw-baseline-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False,
                           capture_output=True)


def percentiles(samples_ns: list[int]) -> dict:
    samples_ns.sort()
    return {"p50_ms": samples_ns[len(samples_ns) // 2] / 1e6, "p99_ms": samples_ns[int(len(samples_ns) * 0.99)] / 1e6}


def write_section(path: Path, section: str) -> None:
    """Put a `<!-- name -->` … `<!-- /name -->` section into the results file, replacing the old one."""
    name = re.match(r"<!-- ([a-z-]+) -->", section).group(1)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(f"<!-- {name} -->.*?<!-- /{name} -->", re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def start_relay(ping_interval: float = PING_INTERVAL_S, durable: bool = False, asks: bool = False) -> Target:
    """The bare websockets relay (bench/relay.py), pinging every `ping_interval` seconds; with
    `durable`, the relay that writes each message to its own embedded store before delivering it;
    with `asks` too, the one that also writes each ask's record, its close and its seq."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.relay", "0", f"{ping_interval:g}",
                             *(["--durable"] if durable or asks else []), *(["--asks"] if asks else [])],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError("relay did not start")
    _, port, store_pid = line.split()
    name = "ask-keeping relay" if asks else "durable relay" if durable else "relay"
    return Target(name, f"ws://127.0.0.1:{port}/ws", proc, store_pid=int(store_pid) or None)


async def open_peer(target: Target, name: str):
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    ws = await connect(target.url, additional_headers=headers, compression=None, ping_interval=None,
                       max_size=1 << 20, open_timeout=30)
    await ws.send(orjson.dumps({"type": "hello", "name": name}).decode())
    welcome = orjson.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    return ws


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return t.user + t.system


async def throughput(target: Target, run: int, pairs: int, messages: int, window: int) -> dict:
    senders = [await open_peer(target, f"s{run}-{i}") for i in range(pairs)]
    receivers = [await open_peer(target, f"r{run}-{i}") for i in range(pairs)]
    latencies: list[int] = []
    padding = "x" * 80

    async def send_all(i: int) -> None:
        ws = senders[i]
        room = asyncio.Semaphore(window)

        async def read_accepts() -> None:
            for _ in range(messages):
                frame = orjson.loads(await ws.recv())
                assert frame["type"] == "accepted", frame
                room.release()

        reader = asyncio.create_task(read_accepts())
        for n in range(messages):
            await room.acquire()
            text = f"{time.perf_counter_ns()}|{padding}"
            await ws.send(orjson.dumps({"type": "notify", "id": str(n), "to": f"r{run}-{i}", "text": text}).decode())
        await reader

    async def receive_all(i: int) -> None:
        ws = receivers[i]
        for _ in range(messages):
            frame = orjson.loads(await ws.recv())
            latencies.append(time.perf_counter_ns() - int(frame["text"].split("|", 1)[0]))
            await ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                        "status": "received"}).decode())

    server, store = target.procs()
    cpu0, store0, t0 = cpu_seconds(server), cpu_seconds(store), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(send_all(i) for i in range(pairs)),
                                          *(receive_all(i) for i in range(pairs))), STEP_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    # let trailing receipts be processed before reading CPU, bounded
    await asyncio.sleep(0.5)
    cpu1, store1 = cpu_seconds(server), cpu_seconds(store)
    for ws in senders + receivers:
        await ws.close()
    total = pairs * messages
    latencies.sort()
    return {"msgs_per_s": total / elapsed, "p50_ms": latencies[len(latencies) // 2] / 1e6,
            "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
            "cpu_us_per_msg": (cpu1 - cpu0) / total * 1e6, "store_cpu_us_per_msg": (store1 - store0) / total * 1e6}


async def ask_round_trips(target: Target, run: int, concurrency: int, total: int,
                          responder_target: Target | None = None, before_asking: Awaitable | None = None) -> dict:
    """One asker keeps `concurrency` asks in flight; one responder acks each with a reply.
    Round trip: ask sent -> reply delivered to the asker (both receipts sent as a client would).
    With `responder_target` (another node of a mesh) the responder connects there, and
    `before_asking` is awaited once both are connected (until the asker's node knows it)."""
    asker = await open_peer(target, f"asker{run}-{concurrency}")
    responder = await open_peer(responder_target or target, f"responder{run}-{concurrency}")
    round_trips: list[int] = []
    started: dict[str, int] = {}
    done = asyncio.Event()
    room = asyncio.Semaphore(concurrency)

    async def respond() -> None:
        n = 0
        while n < total:
            frame = orjson.loads(await responder.recv())
            if frame["type"] != "deliver":
                continue
            n += 1
            await responder.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                               "status": "received"}).decode())
            await responder.send(orjson.dumps({"type": "ack", "id": f"k{n}", "correlation_id": frame["correlation_id"],
                                               "text": "ok"}).decode())

    async def read_asker() -> None:
        while len(round_trips) < total:
            frame = orjson.loads(await asker.recv())
            if frame["type"] == "accepted":
                started.setdefault(frame["correlation_id"], started.pop(frame["ref"]))
            elif frame["type"] == "deliver":
                round_trips.append(time.perf_counter_ns() - started.pop(frame["correlation_id"]))
                await asker.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                               "status": "received"}).decode())
                room.release()
        done.set()

    async def send_asks() -> None:
        if before_asking is not None:
            await before_asking
        for n in range(total):
            await room.acquire()
            started[str(n)] = time.perf_counter_ns()
            await asker.send(orjson.dumps({"type": "ask", "id": str(n), "to": responder_name, "text": "status?",
                                           "timeout_s": 60}).decode())

    responder_name = f"responder{run}-{concurrency}"
    server, store = target.procs()
    t0, cpu0, store0 = time.perf_counter(), cpu_seconds(server), cpu_seconds(store)
    wakes0 = server.num_ctx_switches().voluntary
    await asyncio.wait_for(asyncio.gather(respond(), read_asker(), send_asks()), STEP_TIMEOUT_S)
    elapsed, cpu_s, store_s = time.perf_counter() - t0, cpu_seconds(server) - cpu0, cpu_seconds(store) - store0
    wakes = server.num_ctx_switches().voluntary - wakes0
    await asker.close()
    await responder.close()
    round_trips.sort()
    return {"asks_per_s": total / elapsed, "p50_ms": round_trips[len(round_trips) // 2] / 1e6,
            "p99_ms": round_trips[int(len(round_trips) * 0.99)] / 1e6, "cpu_ms_per_ask": cpu_s * 1000 / total,
            "wakes_per_ask": wakes / total, "store_ms_per_ask": store_s * 1000 / total}


async def store_round_trips(target: Target, count: int) -> dict:
    """The floor under every write the hub awaits: `PING` to its embedded store over the store's
    Unix socket from an asyncio client, one at a time (the store does no work for it)."""
    assert target.home is not None
    reader, writer = await asyncio.open_unix_connection(str(target.home / "store" / "valkey.sock"))
    times: list[int] = []
    try:
        for _ in range(count):
            t0 = time.perf_counter_ns()
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            assert await asyncio.wait_for(reader.readexactly(7), STEP_TIMEOUT_S) == b"+PONG\r\n"
            times.append(time.perf_counter_ns() - t0)
    finally:
        writer.close()
    times.sort()
    return {"p50_ms": times[len(times) // 2] / 1e6}


async def idle_peers(target: Target, run: int, count: int) -> dict:
    server, store = target.procs()
    rss0, store_rss0 = server.memory_info().rss, store.memory_info().rss if store else 0
    sockets = []
    room = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with room:
            sockets.append(await open_peer(target, f"idle{run}-{i}"))

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), STEP_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    rss1, store_rss1 = server.memory_info().rss, store.memory_info().rss if store else 0
    for ws in sockets:
        await ws.close()
    return {"connects_per_s": count / elapsed, "kib_per_peer": (rss1 - rss0) / count / 1024,
            "store_kib_per_peer": (store_rss1 - store_rss0) / count / 1024}


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


async def alternating(runs: int, start: Callable[[str], Target],
                      measure: Callable[[str, Target, int], Awaitable[dict[str, dict]]],
                      names: tuple[str, ...] = ("hub", "relay")) -> dict[str, dict[str, list]]:
    """Run `measure` on a fresh hub and a fresh relay (or each of `names`) per run, the order
    turning from run to run, each stopped by its pid afterwards: results[target][part] holds
    one row per run."""
    results: dict[str, dict[str, list]] = {name: {} for name in names}
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            target = start(name)
            try:
                for part, row in (await measure(name, target, run)).items():
                    results[name].setdefault(part, []).append(row)
            finally:
                target.stop()
            print(f"run {run + 1}/{runs} {name}: " + " ".join(f"{k}={v[-1]}" for k, v in results[name].items()),
                  flush=True)
    return results


def publish(path: Path, section: str) -> None:
    """Write a section into the results file and show it."""
    write_section(path, section)
    print(section)


async def bench(args) -> dict:
    async def measure(name: str, target: Target, run: int) -> dict[str, dict]:
        return {"tp": await throughput(target, run, args.pairs, args.messages, args.window),
                # latency-bound: one notify in flight per sender (a quarter as many per sender)
                "tp1": await throughput(target, 1000 + run, args.pairs, args.messages // 4, 1),
                "ask1": await ask_round_trips(target, run, 1, args.asks // 4),
                "ask32": await ask_round_trips(target, run, 32, args.asks),
                "idle": await idle_peers(target, run, args.idle),
                **({"store_rtt": await store_round_trips(target, args.asks // 4)} if name == "hub" else {})}
    return await alternating(args.runs, lambda name: start_hub() if name == "hub" else start_relay(), measure)


def report(results: dict, args) -> str:
    hub, relay = results["hub"], results["relay"]
    rows = []

    def row(label: str, part: str, key: str, fmt: str, ratio: bool = True) -> None:
        h, r = median(hub[part], key), median(relay[part], key)
        rows.append(f"| {label} | {format(h, fmt)} | {format(r, fmt)} | {format(h / r, '.2f') + 'x' if ratio and r else '-'} |")

    row("notify throughput (delivered msg/s)", "tp", "msgs_per_s", ",.0f")
    row("send→deliver latency p50 (ms)", "tp", "p50_ms", ".2f")
    row("send→deliver latency p99 (ms)", "tp", "p99_ms", ".2f")
    row(f"server CPU per delivered notify, window {args.window} (µs)", "tp", "cpu_us_per_msg", ".1f")
    rows.append(f"| embedded store CPU per notify, window {args.window} (µs) | "
                f"{median(hub['tp'], 'store_cpu_us_per_msg'):.1f} | - | - |")
    row("send→deliver latency p50, window 1 (ms)", "tp1", "p50_ms", ".2f")
    row("server CPU per delivered notify, window 1 (µs)", "tp1", "cpu_us_per_msg", ".1f")
    rows.append(f"| embedded store CPU per notify, window 1 (µs) | "
                f"{median(hub['tp1'], 'store_cpu_us_per_msg'):.1f} | - | - |")
    row("ask round trip p50, concurrency 1 (ms)", "ask1", "p50_ms", ".2f")
    row("ask round trip p99, concurrency 1 (ms)", "ask1", "p99_ms", ".2f")
    row("server CPU per ask, concurrency 1 (ms)", "ask1", "cpu_ms_per_ask", ".3f")
    row("server wake-ups per ask, concurrency 1 (voluntary context switches)", "ask1", "wakes_per_ask", ".1f")
    row("ask round trip p50, concurrency 32 (ms)", "ask32", "p50_ms", ".2f")
    row("ask round trip p99, concurrency 32 (ms)", "ask32", "p99_ms", ".2f")
    row("asks per second, concurrency 32", "ask32", "asks_per_s", ",.0f")
    row("connects per second", "idle", "connects_per_s", ",.0f")
    row("memory per idle peer (KiB, server RSS)", "idle", "kib_per_peer", ".1f")
    rows.append(f"| store memory per idle peer (KiB) | {median(hub['idle'], 'store_kib_per_peer'):.1f} | - | - |")
    store_rtt = median(hub["store_rtt"], "p50_ms")
    store_per_ask = median(hub["ask1"], "store_ms_per_ask")
    rows.append(f"| store round trip p50, `PING` over its Unix socket (ms) | {store_rtt:.3f} | - | - |")
    rows.append(f"| embedded store CPU per ask, concurrency 1 (ms) | {store_per_ask:.3f} | - | - |")
    def ratio(part: str, key: str) -> float:
        return median(hub[part], key) / median(relay[part], key)

    def verdict(value: float, limit: float) -> str:
        return f"{value:.2f}x ({'met' if value <= limit else 'not met'})"

    memory = median(hub["idle"], "kib_per_peer")
    relay_ask = median(relay["ask1"], "p50_ms")
    hub_wakes, relay_wakes = median(hub["ask1"], "wakes_per_ask"), median(relay["ask1"], "wakes_per_ask")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        "# Benchmark results",
        "",
        f"Measured {when} on {platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()}, "
        f"by `python -m bench.run --runs {args.runs} --pairs {args.pairs} --messages {args.messages} "
        f"--window {args.window} --asks {args.asks} --idle {args.idle}`. Median of {args.runs} runs; hub and relay alternate order "
        "and each run starts fresh processes. Loopback only; the load generator shares the machine's two cores.",
        "",
        "The relay (`bench/relay.py`) is a bare websockets server doing the same frame exchange with nothing "
        "written anywhere. The hub writes every notify and its trace stages to its embedded Valkey "
        "(append-only file on) before `accepted`, and the receipt's stages after.",
        "",
        "| measure | hub | relay | hub / relay |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "Targets (issue 27, performance round 2; durable writes and traces stay):",
        "",
        f"- hub CPU per delivered notify at most 1.5x the relay's, window {args.window}: "
        f"{verdict(ratio('tp', 'cpu_us_per_msg'), 1.5)}; window 1: {verdict(ratio('tp1', 'cpu_us_per_msg'), 1.5)}",
        f"- ask round trip p50 at concurrency 1 at most 2x the relay's: {verdict(ratio('ask1', 'p50_ms'), 2.0)}. "
        "An ask waits on two store writes in series: its own before it is delivered (the store gives the delivery "
        "its sequence number) and its close before the reply is. Two bare round trips to the store "
        f"(2 x {store_rtt:.3f} ms) add {2 * store_rtt / relay_ask:.2f}x the relay's p50, and all the store's work "
        f"for the ask ({store_per_ask:.3f} ms, part of it after the reply) at most {store_per_ask / relay_ask:.2f}x "
        f"more, of the hub's {ratio('ask1', 'p50_ms') - 1:.2f}x over the relay. The hub's own CPU per ask is "
        f"{ratio('ask1', 'cpu_ms_per_ask'):.2f}x the relay's, and it is woken {hub_wakes:.1f} times an ask to the "
        f"relay's {relay_wakes:.1f} (the hub also waits for two of the store's replies).",
        f"- memory per idle peer at most 20 KiB: {memory:.1f} KiB ({'met' if memory <= 20 else 'not met'})",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--messages", type=int, default=2000, help="per sender")
    parser.add_argument("--window", type=int, default=32, help="unaccepted notifies per sender")
    parser.add_argument("--asks", type=int, default=2000, help="asks at concurrency 32 (a quarter at concurrency 1)")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    text = report(results, args)
    args.out.write_text(text + kept_sections(args.out))
    print(text)


def kept_sections(path: Path) -> str:
    """Sections other benchmarks wrote (`<!-- name -->` ... `<!-- /name -->`) survive a rerun."""
    if not path.exists():
        return ""
    sections = re.finditer(r"<!-- ([a-z-]+) -->.*?<!-- /\1 -->", path.read_text(), re.DOTALL)
    return "".join("\n" + m.group(0) + "\n" for m in sections)


if __name__ == "__main__":
    main()
