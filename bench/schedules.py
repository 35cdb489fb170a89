"""Scheduled-message benchmark: how late fires arrive, the hub against timers over the relay.

    python -m bench.schedules [--runs 3] [--schedules 200] [--spread 2.0] [--out bench/RESULTS.md]

Per run and target (fresh processes, loopback only), a receiver connects and `schedules`
one-time notifies fall due:
- spread: evenly over `spread` seconds (100 a second with the defaults);
- burst: all at the same millisecond.
Lateness is the receiver's wall clock when the delivery arrives minus the due time. On the hub
the schedules are made through `POST /schedules` beforehand, and each fire is claimed in the
store, written, delivered and recorded. The relay's yardstick is an asyncio timer per message
in the sending client (`loop.call_at`) that sends a plain notify through the bare relay at the
due time: no store, no claim, no record. Results go to the `schedules` section of
bench/RESULTS.md; figures are medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.run import ROOT, STEP_TIMEOUT_S, Target, alternating, open_peer, publish, start_hub, start_relay

SECTION_START, SECTION_END = "<!-- schedules -->", "<!-- /schedules -->"
LEAD_S = 2.0   # the first due time is this far after the schedules are made


def due_times(count: int, spread_s: float, start_ms: int) -> list[int]:
    step = spread_s * 1000 / count if spread_s else 0
    return [start_ms + int(i * step) for i in range(count)]


async def collect(receiver, count: int, due_of) -> list[float]:
    """Lateness in ms of `count` deliveries (bounded in time)."""
    lateness = []
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while len(lateness) < count and time.monotonic() < deadline:
        frame = orjson.loads(await asyncio.wait_for(receiver.recv(), STEP_TIMEOUT_S))
        if frame.get("type") != "deliver":
            continue
        lateness.append(time.time() * 1000 - due_of(frame))
        if "seq" in frame and frame.get("schedule_id"):
            await receiver.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                              "status": "received"}).decode())
    if len(lateness) < count:
        raise RuntimeError(f"only {len(lateness)} of {count} fires arrived")
    return lateness


def summary(lateness: list[float]) -> dict:
    ordered = sorted(lateness)
    return {"p50_ms": ordered[len(ordered) // 2], "p99_ms": ordered[int(len(ordered) * 0.99)], "max_ms": ordered[-1]}


async def hub_fires(target: Target, run: int, count: int, spread_s: float) -> dict:
    base = target.url.replace("ws://", "http://").removesuffix("/ws")
    receiver = await open_peer(target, f"bob{run}{spread_s}")
    due_by_schedule: dict[str, int] = {}
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target.token}"}, timeout=30) as client:
            start = int(time.time() * 1000 + LEAD_S * 1000 + count * 10)
            for due in due_times(count, spread_s, start):
                at = datetime.fromtimestamp(due / 1000, UTC).isoformat(timespec="milliseconds")
                response = client.post("/schedules", json={"to": f"bob{run}{spread_s}", "kind": "notify",
                                                           "text": "scheduled", "at": at})
                response.raise_for_status()
                due_by_schedule[response.json()["schedule_id"]] = due
        return summary(await collect(receiver, count, lambda f: due_by_schedule[f["schedule_id"]]))
    finally:
        await receiver.close()


async def relay_fires(target: Target, run: int, count: int, spread_s: float) -> dict:
    name = f"bob{run}{spread_s}"
    receiver, sender = await open_peer(target, name), await open_peer(target, f"timer{run}{spread_s}")
    loop = asyncio.get_running_loop()
    sends: list[asyncio.Task] = []
    try:
        start = int(time.time() * 1000 + LEAD_S * 1000)
        dues = due_times(count, spread_s, start)
        for n, due in enumerate(dues):
            frame = orjson.dumps({"type": "notify", "id": str(n), "to": name, "text": str(due)}).decode()
            delay = due / 1000 - time.time()
            loop.call_at(loop.time() + delay, lambda f=frame: sends.append(asyncio.ensure_future(sender.send(f))))
        return summary(await collect(receiver, count, lambda f: int(f["text"])))
    finally:
        await asyncio.gather(*sends, return_exceptions=True)
        await receiver.close()
        await sender.close()


async def bench(args) -> dict:
    async def measure(name: str, target: Target, run: int) -> dict[str, dict]:
        fires = hub_fires if name == "hub" else relay_fires
        return {"spread": await fires(target, run, args.schedules, args.spread),
                "burst": await fires(target, run, args.schedules, 0.0)}

    def start(name: str) -> Target:
        return start_hub(["--no-bridge", "--max-schedules", "100000"]) if name == "hub" else start_relay()
    return await alternating(args.runs, start, measure)


def report(results: dict, args) -> str:
    def med(name: str, part: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name][part])

    rows = []
    for label, part in ((f"{args.schedules} fires spread over {args.spread:g} s", "spread"),
                        (f"{args.schedules} fires due at the same instant", "burst")):
        for key in ("p50_ms", "p99_ms", "max_ms"):
            rows.append(f"| {label}, lateness {key[:-3]} (ms) | {med('hub', part, key):.1f} | "
                        f"{med('relay', part, key):.1f} |")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        SECTION_START,
        "## Scheduled messages",
        "",
        f"Measured {when} by `python -m bench.schedules --runs {args.runs} --schedules {args.schedules} "
        f"--spread {args.spread:g}`. Median of {args.runs} runs. Lateness: when the receiver has the delivery, "
        "minus the due time. The hub claims each occurrence in the store, writes the message and its trace, "
        "delivers it and records the fire; the relay's yardstick is an asyncio timer per message in the "
        "sending client that sends a plain notify through the bare relay at the due time (nothing stored).",
        "",
        "| measure | hub | relay timers |",
        "|---|---:|---:|",
        *rows,
        SECTION_END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=200, help="one-time schedules per measure and run")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds the due times are spread over")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report(asyncio.run(bench(args)), args))


if __name__ == "__main__":
    main()
