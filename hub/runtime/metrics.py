"""What an operator watches, in Prometheus's text format (`GET /metrics`), labelled by node.

Counters and histograms are updated where things happen (messages and what became of them,
question waits, the store writer's packets, the node bus's lag); gauges are read when the page
is scraped (connections, peers by status, messages waiting in inboxes, open questions, running
jobs). Each hub owns its registry: nothing is process-global, so two hubs in one process (the
tests' case) do not mix.

The three counted on every message and every store packet are plain numbers the event loop adds
to (`HotPath`), turned into metric families when the page is scraped: prometheus_client's own
counters take a lock on every increment, a few microseconds a message that one thread does not
need.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = CONTENT_TYPE_LATEST
SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAITS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COMMANDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Buckets:
    """One histogram series counted in plain numbers: `observe` adds to the first bucket whose
    upper bound holds the value, as Prometheus's `le` buckets do."""
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)   # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, observations at or below it) for each bound and +Inf."""
        running, rows = 0, list[tuple[str, float]]()
        for bound, count in zip((*self.bounds, math.inf), self.counts):
            running += count
            rows.append((floatToGoString(bound), running))
        return rows


class HotPath(Collector):
    """The metrics counted on every message and store packet, read at scrape time."""

    def __init__(self, node: str):
        self.node = node
        self.messages: dict[tuple[str, str], int] = {}   # (kind, outcome) -> count
        self.store_write = Buckets(SECONDS)
        self.batch = Buckets(COMMANDS)

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily("repowire_messages", "Messages accepted, by kind, and what became of "
                                       "each at once (delivered, queued, failed) or later (replied, answered, "
                                       "expired)", labels=["node", "kind", "outcome"])
        for (kind, outcome), count in self.messages.items():
            messages.add_metric([self.node, kind, outcome], count)
        yield messages
        for name, doc, series in (
                ("repowire_store_write_seconds", "Round trip of one group-commit packet to the store (sent to "
                 "last reply)", self.store_write),
                ("repowire_writer_batch_commands", "Commands in one group-commit packet", self.batch)):
            family = HistogramMetricFamily(name, doc, labels=["node"])
            family.add_metric([self.node], series.cumulative(), series.total)
            yield family


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The gauges' values at scrape time."""
    peer_connections: int
    dashboards: int
    peers_by_status: dict[str, int]
    inbox_messages: int
    inbox_deepest: int
    open_questions: int
    running_jobs: int


class HubMetrics:
    def __init__(self, node: str):
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._hot = HotPath(node)
        r.register(self._hot)
        self._question_wait = Histogram("repowire_question_wait_seconds", "How long a tool-permission question "
                                        "waited for its decision, by who decided", ["node", "decided_by"],
                                        buckets=WAITS, registry=r)
        self._bus_lag = Histogram("repowire_bus_lag_seconds", "From another node's tick on the node bus to this "
                                  "node hearing it (includes the clocks' difference)", ["node", "from_node"],
                                  buckets=SECONDS, registry=r)
        self._connections = Gauge("repowire_connections", "Open WebSocket connections, by kind", ["node", "kind"],
                                  registry=r)
        self._peers = Gauge("repowire_peers", "Peers this node knows, by status", ["node", "status"], registry=r)
        self._inbox = Gauge("repowire_inbox_messages", "Messages waiting in the inboxes of the peers this node "
                            "knows", ["node"], registry=r)
        self._deepest = Gauge("repowire_inbox_deepest", "The longest inbox among them", ["node"], registry=r)
        self._questions = Gauge("repowire_open_questions", "Tool-permission questions waiting for a decision",
                                ["node"], registry=r)
        self._jobs = Gauge("repowire_running_jobs", "Job runs this node has in hand", ["node"], registry=r)

    # ---- where things happen ---------------------------------------------------------------------

    def message(self, kind: str, outcome: str, count: int = 1) -> None:
        counts = self._hot.messages
        counts[kind, outcome] = counts.get((kind, outcome), 0) + count

    def question_decided(self, decided_by: str, waited_s: float) -> None:
        self._question_wait.labels(self.node, decided_by).observe(max(0.0, waited_s))

    def store_packet(self, commands: int, seconds: float) -> None:
        """The writer's observer: one packet answered."""
        self._hot.store_write.observe(seconds)
        self._hot.batch.observe(commands)

    def bus_tick(self, from_node: str, lag_s: float) -> None:
        self._bus_lag.labels(self.node, from_node).observe(max(0.0, lag_s))

    # ---- the page --------------------------------------------------------------------------------

    async def page(self, snapshot: Callable[[], Awaitable[Snapshot]]) -> bytes:
        """The exposition, after reading the gauges."""
        now = await snapshot()
        self._connections.labels(self.node, "peer").set(now.peer_connections)
        self._connections.labels(self.node, "dashboard").set(now.dashboards)
        for status, count in now.peers_by_status.items():
            self._peers.labels(self.node, status).set(count)
        self._inbox.labels(self.node).set(now.inbox_messages)
        self._deepest.labels(self.node).set(now.inbox_deepest)
        self._questions.labels(self.node).set(now.open_questions)
        self._jobs.labels(self.node).set(now.running_jobs)
        return generate_latest(self.registry)
