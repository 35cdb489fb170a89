"""Several hub nodes on one shared store: routing, presence, asks, questions and sign-outs
across nodes, a node that dies, and a node name used twice. Every node is a real hub process
on a real Valkey (`shared_store`): one server, and a cluster."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from hub.core.ids import new_peer_id
from hub.core.peers import PeerRecord
from hub.store.state import StoreState
from tests.support import eventually, person_watching, repowire, store_client, wait_until
from tests.test_dashboard_feed import as_dashboard, signed_in_browser
from tests.test_questions import ask_body, pending_question
from transports.client import HubRefused


@pytest.fixture(params=["one server", "cluster"])
def shared_store(request) -> str:
    """Every test here runs on one shared Valkey server and on a Valkey cluster (3 primaries, 3
    replicas): the nodes of a mesh behave the same on either."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_store").url
    return request.getfixturevalue("store_process").url


@pytest.fixture
def mesh(start_hub, shared_store):
    """Two hub nodes, n1 and n2, on one store."""
    return (start_hub("--redis-url", shared_store, "--node", "n1"),
            start_hub("--redis-url", shared_store, "--node", "n2"))


def peer_on(hub, name: str, **expected) -> dict | None:
    peer = hub.peers().get(name)
    return peer if peer is not None and all(peer.get(k) == v for k, v in expected.items()) else None


async def seen(hub, name: str, what: str = "", **expected) -> dict:
    return await eventually(lambda: asyncio.to_thread(peer_on, hub, name, **expected), 10,
                            what or f"{name} {expected} as seen from {hub.url}")


async def final_trace(hub, trace_id: str, final: str) -> dict:
    return await eventually(lambda: asyncio.to_thread(
        lambda: (t := hub.get(f"/traces/{trace_id}").json()) and t.get("final") == final and t), 10, f"trace {final}")


async def test_a_notify_from_node_1_reaches_a_peer_on_node_2_with_each_stage_by_its_node(mesh):
    n1, n2 = mesh
    async with n1.client("alice") as alice, n2.client("bob") as bob:
        await seen(n1, "bob", status="online", node="n2")
        await seen(n2, "alice", status="online", node="n1")
        accepted = await alice.notify("bob", "the build is green")
        assert accepted["state"] == "delivered"
        frame = await bob.receive(10)
        assert frame == {"type": "deliver", "kind": "notify", "seq": 1, "message_id": accepted["message_id"],
                         "text": "the build is green", "sent_at": frame["sent_at"],
                         "from": {"peer_id": alice.peer_id, "name": "alice", "circle": "default"}}
        trace = await final_trace(n2, accepted["message_id"], "received")
    stages = [(s["stage"], s["node"]) for s in trace["stages"]]
    assert stages == [("accepted", "n1"), ("routed", "n1"), ("sent", "n2"), ("received", "n2")]
    assert trace["stages"][1]["via"] == "n2"


async def test_an_ask_across_nodes_gets_its_reply_and_a_waiter_on_the_asking_node_hears_at_once(mesh):
    n1, n2 = mesh
    async with n1.client("alice") as alice, n2.client("bob") as bob:
        await seen(n1, "bob", status="online", node="n2")
        accepted = await alice.ask("bob", "may I merge #42?", timeout_s=60)
        assert accepted["state"] == "delivered"
        cid = accepted["correlation_id"]
        ask = await bob.receive(10)
        assert ask["kind"] == "ask" and ask["correlation_id"] == cid and ask["from"]["peer_id"] == alice.peer_id
        await seen(n2, "bob", open_asks=1)
        async with httpx.AsyncClient(base_url=n1.url, headers={"Authorization": f"Bearer {alice.token}"},
                                     timeout=30) as client:
            waiting = asyncio.ensure_future(client.post(f"/asks/{cid}/wait", json={"timeout_s": 30}))
            held, _ = await asyncio.wait({waiting}, timeout=0.5)
            assert not held   # the long-poll is held on n1 while no reply exists
            acked = await bob.ack(cid, "yes, merge")
            assert acked["ask_state"] == "replied" and acked["state"] == "delivered"
            reply = await alice.receive(10)
            assert reply == {"type": "deliver", "kind": "reply", "seq": 1, "message_id": acked["message_id"],
                             "correlation_id": cid, "text": "yes, merge", "sent_at": reply["sent_at"],
                             "from": {"peer_id": bob.peer_id, "name": "bob", "circle": "default"}}
            waited = (await asyncio.wait_for(waiting, 10)).json()
        assert waited["state"] == "replied" and waited["result"]["text"] == "yes, merge"
        await seen(n1, "bob", open_asks=0)
        trace = await final_trace(n1, cid, "replied")
    assert [(s["stage"], s["node"]) for s in trace["stages"]] == [
        ("accepted", "n1"), ("routed", "n1"), ("sent", "n2"), ("received", "n2"), ("replied", "n2"),
        ("sent", "n1"), ("received", "n1")]


