"""Where the hub's time goes, shape by shape: py-spy flame graphs and a table by layer.

    python -m bench.profile [--seconds-per-shape 6] [--idle 2000]

For each shape a fresh hub (on its embedded store, loopback only) is warmed up, then sampled by
py-spy (`py-spy record`, 250 Hz, subprocesses excluded) while the load runs:
- `throughput`: 8 pairs, 32 notifies in flight per sender, receipts on;
- `latency`: 8 pairs, one notify in flight per sender (the latency-bound shape);
- `ask`: one asker, one ask in flight, the responder acks each with a reply;
- `idle`: `--idle` connected peers doing nothing (the keepalive, sweeps and leases).
Each shape's flame graph is written to bench/profiles/<shape>.svg. The table in
bench/RESULTS.md (section `profile`) splits each shape's samples by the layer of the innermost
frame: the event loop and sockets, the WebSocket protocol (uvicorn, websockets), the hub's own
code, the contract's codec, the store client (our writer and RESP encoder, redis-py), and the
collector (samples py-spy attributes to garbage collection are counted with the frame they
interrupt).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.run import ROOT, Target, ask_round_trips, open_peer, start_hub, throughput, write_section

PROFILES = ROOT / "bench" / "profiles"
RATE_HZ = 250
LAYERS = (  # (layer, pattern on the innermost frame's file as py-spy names it), first match wins
    ("store client", re.compile(r"(^|/)(hub/store|redis)/|hiredis")),
    ("codec", re.compile(r"(^|/)schemas/|msgspec|orjson")),
    ("hub", re.compile(r"(^|/)hub/")),
    ("WebSocket protocol", re.compile(r"(^|/)(uvicorn|websockets|starlette|h11)/")),
    ("event loop and sockets", re.compile(r"(^|/)asyncio/|selectors\.py|socket\.py|ssl\.py|<built-in")),
)


def py_spy() -> str:
    found = subprocess.run(["py-spy", "--version"], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise SystemExit("py-spy is not installed: pip install py-spy (it is in the test extras)")
    return "py-spy"


class Recording:
    """py-spy sampling one process into a folded-stacks file and a flame graph."""

    def __init__(self, pid: int, shape: str, folder: Path):
        self.folded = folder / f"{shape}.txt"
        self.svg = PROFILES / f"{shape}.svg"
        common = ["--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking"]
        self._raw = subprocess.Popen([py_spy(), "record", *common, "--format", "raw", "--output", str(self.folded)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._svg = subprocess.Popen([py_spy(), "record", *common, "--output", str(self.svg)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)   # both samplers attached before the load starts

    def stop(self) -> None:
        for proc in (self._raw, self._svg):
            proc.send_signal(signal.SIGINT)
        for proc in (self._raw, self._svg):
            proc.wait(60)


def layer_of(frame: str) -> str:
    where = frame.rpartition(" (")[2] or frame
    for name, pattern in LAYERS:
        if pattern.search(where):
            return name
    return "other"


def stacks(folded: Path) -> list[tuple[list[str], int]]:
    """py-spy's folded stacks: (frames, outermost first; samples)."""
    found = []
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack:
            found.append((stack.split(";"), int(n)))
    return found


def by_layer(folded: Path) -> tuple[int, collections.Counter]:
    """Samples per layer of the innermost frame, and the total."""
    counts: collections.Counter = collections.Counter()
    for frames, n in stacks(folded):
        counts[layer_of(frames[-1])] += n
    return sum(counts.values()), counts


def top_hub_functions(folded: Path, count: int = 5) -> list[tuple[str, float]]:
    """The hub's own functions by inclusive share of the samples."""
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for frames, n in stacks(folded):
        total += n
        seen = set()
        for frame in frames:
            name, _, where = frame.partition(" (")
            if re.search(r"(^|/)hub/", where) and not re.search(r"(^|/)hub/cli/", where) and name not in seen:
                seen.add(name)
                inclusive[name] += n
    return [(name, n / total) for name, n in inclusive.most_common(count)] if total else []


