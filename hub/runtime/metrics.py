"""What an operator watches, in Prometheus's text format (`GET /metrics`), labelled by node.

Counters and histograms are updated where things happen (messages and what became of them,
question waits, the store writer's packets, the node bus's lag); gauges are read when the page
is scraped (connections, peers by status, messages waiting in inboxes, open questions, running
jobs). Each hub owns its registry: nothing is process-global, so two hubs in one process (the
tests' case) do not mix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WAITS = (0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
COMMANDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


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
        self._messages = Counter("repowire_messages", "Messages accepted, by kind, and what became of each at once "
                                 "(delivered, queued, failed) or later (replied, answered, expired)",
                                 ["node", "kind", "outcome"], registry=r)
        self._question_wait = Histogram("repowire_question_wait_seconds", "How long a tool-permission question "
                                        "waited for its decision, by who decided", ["node", "decided_by"],
                                        buckets=WAITS, registry=r)
        self._store_write = Histogram("repowire_store_write_seconds", "Round trip of one group-commit packet to "
                                      "the store (sent to last reply)", ["node"], buckets=SECONDS, registry=r)
        self._batch = Histogram("repowire_writer_batch_commands", "Commands in one group-commit packet", ["node"],
                                buckets=COMMANDS, registry=r)
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
        self._message_children: dict[tuple[str, str], Counter] = {}
        self._write_child = self._store_write.labels(node)
        self._batch_child = self._batch.labels(node)

    # ---- where things happen ---------------------------------------------------------------------

    def message(self, kind: str, outcome: str, count: int = 1) -> None:
        child = self._message_children.get((kind, outcome))
        if child is None:
            child = self._message_children[(kind, outcome)] = self._messages.labels(self.node, kind, outcome)
        child.inc(count)

    def question_decided(self, decided_by: str, waited_s: float) -> None:
        self._question_wait.labels(self.node, decided_by).observe(max(0.0, waited_s))

    def store_packet(self, commands: int, seconds: float) -> None:
        """The writer's observer: one packet answered."""
        self._write_child.observe(seconds)
        self._batch_child.observe(commands)

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