async def test_presence_changes_are_seen_on_every_node(mesh, start_hub, shared_store):
    n1, n2 = mesh
    n3 = start_hub("--redis-url", shared_store, "--node", "n3")
    async with n2.client("bob") as bob:
        for node in (n1, n3):
            await seen(node, "bob", status="online", node="n2")
        await bob.set_presence("busy")
        for node in (n1, n3):
            await seen(node, "bob", status="busy")
        await bob.bye("session_ended")
    for node in (n1, n2, n3):
        await seen(node, "bob", status="offline", status_reason="session_ended")
    deleted = n3.http().delete(f"/peers/{bob.peer_id}")
    assert deleted.status_code == 200
    for node in (n1, n2):
        await eventually(lambda: asyncio.to_thread(lambda: "bob" not in node.peers()), 10, "bob deleted everywhere")


async def _held_on_n1_answered_on_n2(n1, n2, browser) -> tuple[httpx.Response, dict]:
    async with httpx.AsyncClient(base_url=n1.url, headers={"Authorization": f"Bearer {n1.token}"},
                                 timeout=30) as hook:
        held = asyncio.ensure_future(hook.post("/questions/ask-blocking", json=ask_body("toolu_mesh", hook_timeout_s=60)))
        question = await pending_question(n2, "toolu_mesh")
        assert not held.done()
        answered = await asyncio.to_thread(
            n2.post, f"/questions/{question['correlation_id']}/answer",
            {"decision": "allow", "content_hash": question["content_hash"], "reason": "fine from n2"},
            token=None, headers=as_dashboard(browser))
        assert answered.status_code == 200
        response = await asyncio.wait_for(held, 10)
    return response, question


async def test_a_question_held_on_node_1_is_answered_through_the_dashboard_of_node_2(mesh):
    n1, n2 = mesh
    browser = await asyncio.to_thread(signed_in_browser, n2)
    # the person watches on node 2 only: node 1 hears of them through the store
    with person_watching(n2):
        response, question = await _held_on_n1_answered_on_n2(n1, n2, browser)
    qid = question["correlation_id"]
    assert response.json() == {"correlation_id": qid, "decision": "allow", "answered_by": "human",
                               "reason": "fine from n2"}
    trace = await final_trace(n1, qid, "answered")
    assert [(s["stage"], s["node"]) for s in trace["stages"]] == [("accepted", "n1"), ("routed", "n1"),
                                                                   ("answered", "n2")]


def test_signing_out_on_one_node_ends_the_session_on_every_node(mesh):
    n1, n2 = mesh
    browser = signed_in_browser(n1)
    assert n2.get("/peers", token=None, headers=as_dashboard(browser)).status_code == 200
    assert n1.post("/dashboard/logout", token=None, headers=as_dashboard(browser)).status_code == 204
    wait_until(lambda: n2.get("/peers", token=None, headers=as_dashboard(browser)).status_code == 401, 10,
               "n2 to refuse the ended session")


