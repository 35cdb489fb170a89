"""Operating the hub: `GET /metrics` in Prometheus's text format (read back with
prometheus_client's own parser), labelled by node, after real traffic; JSON log lines."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.runtime.metrics import COMMANDS, SECONDS, HubMetrics
from tests.support import eventually, repowire, wait_until


def samples(hub, token: str = "hub") -> dict[tuple[str, tuple], float]:
    """Every sample of the page: (name, sorted labels) -> value."""
    response = hub.get("/metrics", token=token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")   # the exposition format
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_messages_connections_inboxes_and_store_writes_by_node(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        async with hub.client("carol"):
            pass   # carol is offline: what is sent to her waits
        await alice.notify("bob", "one")
        await alice.notify("bob", "two")
        await alice.notify("carol", "later")
        asked = await alice.ask("bob", "ok?", timeout_s=30)
        for _ in range(3):
            await bob.receive(10)
        await bob.ack(asked["correlation_id"], "yes")
        await alice.receive(10)
        found = await eventually(lambda: asyncio.to_thread(
            lambda: (f := samples(hub)) and value(f, "repowire_messages_total", node="node-1", kind="ask",
                                                  outcome="replied") == 1 and f), 10, "the reply counted")
    node = {"node": "node-1"}
    assert value(found, "repowire_messages_total", kind="notify", outcome="delivered", **node) == 2
    assert value(found, "repowire_messages_total", kind="notify", outcome="queued", **node) == 1
    assert value(found, "repowire_messages_total", kind="ask", outcome="delivered", **node) == 1
    assert value(found, "repowire_connections", kind="peer", **node) == 2
    assert value(found, "repowire_peers", status="online", **node) == 2
    assert value(found, "repowire_peers", status="offline", **node) == 1
    assert value(found, "repowire_inbox_messages", **node) == 1 and value(found, "repowire_inbox_deepest", **node) == 1
    assert value(found, "repowire_store_write_seconds_count", **node) >= 4
    assert value(found, "repowire_writer_batch_commands_sum", **node) >= value(
        found, "repowire_writer_batch_commands_count", **node) >= 4
    assert value(found, "repowire_open_questions", **node) == 0 and value(found, "repowire_running_jobs", **node) == 0


async def test_an_agent_token_may_not_read_metrics(hub):
    async with hub.client("alice") as alice:
        refused = hub.get("/metrics", token=alice.token)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert hub.get("/metrics", token=None).status_code == 401


async def test_question_waits_are_measured_by_who_decided(hub):
    async with hub.client("agent") as agent, hub.client("ana", role="person") as ana:
        waiting = asyncio.ensure_future(agent.ask_blocking("Bash", {"command": "ls"}, "t1", hook_timeout_s=60,
                                                           timeout=30))
        shown = await ana.next_event(10)
        await ana.decide(shown["correlation_id"], "allow", content_hash=shown["content_hash"])
        _, decision = await waiting
        assert decision["decision"] == "allow"
        found = samples(hub)
    assert value(found, "repowire_question_wait_seconds_count", node="node-1", decided_by="human") == 1
    assert value(found, "repowire_open_questions", node="node-1") == 0


async def test_two_nodes_label_their_own_metrics_and_measure_the_bus(start_hub, shared_store):
    lease = ("--node-lease", "1.5")   # the lease is renewed, and a tick sent, every 0.5 s
    n1 = start_hub("--redis-url", shared_store, "--node", "n1", *lease)
    n2 = start_hub("--redis-url", shared_store, "--node", "n2", *lease)
    found = await eventually(lambda: asyncio.to_thread(
        lambda: (f := samples(n2)) and value(f, "repowire_bus_lag_seconds_count", node="n2", from_node="n1") >= 2
        and f), 15, "ticks from n1 heard on n2")
    assert value(found, "repowire_bus_lag_seconds_sum", node="n2", from_node="n1") < 2
    assert not any(dict(labels).get("node") == "n1" for _, labels in found)
    assert value(samples(n1), "repowire_connections", node="n1", kind="peer") == 0


def test_json_logs_are_one_object_per_line_with_the_node(start_hub):
    hub = start_hub("--log-format", "json", "--log-level", "info", "--node", "east")
    hub.stop()
    lines = [line for line in hub.log().splitlines() if line.startswith("{")]
    entries = [orjson.loads(line) for line in lines]
    assert entries and all(set(e) >= {"ts", "level", "logger", "node", "message"} for e in entries)
    assert all(e["node"] == "east" and e["ts"].endswith("Z") for e in entries)
    assert any(e["logger"] == "hub.server.app" and e["message"].startswith("hub east ready") for e in entries)
    assert any(e["logger"].startswith("uvicorn") for e in entries)   # uvicorn's own lines are JSON too
    wait_until(lambda: hub.process.poll() is not None, 10, "the hub to stop")


def test_the_grafana_dashboard_asks_only_for_metrics_the_hub_exports(hub):
    """docs/grafana-dashboard.json: every series its queries name is one the hub's page describes
    (a family, or its _total, _bucket, _sum or _count series)."""
    families = {f.name for f in text_string_to_metric_families(hub.get("/metrics").text)}
    series = families | {f"{name}{suffix}" for name in families for suffix in ("_total", "_bucket", "_sum", "_count")}
    dashboard = orjson.loads((Path(__file__).parents[1] / "docs" / "grafana-dashboard.json").read_bytes())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = set(re.findall(r"\brepowire_[a-z_]+", " ".join(exprs)))
    assert len(named) == 12 and named <= series, named - series


def test_status_all_nodes_on_the_embedded_store_shows_the_one_node(hub):
    shown = repowire(hub, "status", "--all-nodes", "--json")
    assert shown.returncode == 0, shown.stderr
    (node,) = orjson.loads(shown.stdout)["nodes"]
    assert (node["node"], node["live"], node["this"], node["url"], node["pid"]) == ("node-1", True, True, hub.url,
                                                                                     hub.pid)


def test_the_counts_kept_on_the_event_loop_read_out_as_prometheus_clients_own_would():
    """Messages and store packets are counted in plain numbers (hub.runtime.metrics.HotPath);
    their exposition matches prometheus_client's own counter and histograms fed the same values,
    including values on a bucket's bound and above the last one (its `_created` series aside)."""
    ours = HubMetrics("n1")
    reference = CollectorRegistry()
    messages = Counter("repowire_messages", "x", ["node", "kind", "outcome"], registry=reference)
    write = Histogram("repowire_store_write_seconds", "x", ["node"], buckets=SECONDS, registry=reference)
    batch = Histogram("repowire_writer_batch_commands", "x", ["node"], buckets=COMMANDS, registry=reference)
    for seconds, commands, outcome in [(0.0001, 1, "delivered"), (0.0005, 2, "queued"), (0.0007, 3, "delivered"),
                                       (5.0, 2048, "failed"), (7.5, 5000, "delivered")]:
        ours.store_packet(commands, seconds)
        ours.message("notify", outcome)
        write.labels("n1").observe(seconds)
        batch.labels("n1").observe(commands)
        messages.labels("n1", "notify", outcome).inc()

    def series(registry: CollectorRegistry) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(generate_latest(registry).decode())
                if family.name in ("repowire_messages", "repowire_store_write_seconds",
                                   "repowire_writer_batch_commands")
                for s in family.samples if not s.name.endswith("_created")}

    expected = series(reference)
    assert len(expected) == 3 + 2 * 2 + (len(SECONDS) + 1) + (len(COMMANDS) + 1)   # totals; counts, sums; buckets
    assert series(ours.registry) == expected
