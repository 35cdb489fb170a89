"""Pane delivery benchmark: 10 tmux panes fed through the hub and its pane bridge, against the bare
relay feeding the same kind of panes through the same injector, in the same run.

    python -m bench.panes [--runs 3] [--latency 100] [--burst 300] [--out bench/RESULTS.md]

Per run and target (fresh processes and a fresh private tmux server, loopback only), 10 panes run
the test recorder (raw terminal, bracketed paste on, records every byte it receives):
- hub: `repowire serve --tmux-socket …` starts its bridge; the 10 panes are linked over REST.
- relay: bench.relay routes by name; 10 pane clients in this process type each delivery into
  their pane with the same `PaneInjector` (framing, neutralising, paste, confirm) and send a
  receipt. No store, no trace, no fingerprint check.
Measures: send -> typed (the notify leaves the sender until its bytes reach the pane's program),
one at a time over the 10 panes; and a burst of notifies spread over the 10 panes, until every
pane has received all of its own. For the hub also send -> `injected` as its trace records it.
Results go to the `panes` section of bench/RESULTS.md; figures are medians over runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import libtmux
import orjson
from websockets.asyncio.client import connect

from bench.run import ROOT, STEP_TIMEOUT_S, Target, open_peer, percentiles, publish, start_hub, start_relay
from transports.pane_text import frame_delivery
from transports.tmux_pane import PaneInjector

PANES = 10
RECORDER = ROOT / "tests" / "pane_recorder.py"
SECTION_START, SECTION_END = "<!-- panes -->", "<!-- /panes -->"
POLL_S = 0.001


def start_panes(server: libtmux.Server, folder: Path) -> list[tuple[str, Path]]:
    panes = []
    for n in range(PANES):
        record = folder / f"pane{n}.bin"
        record.touch()
        command = f"{shlex.quote(sys.executable)} {shlex.quote(str(RECORDER))} {shlex.quote(str(record))}"
        session = server.new_session(session_name=f"bench{n}", window_command=command, detach=True, x=220, y=50)
        panes.append((session.active_window.active_pane.pane_id, record))
    deadline = time.monotonic() + 20
    for pane_id, _ in panes:
        while "recorder ready" not in "\n".join(server.cmd("capture-pane", "-p", "-t", pane_id).stdout):
            if time.monotonic() > deadline:
                raise RuntimeError(f"pane {pane_id} did not start")
            time.sleep(0.02)
    return panes


def link_panes(target: Target, panes: list[tuple[str, Path]]) -> None:
    base = target.url.replace("ws://", "http://").removesuffix("/ws")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target.token}"}, timeout=30) as client:
        deadline = time.monotonic() + 30
        while client.get("/panes/orphans").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the hub's pane bridge did not connect")
            time.sleep(0.05)
        for n, (pane_id, _) in enumerate(panes):
            linked = client.post(f"/panes/%25{pane_id[1:]}/link", json={"backend": "other", "name": f"pane{n}",
                                                                         "circle": "bench"})
            if linked.status_code != 201:
                raise RuntimeError(f"link failed: {linked.text}")


async def relay_pane_clients(target: Target, server: libtmux.Server, panes: list[tuple[str, Path]]) -> list:
    """The relay's side of the work: one client per pane, typing deliveries in and confirming."""
    injector = PaneInjector(server)

    async def serve_pane(name: str, pane_id: str, ws) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") != "deliver":
                continue
            result = await injector.inject(pane_id, frame_delivery(frame))
            await ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                        "status": result.status}).decode())

    tasks = []
    for n, (pane_id, _) in enumerate(panes):
        ws = await connect(target.url, compression=None, ping_interval=None, open_timeout=30)
        await ws.send(orjson.dumps({"type": "hello", "name": f"pane{n}@bench"}).decode())
        await ws.recv()
        tasks.append(asyncio.create_task(serve_pane(f"pane{n}", pane_id, ws)))
    return tasks


async def wait_for_bytes(record: Path, marker: bytes, deadline: float) -> None:
    while marker not in record.read_bytes():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{marker!r} never reached {record.name}")
        await asyncio.sleep(POLL_S)


async def latency(sender, panes: list[tuple[str, Path]], run: int, count: int) -> tuple[dict, list[str]]:
    samples, message_ids = [], []
    for k in range(count):
        n = k % PANES
        marker = f"lat-{run}-{k}-end"
        started = time.perf_counter_ns()
        await sender.send(orjson.dumps({"type": "notify", "id": f"l{k}", "to": f"pane{n}@bench",
                                        "text": marker}).decode())
        while True:
            frame = orjson.loads(await sender.recv())
            if frame.get("ref") == f"l{k}":
                message_ids.append(frame.get("message_id", ""))
                break
        await wait_for_bytes(panes[n][1], marker.encode(), time.monotonic() + STEP_TIMEOUT_S)
        samples.append(time.perf_counter_ns() - started)
    return percentiles(samples), message_ids