async def test_a_node_that_dies_leaves_its_peers_offline_after_the_lease_and_they_get_their_queue_elsewhere(
        start_hub, shared_store):
    lease = ("--node-lease", "1.5")
    n1 = start_hub("--redis-url", shared_store, "--node", "n1", *lease)
    n2 = start_hub("--redis-url", shared_store, "--node", "n2", *lease)
    async with n1.client("bob", reconnect=False) as bob, n2.client("alice") as alice:
        await seen(n2, "bob", status="online", node="n1")
        asked = await alice.ask("bob", "still there?", timeout_s=3)
        await bob.receive(10)
        mine = await bob.ask("alice", "and you?", timeout_s=3)   # n1 opens it and tracks its deadline
        await alice.receive(10)
        n1.kill()
        lost = await seen(n2, "bob", "n2 to take bob offline after n1's lease", status="offline")
        assert lost["status_reason"] == "node_lost" and lost["node"] == "n1"
        expired = await alice.receive(10)   # n2 opened the ask: its deadline fires there
        assert expired["kind"] == "expired" and expired["correlation_id"] == asked["correlation_id"]
        await final_trace(n2, mine["correlation_id"], "expired")   # n2 adopted n1's deadline
        queued = await alice.notify("bob", "while you were away")
        assert queued["state"] == "queued"
        async with n2.client("bob", token=bob.token, hub_token=None) as back:
            assert back.peer_id == bob.peer_id
            frames = {f["kind"]: f for f in [await back.receive(10), await back.receive(10)]}
            await seen(n2, "bob", status="online", node="n2")
    assert frames["notify"]["message_id"] == queued["message_id"]
    assert frames["expired"]["correlation_id"] == mine["correlation_id"]
    trace = await final_trace(n2, queued["message_id"], "received")
    assert [(s["stage"], s["node"]) for s in trace["stages"]] == [
        ("accepted", "n2"), ("routed", "n2"), ("queued", "n2"), ("sent", "n2"), ("received", "n2")]


async def test_a_peer_this_node_has_not_heard_of_yet_is_looked_up_in_the_store(mesh, shared_store):
    """A peer that joined through another node a moment ago: its record is in the store, the
    node bus notice has not reached this node (here: it never comes). Messages to it by name or
    id still go through; a name nobody has is still `peer_not_found`."""
    n1, _ = mesh
    now = int(time.time() * 1000)
    late = PeerRecord(peer_id=new_peer_id(), name="latecomer", circle="default", role="agent",
                      token_digest="ab" * 32, created_at=now, last_seen=now)
    client = store_client(shared_store)
    try:
        for command in StoreState(client, None).save_peer_cmds(late):   # no mesh node: no bus notice
            await client.execute_command(*command)
    finally:
        await client.aclose()
    assert "latecomer" not in n1.peers()
    sent = n1.post("/messages", {"to": "latecomer", "text": "welcome"})
    assert (sent.status_code, sent.json()["state"]) == (202, "queued")
    async with n1.client("alice") as alice:
        asked = await alice.ask(late.peer_id, "settled in?", queue_if_offline=True)
        assert asked["state"] == "queued"
        with pytest.raises(HubRefused) as nobody:
            await alice.notify("nobody-at-all", "hello?")
    assert nobody.value.code == "peer_not_found"
    assert n1.peers()["latecomer"]["pending"] == 2


