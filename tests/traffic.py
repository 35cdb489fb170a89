"""Steady traffic for the fault tests: one sender alternating notifies (to a reader) and asks
(to a replier) at a fixed rate, each with an idempotency key and retried until accepted, while
faults are injected; then the counts that show whether anything accepted was lost or seen twice.

Clients are the real SDK with automatic reconnect; a send that fails (connection gone, store
down, hub stopping) is retried with the same key, as a careful client would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed

from tests.support import eventually, paced
from transports.client import HubClient, HubRefused

RETRYABLE = ("store_unavailable", "shutting_down", "rate_limited")
FINAL_NOTIFY = {"received", "injected", "failed", "expired"}
FINAL_ASK = {"acked", "replied", "answered", "expired", "failed"}


@dataclass
class Counts:
    planned: int
    accepted_notifies: dict[int, str] = field(default_factory=dict)   # index -> message id
    accepted_asks: dict[int, str] = field(default_factory=dict)       # index -> correlation id
    refused_while_down: int = 0
    retries: int = 0
    notifies_seen: list[str] = field(default_factory=list)            # by the reader, in order
    replies_seen: list[str] = field(default_factory=list)             # correlation ids, by the sender
    asks_seen: list[str] = field(default_factory=list)                # by the replier

    def report(self) -> dict:
        accepted = len(self.accepted_notifies) + len(self.accepted_asks)
        return {"planned": self.planned, "accepted": accepted, "retries": self.retries,
                "refused (store_unavailable etc.)": self.refused_while_down,
                "lost": self.lost(), "duplicates seen": self.duplicates()}

    def lost(self) -> int:
        return (len(set(self.accepted_notifies.values()) - set(self.notifies_seen))
                + len(set(self.accepted_asks.values()) - set(self.replies_seen)))

    def duplicates(self) -> int:
        return sum(len(seen) - len(set(seen)) for seen in (self.notifies_seen, self.replies_seen, self.asks_seen))


async def _until_accepted(send: Callable[[], Awaitable[dict]], counts: Counts, deadline: float) -> dict:
    """Send until accepted, with the same idempotency key each time, until the deadline."""
    async def attempt() -> dict | None:
        try:
            return await send()
        except HubRefused as exc:
            if exc.code not in RETRYABLE:
                raise
            counts.refused_while_down += 1
        except (TimeoutError, ConnectionError, ConnectionClosed, OSError):
            pass
        counts.retries += 1
        return None
    return await eventually(attempt, max(0.0, deadline - time.monotonic()), "a message to be accepted")


async def _read(client: HubClient, seen: list[str], key: str) -> None:
    while True:
        frame = await client.receive()
        seen.append(frame[key])


async def _reply(replier: HubClient, counts: Counts, deadline: float) -> None:
    while True:
        ask = await replier.receive()
        if ask.get("kind") != "ask":
            continue
        cid = ask["correlation_id"]
        counts.asks_seen.append(cid)
        try:
            await _until_accepted(lambda: replier.ack(cid, f"ok {ask['text']}", idempotency_key=f"ack-{cid}"),
                                  counts, deadline)
        except HubRefused as exc:
            if exc.code != "already_closed":   # an ack whose answer a crash lost, sent again
                raise


async def run_traffic(sender: HubClient, reader: HubClient, replier: HubClient, *, total: int, rate: float,
                      faults: dict[int, Callable[[], Awaitable[None]]], settle_s: float = 60.0) -> Counts:
    """Send `total` messages at `rate` a second (even indexes notify the reader, odd ones ask the
    replier); before the message with index i, run faults[i] (it may block: sending waits)."""
    counts = Counts(total)
    deadline = time.monotonic() + total / rate + settle_s
    workers = [asyncio.create_task(_read(reader, counts.notifies_seen, "message_id")),
               asyncio.create_task(_read(sender, counts.replies_seen, "correlation_id")),
               asyncio.create_task(_reply(replier, counts, deadline))]
    try:
        async for i in paced(total, rate):
            if i in faults:
                await faults[i]()
            if i % 2 == 0:
                done = await _until_accepted(lambda: sender.notify(reader.name, f"n{i}", idempotency_key=f"m{i}"),
                                             counts, deadline)
                counts.accepted_notifies[i] = done["message_id"]
            else:
                done = await _until_accepted(lambda: sender.ask(replier.name, f"a{i}", timeout_s=120,
                                                                queue_if_offline=True, idempotency_key=f"m{i}"),
                                             counts, deadline)
                counts.accepted_asks[i] = done["correlation_id"]
        def settled() -> bool:
            for worker in workers:
                if worker.done():
                    worker.result()   # a reader or the replier failed: say why
            return not counts.lost()
        try:
            await eventually(settled, max(0.0, deadline - time.monotonic()), "every accepted message to arrive")
        except AssertionError:
            pass   # the counts say what is missing
        return counts
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def final_stages(trace: dict) -> list[str]:
    finals = FINAL_ASK if trace["kind"] == "ask" else FINAL_NOTIFY
    return [s["stage"] for s in trace["stages"] if s["stage"] in finals]