async def load(shape: str, target: Target, seconds: float, idle: int) -> str:
    """Run one shape for about `seconds`; returns what it did, for the table."""
    if shape in ("throughput", "latency"):
        window = 32 if shape == "throughput" else 1
        messages = 1500 if shape == "throughput" else 150
        done = 0
        t0 = time.monotonic()
        for run in range(1, 100):
            await throughput(target, run, 8, messages, window)
            done += 8 * messages
            if time.monotonic() - t0 >= seconds:
                break
        return f"{done:,} notifies"
    if shape == "ask":
        done = 0
        t0 = time.monotonic()
        for run in range(1, 100):
            await ask_round_trips(target, run, 1, 300)
            done += 300
            if time.monotonic() - t0 >= seconds:
                break
        return f"{done:,} asks"
    await asyncio.sleep(seconds)
    return f"{idle:,} idle peers for {seconds:.0f} s"


async def profile(shape: str, seconds: float, idle: int, folder: Path) -> dict:
    target = start_hub()
    sockets = []
    try:
        if shape == "idle":
            room = asyncio.Semaphore(50)

            async def one(i: int) -> None:
                async with room:
                    sockets.append(await open_peer(target, f"idle-{i}"))

            await asyncio.gather(*(one(i) for i in range(idle)))
        else:
            await load(shape, target, 1.0, idle)   # warm up: imports, scripts, first connections
        recording = Recording(target.process.pid, shape, folder)
        try:
            did = await load(shape, target, seconds, idle)
        finally:
            recording.stop()
        total, layers = by_layer(recording.folded)
        return {"shape": shape, "did": did, "samples": total, "layers": layers,
                "top": top_hub_functions(recording.folded)}
    finally:
        for ws in sockets:
            await ws.close()
        target.stop()


def report(rows: list[dict], args: argparse.Namespace) -> str:
    layers = [*(name for name, _ in reversed(LAYERS)), "other"]
    head = "| shape | load | samples | " + " | ".join(layers) + " |"
    lines = [head, "|" + "---|" * 3 + "---:|" * len(layers)]
    for row in rows:
        total = row["samples"] or 1
        shares = " | ".join(f"{row['layers'][name] / total:.0%}" for name in layers)
        lines.append(f"| [{row['shape']}](profiles/{row['shape']}.svg) | {row['did']} | {row['samples']:,} | {shares} |")
    tops = "\n".join(f"- **{row['shape']}**: " + ", ".join(f"`{name}` {share:.0%}" for name, share in row["top"])
                     for row in rows)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!-- profile -->\n## Where the hub's time goes\n\nMeasured {now} by `python -m bench.profile "
            f"--seconds-per-shape {args.seconds_per_shape:g} --idle {args.idle}`: py-spy at {RATE_HZ} Hz on the hub "
            "process while each load ran, the samples split by the layer of the innermost frame (the flame graphs "
            "are linked).\n\n" + "\n".join(lines) +
            "\n\nThe hub's own functions with the largest inclusive share of each shape's samples:\n\n"
            + tops + "\n<!-- /profile -->")


async def main_async(args: argparse.Namespace) -> list[dict]:
    PROFILES.mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rw-profile-") as folder:
        for shape in args.shapes:
            rows.append(await profile(shape, args.seconds_per_shape, args.idle, Path(folder)))
            print(rows[-1]["shape"], rows[-1]["did"], dict(rows[-1]["layers"]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds-per-shape", type=float, default=6.0)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--shapes", nargs="+", default=["throughput", "latency", "ask", "idle"],
                        choices=["throughput", "latency", "ask", "idle"])
    args = parser.parse_args()
    rows = asyncio.run(main_async(args))
    section = report(rows, args)
    write_section(ROOT / "bench" / "RESULTS.md", section)
    print(section)


if __name__ == "__main__":
    main()