async def test_a_notify_to_a_peer_whose_node_just_died_is_queued_not_delivered(start_hub, shared_store):
    """Within the dead node's lease its peers still look online; the store's wake for that node
    reaches nobody, so the message says `queued`, and waits in the inbox for the peer's return."""
    n1 = start_hub("--redis-url", shared_store, "--node", "n1", "--node-lease", "30")
    n2 = start_hub("--redis-url", shared_store, "--node", "n2", "--node-lease", "30")
    async with n1.client("bob", reconnect=False) as bob, n2.client("alice") as alice:
        await seen(n2, "bob", status="online", node="n1")
        assert (await alice.notify("bob", "while n1 lives"))["state"] == "delivered"
        await bob.receive(10)
        n1.kill()
        assert peer_on(n2, "bob", status="online", node="n1"), "the lease (30 s) still holds"
        queued = await alice.notify("bob", "after n1 died")
        asked = await alice.ask("bob", "are you there?", timeout_s=60, queue_if_offline=True)
    assert queued["state"] == "queued" and asked["state"] == "queued"
    for trace_id in (queued["message_id"], asked["correlation_id"]):
        trace = await eventually(lambda: asyncio.to_thread(
            lambda: (t := n2.get(f"/traces/{trace_id}").json()) and len(t["stages"]) == 3 and t), 10, "the stages")
        assert [(s["stage"], s.get("reason")) for s in trace["stages"]] == [
            ("accepted", None), ("routed", None), ("queued", "holder_gone")]
    async with n2.client("bob", token=bob.token, hub_token=None) as back:
        # the first message may come again: n1 died before bob's receipt for it was written
        frames = [await back.receive(10) for _ in range(2)]
        if frames[0]["text"] == "while n1 lives":
            frames = [*frames[1:], await back.receive(10)]
    assert {f["message_id"] for f in frames} == {queued["message_id"], asked["message_id"]}


async def test_a_client_whose_node_dies_reconnects_to_another_and_keeps_its_identity(start_hub, shared_store):
    n1 = start_hub("--redis-url", shared_store, "--node", "n1")
    n2 = start_hub("--redis-url", shared_store, "--node", "n2")
    async with n1.client("bob", alternates=[n2.address], backoff_s=(0.05, 0.2)) as bob, \
            n2.client("alice") as alice:
        await seen(n2, "bob", status="online", node="n1")
        n1.kill()
        await seen(n2, "bob", "bob to come back on n2", status="online", node="n2")
        # (n2 records bob online before its welcome reaches him: the client counts the reconnect after)
        await eventually(lambda: bob.reconnects == 1, 10, "bob's client to count its reconnect")
        assert bob.address == n2.address
        sent = await alice.notify("bob", "welcome to n2")
        assert (await bob.receive(10))["message_id"] == sent["message_id"]


def test_a_node_name_that_a_live_node_holds_is_refused(start_hub, shared_store):
    start_hub("--redis-url", shared_store, "--node", "n1")
    twin = start_hub("--redis-url", shared_store, "--node", "n1", expect_ready=False)
    assert twin.process.wait(30) == 2
    assert "another hub node named 'n1' is live on this store" in twin.log()


def test_a_node_killed_and_started_again_takes_its_name_back_at_once(start_hub, shared_store):
    n1 = start_hub("--redis-url", shared_store, "--node", "n1", "--node-lease", "60")
    n1.kill()
    n1.restart()
    assert n1.get("/health").json()["node"] == "n1"


async def test_status_all_nodes_lists_every_node_live_or_gone(start_hub, shared_store):
    lease = ("--node-lease", "1.5")
    n1 = start_hub("--redis-url", shared_store, "--node", "n1", *lease)
    n2 = start_hub("--redis-url", shared_store, "--node", "n2", *lease)
    async with n2.client("bob"):
        await seen(n1, "bob", status="online", node="n2")
        shown = repowire(n1, "status", "--all-nodes", "--json")
        assert shown.returncode == 0, shown.stderr
        nodes = {n["node"]: n for n in orjson.loads(shown.stdout)["nodes"]}
        assert set(nodes) == {"n1", "n2"}
        assert (nodes["n1"]["live"], nodes["n1"]["this"], nodes["n1"]["peers_online"]) == (True, True, 0)
        assert (nodes["n2"]["live"], nodes["n2"]["this"], nodes["n2"]["peers_online"]) == (True, False, 1)
        assert nodes["n2"]["url"] == n2.url and nodes["n2"]["pid"] == n2.pid
        human = repowire(n1, "status", "--all-nodes").stdout
        assert "n1 *" in human and f"n2               live        1  {n2.url}" in human
    n2.kill()
    gone = await eventually(lambda: asyncio.to_thread(
        lambda: (n := {x["node"]: x for x in n1.get("/nodes").json()["nodes"]}) and not n["n2"]["live"] and n),
        10, "n2's lease to lapse")
    assert gone["n2"]["peers_online"] == 0 and gone["n1"]["live"]
