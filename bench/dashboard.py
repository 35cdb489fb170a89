"""The dashboard under load: 500 connected peers and 100 notifies a second, with the page open
in Debian's Chromium (headless, through Playwright).

Each run starts a hub on its embedded store, connects 500 peers that confirm what they get,
opens the signed-in page, then sends notifies to random peers at a steady rate for the run's
length. Measured:

- event lag: from just before the notify is sent (REST) to its row being in the page (a
  MutationObserver in the page notes when each message's row first appears), p50 and p99;
- the page: how many message and peer rows and DOM elements it holds at the end (capped
  lists must keep these flat), long tasks (> 50 ms on the main thread), and the JS heap;
- the hub's CPU per message, with and without the page open (same peers, same rate), so the
  cost of the event stream and its subscriber shows on its own.

The yardstick for the hub's share is the bare websockets relay of bench/run.py: its CPU per
message relayed at the same rate in the same run. Median over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
from playwright.async_api import async_playwright
from websockets.exceptions import ConnectionClosed

from bench.run import ROOT, Target, cpu_seconds, open_peer, publish, start_hub, start_relay

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
                 "--enable-precise-memory-info"]
WATCH_ROWS = """() => {
  window.__seen = {};
  new MutationObserver((changes) => {
    const now = Date.now();
    for (const change of changes) for (const node of change.addedNodes) {
      const id = node.dataset && node.dataset.traceId;
      if (id && !(id in window.__seen)) window.__seen[id] = now;
    }
  }).observe(document.getElementById("message-list"), { childList: true });
  window.__long = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
    .observe({ type: "longtask" });
}"""


async def confirm_forever(ws) -> None:
    """A peer that confirms every delivery, as agents do."""
    with contextlib.suppress(ConnectionClosed):
        await _confirm(ws)


async def _confirm(ws) -> None:
    async for raw in ws:
        frame = orjson.loads(raw)
        if frame.get("type") == "deliver":
            await ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"],
                                        "status": "received"}).decode())


async def paced_notifies(http: httpx.AsyncClient, names: list[str], rate: int, seconds: float) -> dict[str, int]:
    """Send `rate` notifies a second for `seconds`; returns message id -> when it was sent (ms)."""
    sent: dict[str, int] = {}
    interval = 1 / rate
    start = time.monotonic()
    pending = set()

    async def one(i: int) -> None:
        at = int(time.time() * 1000)
        response = await http.post("/messages", json={"to": random.choice(names), "text": f"load {i}: build passed"})
        sent[response.json()["message_id"]] = at

    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return sent


async def load(target: Target, peers: int, rate: int, seconds: float, with_page: bool, browser) -> dict:
    names = [f"agent-{i:03d}" for i in range(peers)]
    sockets = [await open_peer(target, name) for name in names]
    readers = [asyncio.create_task(confirm_forever(ws)) for ws in sockets]
    base = target.url.replace("ws://", "http://").removesuffix("/ws")
    page = context = None
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {target.token}"},
                                     timeout=30) as http:
            if with_page:
                link = (await http.post("/dashboard/links")).json()["url"]
                context = await browser.new_context(viewport={"width": 1400, "height": 900})
                page = await context.new_page()
                await page.goto(link)
                await page.wait_for_selector("#live-status[data-state=live]")
                await until(page, "(n) => document.querySelectorAll('#peer-list .peer').length >= n", min(peers, 300))
                await page.evaluate(WATCH_ROWS)
            hub_proc, store_proc = target.procs()
            cpu_before = cpu_seconds(hub_proc), cpu_seconds(store_proc)
            sent = await paced_notifies(http, names, rate, seconds)
            result = {"messages": len(sent)}
            if page is not None:
                last = max(sent, key=sent.get)
                await until(page, "(id) => id in window.__seen", last)
                seen = await page.evaluate("window.__seen")
                lags = sorted(seen[m] - at for m, at in sent.items() if m in seen)
                facts = await page.evaluate("""() => ({
                    rows: document.querySelectorAll('#message-list .message').length,
                    peer_rows: document.querySelectorAll('#peer-list .peer').length,
                    elements: document.getElementsByTagName('*').length,
                    long_tasks: window.__long.length, long_ms: window.__long.reduce((a, b) => a + b, 0),
                    heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null })""")
                result.update(facts, shown=len(lags), lag_p50_ms=lags[len(lags) // 2],
                              lag_p99_ms=lags[int(len(lags) * 0.99)])
            result["hub_cpu_ms_per_msg"] = (cpu_seconds(hub_proc) - cpu_before[0]) * 1000 / len(sent)
            result["store_cpu_ms_per_msg"] = (cpu_seconds(store_proc) - cpu_before[1]) * 1000 / len(sent)
            return result
    finally:
        if context is not None:
            await context.close()
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()


async def until(page, predicate: str, arg, timeout_s: float = 30) -> None:
    """Poll a predicate in the page (the page's CSP forbids the eval that wait_for_function uses)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied {predicate}")
        await asyncio.sleep(0.05)


async def relay_cpu(peers: int, rate: int, seconds: float) -> float:
    """The bare relay's CPU per message for the same peers and rate (its notify frames)."""
    relay = start_relay()
    try:
        names = [f"agent-{i:03d}" for i in range(peers)]
        sockets = [await open_peer(relay, name) for name in names]
        sender = await open_peer(relay, "sender")
        drains = [asyncio.create_task(drain(ws)) for ws in [*sockets, sender]]
        proc, _ = relay.procs()
        before = cpu_seconds(proc)
        start = time.monotonic()
        total = int(rate * seconds)
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await sender.send(orjson.dumps({"type": "notify", "id": str(i), "to": random.choice(names),
                                            "text": f"load {i}: build passed"}).decode())
        await asyncio.sleep(0.5)
        used = (cpu_seconds(proc) - before) * 1000 / total
        for task in drains:
            task.cancel()
        for ws in [*sockets, sender]:
            await ws.close()
        return used
    finally:
        relay.stop()


async def drain(ws) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def one_run(args, browser) -> dict:
    hub = start_hub()
    try:
        with_page = await load(hub, args.peers, args.rate, args.seconds, True, browser)
        without = await load(hub, args.peers, args.rate, args.seconds, False, browser)
    finally:
        hub.stop()
    return {"with_page": with_page, "without": without, "relay_cpu_ms_per_msg": await relay_cpu(args.peers, args.rate,
                                                                                                 args.seconds)}


async def bench(args) -> list[dict]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return [await one_run(args, browser) for _ in range(args.runs)]
        finally:
            await browser.close()


def report(runs: list[dict], args) -> str:
    def med(path: str) -> float:
        values = []
        for run in runs:
            value = run
            for key in path.split("."):
                value = value[key]
            values.append(value)
        return statistics.median(values)

    when = datetime.now(UTC).strftime("%Y-%m-%d")
    return "\n".join([
        "<!-- dashboard -->",
        f"## Dashboard under load ({when}, `python -m bench.dashboard --runs {args.runs}`)",
        "",
        f"{args.peers} connected peers confirming what they get, {args.rate} notifies a second for {args.seconds:g} s "
        "(REST, to random peers), the signed-in page open in Debian's Chromium (headless). Median of "
        f"{args.runs} runs.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| event lag, notify sent → its row in the page, p50 (ms) | {med('with_page.lag_p50_ms'):.0f} |",
        f"| event lag p99 (ms) | {med('with_page.lag_p99_ms'):.0f} |",
        f"| messages shown / sent | {med('with_page.shown'):.0f} / {med('with_page.messages'):.0f} |",
        f"| message rows in the page at the end (cap 200) | {med('with_page.rows'):.0f} |",
        f"| peer rows in the page (cap 300 of {args.peers}) | {med('with_page.peer_rows'):.0f} |",
        f"| DOM elements at the end | {med('with_page.elements'):.0f} |",
        f"| long tasks (> 50 ms) during the run / their total (ms) | {med('with_page.long_tasks'):.0f} / "
        f"{med('with_page.long_ms'):.0f} |",
        f"| JS heap at the end (MiB) | {med('with_page.heap_mb'):.1f} |",
        f"| hub CPU per message, page open (ms) | {med('with_page.hub_cpu_ms_per_msg'):.3f} |",
        f"| hub CPU per message, no page (ms) | {med('without.hub_cpu_ms_per_msg'):.3f} |",
        f"| store CPU per message, page open / no page (ms) | {med('with_page.store_cpu_ms_per_msg'):.3f} / "
        f"{med('without.store_cpu_ms_per_msg'):.3f} |",
        f"| bare websockets relay CPU per message, same peers and rate (ms) | {med('relay_cpu_ms_per_msg'):.3f} |",
        "",
        "The hub's CPU per message includes the REST call that sends it, the delivery, the receipt and the "
        "trace (whose stages go into the event stream the page follows, at most one entry per 5 ms, or 1 ms for one that brings a new row); "
        "the relay only forwards a frame. Rows are redrawn once per animation frame, so the lag includes up to one frame.",
        "<!-- /dashboard -->",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=100, help="notifies a second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    runs = asyncio.run(bench(args))
    print(orjson.dumps(runs, option=orjson.OPT_INDENT_2).decode())
    publish(args.out, report(runs, args))


if __name__ == "__main__":
    main()
