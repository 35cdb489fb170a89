"""Hub nodes on a real Valkey cluster (3 primaries, a replica each): the hub finds the cluster
from one server's address, routes every write to the primary serving its slot, speaks sharded
pub/sub only, follows slots that move, and loses nothing it accepted when a primary fails
(with --replica-acks 1). The mesh's own tests run on the cluster too (tests/test_mesh.py)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from hub.cli.main import build_parser
from tests.store_cluster import LocalCluster, _ask
from tests.support import eventually, paced, repowire, wait_until
from tests.test_mesh import final_trace, seen
from transports.client import HubRefused


@pytest.fixture
def on_cluster(start_hub, cluster_store):
    """Two hub nodes, c1 and c2, on the cluster (logging what they do, to show how they did it)."""
    return (start_hub("--redis-url", cluster_store.url, "--node", "c1", "--log-level", "info"),
            start_hub("--redis-url", cluster_store.url, "--node", "c2", "--log-level", "info"))


def commandstats(cluster: LocalCluster) -> dict[int, dict[str, int]]:
    """port -> command -> calls, for every running server."""
    stats = {}
    for server in cluster.servers:
        if server.alive:
            rows = server.info("commandstats")
            stats[server.port] = {name.removeprefix("cmdstat_"): int(value.split("calls=")[1].split(",")[0])
                                  for name, value in rows.items() if name.startswith("cmdstat_")}
    return stats


def test_the_hub_finds_the_cluster_from_one_servers_address(start_hub, cluster_store):
    hub = start_hub("--redis-url", cluster_store.url, "--node", "c1")
    store = hub.get("/health").json()["store"]
    assert store == {"engine": "valkey", "version": store["version"], "aof_enabled": True, "embedded": False,
                     "cluster": True, "shards": 3, "replicas": 1, "replica_acks": 0}
    status = repowire(hub, "status")
    assert f"store      valkey {store['version']}  external  cluster of 3 primaries  append-only on" in status.stdout


async def test_a_notify_and_an_ask_across_nodes_on_the_cluster(on_cluster):
    c1, c2 = on_cluster
    async with c1.client("alice") as alice, c2.client("bob") as bob:
        await seen(c1, "bob", status="online", node="c2")
        accepted = await alice.notify("bob", "the build is green")
        assert accepted["state"] == "delivered"
        frame = await bob.receive(10)
        assert (frame["type"], frame["text"], frame["message_id"]) == ("deliver", "the build is green",
                                                                      accepted["message_id"])
        trace = await final_trace(c2, accepted["message_id"], "received")
        assert [(s["stage"], s["node"]) for s in trace["stages"]] == [
            ("accepted", "c1"), ("routed", "c1"), ("sent", "c2"), ("received", "c2")]
        asked = await alice.ask("bob", "may I merge?", timeout_s=30)
        assert (await bob.receive(10))["correlation_id"] == asked["correlation_id"]
        acked = await bob.ack(asked["correlation_id"], "yes")
        assert acked["ask_state"] == "replied" and acked["state"] == "delivered"
        reply = await alice.receive(10)
        assert (reply["kind"], reply["text"]) == ("reply", "yes")


def test_the_hub_speaks_sharded_pub_sub_only_and_writes_to_every_primary(start_hub, cluster_store):
    before = commandstats(cluster_store)
    c1 = start_hub("--redis-url", cluster_store.url, "--node", "c1")
    c2 = start_hub("--redis-url", cluster_store.url, "--node", "c2")

    async def traffic() -> None:
        async with contextlib.AsyncExitStack() as stack:
            peers = [await stack.enter_async_context((c1 if i % 2 else c2).client(f"p{i}")) for i in range(12)]
            for sender, receiver in zip(peers, peers[1:] + peers[:1]):
                accepted = await sender.notify(receiver.name, f"hello {receiver.name}")
                assert accepted["state"] == "delivered"
                assert (await receiver.receive(10))["text"] == f"hello {receiver.name}"
    asyncio.run(traffic())
    after = commandstats(cluster_store)
    calls = {port: {name: count - before.get(port, {}).get(name, 0) for name, count in stats.items()}
             for port, stats in after.items()}
    assert all(stats.get("publish", 0) == 0 for stats in calls.values())   # never broadcast to every server
    assert sum(stats.get("spublish", 0) for stats in calls.values()) > 0
    for primary in cluster_store.primary_servers():   # the peers' keys are spread over the slots
        assert calls[primary.port].get("evalsha", 0) > 0, primary.port
    bus_owner = cluster_store.owner_of("rw:bus")
    assert _ask(bus_owner.port, "PUBSUB", "SHARDNUMSUB", "rw:bus").split()[1] == b"2"   # both nodes hear the bus


async def test_slots_that_move_while_the_nodes_run_are_followed(on_cluster, cluster_store):
    c1, c2 = on_cluster
    async with c1.client("alice") as alice, c2.client("bob") as bob:
        await seen(c1, "bob", status="online", node="c2")
        assert (await alice.notify("bob", "before the move"))["state"] == "delivered"
        assert (await bob.receive(10))["text"] == "before the move"
        # bob's keys (c1's writer is answered MOVED) and the channel that wakes c2 (c2's
        # subscription is dropped by the server) move to other primaries
        for key in (f"rw:peer:{{{bob.peer_id}}}", "rw:wake:c2"):
            owner = cluster_store.owner_of(key)
            target = next(p for p in cluster_store.primary_servers() if p.port != owner.port)
            cluster_store.move_slot(cluster_store.slot_of(key), target)
            assert cluster_store.owner_of(key).port == target.port
        wake_owner = cluster_store.owner_of("rw:wake:c2")
        await eventually(lambda: _ask(wake_owner.port, "PUBSUB", "SHARDNUMSUB", "rw:wake:c2").split()[1:] == [b"1"],
                         10, "c2 to listen on its wake channel's new shard")
        accepted = await alice.notify("bob", "after the move")
        assert accepted["state"] == "delivered"
        assert (await bob.receive(10))["message_id"] == accepted["message_id"]
        trace = await final_trace(c2, accepted["message_id"], "received")
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "sent", "received"]
    assert f"slot {cluster_store.slot_of(f'rw:peer:{{{bob.peer_id}}}')} moved to 127.0.0.1:" in c1.log()


def rejoin_after_failover(cluster: LocalCluster, victim, key: str) -> None:
    """Once a replica serves `key` in place of the killed `victim`, start the victim again: it
    rejoins as that new primary's replica (as a supervisor restarting a crashed server would).
    Until then, with --replica-acks 1 the shard has no replica to confirm writes: it accepts none."""
    wait_until(lambda: any(s.port != victim.port and cluster.slot_of_owner(s, cluster.slot_of(key))
                           for s in cluster.primary_servers()), 30, "a replica to take over", every=0.1)
    cluster.mend()


@pytest.mark.parametrize("replica_acks", [1, 0])
async def test_a_primary_killed_under_traffic(start_hub, cluster_store, fault_report, replica_acks):
    """300 notifies, each retried with its idempotency key until accepted; the primary serving
    the receiver's inbox is killed after 100 and its replica takes over. With --replica-acks 1
    nothing accepted is lost; without, the count is reported. A message whose write the dying
    primary applied but did not answer is sent again by the retry (at least once): counted as
    delivered twice, not asserted (docs/cluster.md)."""
    acks = ("--replica-acks", str(replica_acks))
    c1 = start_hub("--redis-url", cluster_store.url, "--node", "c1", *acks)
    c2 = start_hub("--redis-url", cluster_store.url, "--node", "c2", *acks)
    assert c1.get("/health").json()["store"]["replica_acks"] == replica_acks
    accepted: dict[str, str] = {}   # text -> message id
    received: list[str] = []
    refused = 0
    backoff = {"backoff_s": (0.05, 0.2)}
    async with c1.client("alice", **backoff) as alice, c2.client("bob", **backoff) as bob:
        await seen(c1, "bob", status="online", node="c2")
        inbox = f"rw:inbox:{{{bob.peer_id}}}"
        victim = cluster_store.owner_of(inbox)

        async def collect() -> None:
            while True:
                received.append((await bob.receive(120))["text"])

        async def send_until_accepted(text: str) -> str:
            nonlocal refused
            async for _ in paced(2400, 20):   # a client's attempts, 50 ms apart, for two minutes at most
                try:
                    return (await alice.notify("bob", text, idempotency_key=f"key-{text}"))["message_id"]
                except (HubRefused, TimeoutError, ConnectionError) as exc:
                    # the hub said store_unavailable, or closed the connection with 1013 (try again
                    # later): the client reconnects and sends the same message again
                    refused += 1
                    if isinstance(exc, HubRefused):
                        assert exc.code == "store_unavailable", exc
            raise AssertionError(f"{text} never accepted")

        collecting = asyncio.create_task(collect())
        for i in range(300):
            if i == 100:
                victim.kill()
                rejoining = asyncio.create_task(asyncio.to_thread(rejoin_after_failover, cluster_store, victim, inbox))
            accepted[f"m{i}"] = await send_until_accepted(f"m{i}")
        await rejoining
        # A last message, sent once the failed server has rejoined: bob's inbox hands messages out
        # in order, so once it arrives every earlier message still in the store has arrived too.
        # Without replica acks some accepted messages may be gone: they are counted, not awaited.
        await send_until_accepted("last")
        await eventually(lambda: "last" in received, 60, "the last message at bob")
        if replica_acks:
            await eventually(lambda: set(accepted) <= set(received), 60, "every accepted message at bob")
        collecting.cancel()
    assert cluster_store.owner_of(inbox).port != victim.port   # its replica took over
    lost = set(accepted) - set(received)
    twice = {text for text in received if received.count(text) > 1}
    fault_report({"replica_acks": replica_acks, "accepted": len(accepted), "refused while failing over": refused,
                  "lost": len(lost), "delivered twice": len(twice)})
    if replica_acks:
        assert not lost


def test_the_cluster_in_compose_yaml_is_the_one_the_suite_runs():
    """compose.yaml's `cluster` profile: six cluster servers with append-only files, joined as
    3 primaries with a replica each, and three hub nodes whose command lines the CLI accepts,
    each pointing at one of those servers and waiting for a replica's copy of every write."""
    compose = yaml.safe_load((Path(__file__).resolve().parents[1] / "compose.yaml").read_text())
    services = {name: s for name, s in compose["services"].items() if "cluster" in s.get("profiles", [])}
    servers = {name: s for name, s in services.items() if name.startswith("valkey-c")}
    assert len(servers) == 6
    addresses = set()
    for server in servers.values():
        command = server["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert command[command.index("--appendonly") + 1] == "yes"
        addresses.add(f"{server['networks']['cluster']['ipv4_address']}:6379")
    create = shlex.split(services["cluster-init"]["command"])[2]
    assert "--cluster create" in create and "--cluster-replicas 1" in create
    assert set(re.findall(r"\d+\.\d+\.\d+\.\d+:6379", create)) == addresses
    hubs = {name: s for name, s in services.items() if name.startswith("c-hub")}
    assert len(hubs) == 3
    nodes, ports = set(), set()
    for hub in hubs.values():
        serve = shlex.split(hub["command"])[2].split("&&", 1)[1].split()
        assert serve[:2] == ["repowire", "serve"]
        args = build_parser().parse_args(serve[1:])
        assert args.redis_url.removeprefix("redis://").removesuffix("/0") in addresses
        assert args.replica_acks == 1
        nodes.add(args.node)
        ports.add(args.port)
        assert hub["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]
    assert len(nodes) == len(ports) == 3


def test_replica_acks_the_store_cannot_give_are_refused_at_start(start_hub, cluster_store, tmp_path):
    more = start_hub("--redis-url", cluster_store.url, "--node", "c1", "--replica-acks", "2", expect_ready=False)
    assert more.process.wait(30) == 2
    assert ("--replica-acks 2 asks every write to reach 2 replica(s), but a primary of the cluster at "
            f"{cluster_store.url} has 1 connected: every write would fail.") in more.log()
    embedded = start_hub("--replica-acks", "1", expect_ready=False)
    assert embedded.process.wait(30) == 2
    assert "--replica-acks needs --redis-url" in embedded.log()