async def burst(sender, panes: list[tuple[str, Path]], run: int, count: int) -> float:
    started = time.perf_counter()
    for k in range(count):
        await sender.send(orjson.dumps({"type": "notify", "id": f"b{k}", "to": f"pane{k % PANES}@bench",
                                        "text": f"burst-{run}-{k}-end"}).decode())
    deadline = time.monotonic() + STEP_TIMEOUT_S
    last = {k % PANES: k for k in range(count)}
    await asyncio.gather(*(wait_for_bytes(panes[n][1], f"burst-{run}-{k}-end".encode(), deadline)
                           for n, k in last.items()))
    return count / (time.perf_counter() - started)


def injected_after_ms(target: Target, message_ids: list[str]) -> dict:
    """send -> injected as the hub's traces record it (ms resolution)."""
    base = target.url.replace("ws://", "http://").removesuffix("/ws")
    samples = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {target.token}"}, timeout=30) as client:
        for message_id in message_ids:
            stages = client.get(f"/traces/{message_id}").json()["stages"]
            at = {s["stage"]: s["at"] for s in stages}
            samples.append(int((at["injected"] - at["accepted"]) * 1e6))
    return percentiles(samples)


async def one_run(name: str, run: int, args) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-panes-"))
    server = libtmux.Server(socket_name=f"rw-bench-panes-{run}-{name}", config_file="/dev/null")
    target = start_hub(["--tmux-socket", server.socket_name]) if name == "hub" else start_relay()
    tasks: list[asyncio.Task] = []
    try:
        panes = await asyncio.to_thread(start_panes, server, folder)
        if name == "hub":
            await asyncio.to_thread(link_panes, target, panes)
        else:
            tasks = await relay_pane_clients(target, server, panes)
        sender = await open_peer(target, f"sender{run}")
        lat, message_ids = await latency(sender, panes, run, args.latency)
        rate = await burst(sender, panes, run, args.burst)
        result = {"typed": lat, "rate": rate}
        if name == "hub":
            result["injected"] = await asyncio.to_thread(injected_after_ms, target, message_ids)
        await sender.close()
        return result
    finally:
        for task in tasks:
            task.cancel()
        target.stop()
        if server.is_alive():
            server.kill()


async def bench(args) -> dict:
    results: dict[str, list[dict]] = {"hub": [], "relay": []}
    for run in range(args.runs):
        for name in (("hub", "relay") if run % 2 == 0 else ("relay", "hub")):
            results[name].append(await one_run(name, run, args))
            print(f"run {run + 1}/{args.runs} {name}: {results[name][-1]}", flush=True)
    return results


def report(results: dict, args) -> str:
    hub, relay = results["hub"], results["relay"]

    def med(rows: list[dict], part: str, key: str | None = None) -> float:
        return statistics.median(r[part][key] if key else r[part] for r in rows)

    rows = []
    for key in ("p50_ms", "p99_ms"):
        h, r = med(hub, "typed", key), med(relay, "typed", key)
        rows.append(f"| send -> typed into the pane, {key[:3]} (ms) | {h:.2f} | {r:.2f} | {h / r:.2f}x |")
    for key in ("p50_ms", "p99_ms"):
        rows.append(f"| send -> `injected` in the trace, {key[:3]} (ms) | {med(hub, 'injected', key):.1f} | - | - |")
    h, r = med(hub, "rate"), med(relay, "rate")
    rows.append(f"| burst over 10 panes (messages/s) | {h:.0f} | {r:.0f} | {h / r:.2f}x |")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        SECTION_START,
        "## Pane delivery (10 tmux panes)",
        "",
        f"Measured {when} by `python -m bench.panes --runs {args.runs} --latency {args.latency} "
        f"--burst {args.burst}`. Median of {args.runs} runs. Each pane runs a program that records the bytes it "
        "receives; a delivery counts as typed when its bytes are in that record. The relay's pane clients use the "
        "same injector (framing, neutralising, one bracketed paste, Enter, read-back) but run in the benchmark's "
        "process, without a store, traces or fingerprint checks; the hub's go through its pane bridge process, "
        "which checks each pane's fingerprint before every paste.",
        "",
        "| measure | hub | relay | hub / relay |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "`injected` comes after the pane is read back and the text is seen on its screen, so it includes the "
        "read-back polling (every 20 ms) that typing alone does not.",
        SECTION_END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=int, default=100, help="one-at-a-time notifies per run")
    parser.add_argument("--burst", type=int, default=300, help="notifies in the burst per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    publish(args.out, report(asyncio.run(bench(args)), args))


if __name__ == "__main__":
    main()
