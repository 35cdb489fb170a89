"""Peers and durable notify over the socket and REST, against a real hub and store."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import eventually, recv, recv_until, send
from transports.client import HubRefused


async def test_welcome_frame_is_exact(hub):
    ws, welcome = await hub.raw_peer("alice", circle="backend", role="agent")
    assert set(welcome) == {"type", "peer_id", "name", "circle", "role", "token", "node", "api_version",
                            "heartbeat_s", "position", "limits"}
    assert welcome["name"] == "alice" and welcome["circle"] == "backend" and welcome["role"] == "agent"
    assert welcome["api_version"] == "repowire.v1" and welcome["node"] == "node-1"
    assert len(welcome["peer_id"]) == 32 and len(welcome["token"]) >= 43
    assert welcome["position"] == {"last_seq": 0, "pending": 0}
    await ws.close()


async def test_identity_is_kept_across_reconnect_with_the_token(hub):
    ws, first = await hub.raw_peer("alice")
    await ws.close()
    ws = await hub.raw(hub_token=False)  # the peer token alone is enough
    await send(ws, {"type": "hello", "name": "alice", "token": first["token"]})
    again = await recv(ws)
    assert again["type"] == "welcome"
    assert again["peer_id"] == first["peer_id"] and again["token"] == first["token"]
    peers = hub.get("/peers").json()["peers"]
    assert [p["peer_id"] for p in peers] == [first["peer_id"]]
    await ws.close()


async def test_a_name_reused_after_a_restart_keeps_its_peer_id(hub):
    ws, first = await hub.raw_peer("alice")
    await ws.close()
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["alice"]["status"] == "offline"), 10)
    ws, again = await hub.raw_peer("alice")  # hub token, no peer token: reclaim
    assert again["peer_id"] == first["peer_id"] and again["token"] != first["token"]
    assert len(hub.peers()) == 1
    await ws.close()


async def test_two_live_peers_with_one_name_is_name_taken(hub):
    ws, _ = await hub.raw_peer("alice")
    other = await hub.raw()
    await send(other, {"type": "hello", "name": "alice"})
    frame = await recv(other)
    assert frame["type"] == "error" and frame["error"]["code"] == "name_taken"
    await other.wait_closed()
    assert other.close_code == 4409
    assert len(hub.peers()) == 1
    await ws.close()


async def test_two_simultaneous_hellos_for_one_new_name_admit_exactly_one(hub):
    first, second = await hub.raw(), await hub.raw()
    await asyncio.gather(send(first, {"type": "hello", "name": "twin"}), send(second, {"type": "hello", "name": "twin"}))
    frames = sorted([(await recv(first))["type"], (await recv(second))["type"]])
    assert frames == ["error", "welcome"]
    assert list(hub.peers()) == ["twin"]


async def test_hello_without_any_credential_is_unauthorized(hub):
    ws = await hub.raw(hub_token=False)
    await send(ws, {"type": "hello", "name": "mallory"})
    frame = await recv(ws)
    assert frame["error"]["code"] == "unauthorized"
    await ws.wait_closed()
    assert ws.close_code == 4401
    assert hub.peers() == {}


async def test_a_wrong_peer_token_is_unauthorized(hub):
    ws = await hub.raw()
    await send(ws, {"type": "hello", "name": "alice", "token": "x" * 43})
    assert (await recv(ws))["error"]["code"] == "unauthorized"
    assert hub.peers() == {}


async def test_first_frame_must_be_hello(hub):
    ws = await hub.raw()
    await send(ws, {"type": "ping", "id": "p"})
    frame = await recv(ws)
    assert frame == {"type": "error", "ref": "p", "error": {"code": "hello_required",
                                                            "message": "the first frame must be hello", "details": {}}}
    await ws.wait_closed()
    assert ws.close_code == 4400


async def test_notify_to_an_online_peer_is_delivered_with_exact_frames(hub):
    alice, a = await hub.raw_peer("alice")
    bob, b = await hub.raw_peer("bob")
    await send(alice, {"type": "notify", "id": "n1", "to": "bob", "text": "build is green"})
    accepted = await recv(alice)
    assert accepted == {"type": "accepted", "ref": "n1", "message_id": accepted["message_id"], "state": "delivered"}
    deliver = await recv(bob)
    assert deliver == {"type": "deliver", "kind": "notify", "message_id": accepted["message_id"], "seq": 1,
                       "text": "build is green", "sent_at": deliver["sent_at"],
                       "from": {"peer_id": a["peer_id"], "name": "alice", "circle": "default"}}
    await send(bob, {"type": "receipt", "message_id": deliver["message_id"], "status": "received"})

    def stages():
        return [s["stage"] for s in hub.get(f"/traces/{accepted['message_id']}").json()["stages"]]
    await eventually(lambda: asyncio.to_thread(lambda: stages()[-1] == "received"), 10, "received stage")
    assert stages() == ["accepted", "routed", "sent", "received"]
    trace = hub.get(f"/traces/{accepted['message_id']}").json()
    assert trace["trace_id"] == accepted["message_id"] and trace["kind"] == "notify" and trace["final"] == "received"
    assert all(s["node"] == "node-1" for s in trace["stages"])
    assert [s["peer_id"] for s in trace["stages"][1:]] == [b["peer_id"]] * 3
    await alice.close()
    await bob.close()


async def test_seq_is_per_recipient_and_increasing(hub):
    alice, _ = await hub.raw_peer("alice")
    bob, _ = await hub.raw_peer("bob")
    for i in range(5):
        await send(alice, {"type": "notify", "id": f"n{i}", "to": "bob", "text": str(i)})
    frames = [await recv_until(bob, "deliver") for _ in range(5)]
    assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert [f["text"] for f in frames] == ["0", "1", "2", "3", "4"]


async def test_queued_for_an_offline_peer_then_delivered_in_order_when_it_returns(hub):
    bob = hub.client("bob")
    await bob.connect()
    await bob.close()
    async with hub.client("alice") as alice:
        await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["bob"]["status"] == "offline"), 10)
        results = [await alice.notify("bob", f"m{i}") for i in range(3)]
    assert [r["state"] for r in results] == ["queued"] * 3
    assert hub.peers()["bob"]["pending"] == 3
    trace = hub.get(f"/traces/{results[0]['message_id']}").json()
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "queued"]
    assert trace["stages"][2]["reason"] == "recipient_offline"
    async with hub.client("bob", token=bob.token) as bob_again:
        assert bob_again.welcome["position"]["pending"] == 3
        got = [await bob_again.receive(10) for _ in range(3)]
    assert [g["text"] for g in got] == ["m0", "m1", "m2"]
    assert [g["message_id"] for g in got] == [r["message_id"] for r in results]
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["bob"]["pending"] == 0), 10, "inbox emptied")


async def test_broadcast_gives_each_recipient_its_own_delivery_and_stages(hub):
    clients = {n: hub.client(n, circle="team") for n in ("ann", "bob", "cy")}
    for c in clients.values():
        await c.connect()
    outsider = hub.client("dan", circle="other")
    await outsider.connect()
    accepted = await clients["ann"].notify("*", "standup in 5")
    assert accepted["state"] == "delivered"
    assert sorted(r["name"] for r in accepted["recipients"]) == ["bob", "cy"]
    for name in ("bob", "cy"):
        frame = await clients[name].receive(10)
        assert frame["text"] == "standup in 5" and frame["message_id"] == accepted["message_id"]
    with pytest.raises(asyncio.TimeoutError):
        await outsider.receive(0.3)
    stages = hub.get(f"/traces/{accepted['message_id']}").json()["stages"]
    routed = {s["name"] for s in stages if s["stage"] == "routed"}
    assert routed == {"bob", "cy"}
    for c in [*clients.values(), outsider]:
        await c.close()


async def test_unknown_and_ambiguous_recipients_are_refused_and_nothing_is_written(hub):
    async with hub.client("alice", circle="red") as alice, hub.client("bob", circle="red"), \
            hub.client("bob", circle="blue"), hub.client("zed", circle="green") as zed:
        with pytest.raises(HubRefused) as missing:
            await alice.notify("nobody", "x")
        assert missing.value.code == "peer_not_found"
        with pytest.raises(HubRefused) as ambiguous:
            await zed.notify("bob", "x")
        assert ambiguous.value.code == "ambiguous_peer"
        assert ambiguous.value.details == {"candidates": ["bob@blue", "bob@red"]}
        assert (await alice.notify("bob", "to my circle"))["state"] == "delivered"
        assert all(p["pending"] <= 1 for p in hub.peers().values())


async def test_idempotency_key_replays_the_first_result_and_conflicts_on_change(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        first = await alice.notify("bob", "deploy", idempotency_key="k1")
        again = await alice.notify("bob", "deploy", idempotency_key="k1")
        assert again == {**first, "ref": again["ref"], "replayed": True}
        with pytest.raises(HubRefused) as conflict:
            await alice.notify("bob", "deploy something else", idempotency_key="k1")
        assert conflict.value.code == "conflict"
        assert (await bob.receive(10))["message_id"] == first["message_id"]
        with pytest.raises(asyncio.TimeoutError):
            await bob.receive(0.3)


def test_rest_notify_has_the_socket_semantics(hub):
    async def scenario():
        async with hub.client("bob") as bob:
            response = await asyncio.to_thread(hub.post, "/messages", {"to": "bob", "text": "from rest"})
            assert response.status_code == 202
            body = response.json()
            assert body == {"message_id": body["message_id"], "state": "delivered"}
            frame = await bob.receive(10)
            assert frame["from"] == {"peer_id": "0" * 32, "name": "operator", "circle": "default"}
            assert frame["text"] == "from rest"
            # a peer token acts as that peer
            response = await asyncio.to_thread(hub.post, "/messages", {"to": "bob", "text": "self"}, bob.token)
            assert (await bob.receive(10))["from"]["name"] == "bob"
            missing = await asyncio.to_thread(hub.post, "/messages", {"to": "nobody", "text": "x"})
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "peer_not_found"
            replay1 = await asyncio.to_thread(hub.post, "/messages", {"to": "bob", "text": "once"},
                                              headers={"Idempotency-Key": "rest-1"})
            replay2 = await asyncio.to_thread(hub.post, "/messages", {"to": "bob", "text": "once"},
                                              headers={"Idempotency-Key": "rest-1"})
            assert replay2.json() == {**replay1.json(), "replayed": True}
    asyncio.run(scenario())


def test_peer_routes(hub):
    async def scenario():
        async with hub.client("alice", circle="c1") as alice:
            one = await asyncio.to_thread(hub.get, "/peers/alice@c1")
            assert one.status_code == 200 and one.json()["peer_id"] == alice.peer_id
            assert one.json()["status"] == "online" and "token_digest" not in one.json()
            by_id = await asyncio.to_thread(hub.get, f"/peers/{alice.peer_id}")
            assert by_id.json()["name"] == "alice"
            online = await asyncio.to_thread(hub.get, "/peers", params={"status": "online"})
            assert [p["name"] for p in online.json()["peers"]] == ["alice"]
            other = await asyncio.to_thread(hub.get, "/peers", params={"circle": "c2"})
            assert other.json() == {"peers": []}
            bad = await asyncio.to_thread(hub.get, "/peers", params={"status": "asleep"})
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
            with hub.http() as http:
                deleted = await asyncio.to_thread(http.delete, f"/peers/{alice.peer_id}")
            assert deleted.status_code == 200 and deleted.json() == {"deleted": alice.peer_id}
            await eventually(lambda: alice.closed_with is not None, 10, "socket closed")
            assert alice.closed_with[0] == 4410
            gone = await asyncio.to_thread(hub.get, f"/peers/{alice.peer_id}")
            assert gone.status_code == 404 and gone.json()["error"]["code"] == "peer_not_found"
    asyncio.run(scenario())


def test_unknown_trace_is_404(hub):
    response = hub.get("/traces/" + "a" * 32)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "trace_not_found", "message": f"no trace with id {'a' * 32}",
                                         "details": {"trace_id": "a" * 32}}}


async def test_ping_and_presence(hub):
    ws, _ = await hub.raw_peer("alice")
    await send(ws, {"type": "ping", "id": "p1"})
    assert await recv(ws) == {"type": "pong", "ref": "p1"}
    await send(ws, {"type": "presence", "status": "busy"})
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["alice"]["status"] == "busy"), 10)
    await ws.close()
    await eventually(lambda: asyncio.to_thread(lambda: hub.peers()["alice"]["status"] == "offline"), 10)
