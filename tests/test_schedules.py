"""Scheduled messages end to end: real hub processes, the real store, real time (a few
seconds; one case waits for the next whole minute), SIGKILL, and two hub nodes on one store."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
import redis.asyncio as redis

from hub.store.schedules import ScheduleStore
from hub.store.state import StoreState
from hub.store.writer import load_scripts
from tests.support import eventually, repowire, wait_until


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def ms_of(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def schedule(hub, body: dict, token: str = "hub", status: int = 201) -> dict:
    response = hub.post("/schedules", body, token=token)
    assert response.status_code == status, response.text
    return response.json()


async def settled(hub, schedule_id: str, fires: int = 1, timeout: float = 15) -> dict:
    """The schedule once its history holds `fires` entries (and nothing is in flight)."""
    def check():
        view = hub.get(f"/schedules/{schedule_id}").json()
        return view if len(view.get("fires", [])) >= fires else None
    return await eventually(lambda: asyncio.to_thread(check), timeout, f"{fires} fire(s) of {schedule_id}")


async def register(hub, *names: str) -> dict[str, str]:
    """Peers that exist and are offline: name -> peer id."""
    ids = {}
    for name in names:
        async with hub.client(name) as client:
            ids[name] = client.peer_id
    await eventually(lambda: asyncio.to_thread(lambda: all(hub.peers()[n]["status"] == "offline" for n in names)),
                     10, "peers offline")
    return ids


async def claim_as(client: redis.Redis, node: str, sid: str, due: int, message_id: str, *,
                   indexed: bool = True) -> bytes:
    """The claim `node` makes just before sending occurrence `due`, made with the hub's own store
    script (and, unless `indexed` is False, its in-flight index entry); returns the claim."""
    await load_scripts(client)
    store, now = ScheduleStore(client), int(time.time() * 1000)
    claim = orjson.dumps({"due_at": due, "message_id": message_id, "claimed_at": now, "node": node})
    assert await client.execute_command(*store.claim_send_cmd(sid, due, None, claim, now, node)) == [b"ok"]
    if indexed:
        await client.execute_command(*store.inflight_cmd(sid, now))
    return claim


# ---- firing ----------------------------------------------------------------------------------

async def test_a_one_shot_notify_fires_once_as_its_creator_with_its_own_trace(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        created = schedule(hub, {"to": "bob", "kind": "notify", "text": "stand-up in 5", "at": iso_in(1.5)},
                           token=alice.token)
        assert set(created) == {"schedule_id", "next_fire_at"} and created["next_fire_at"].endswith("Z")
        sid = created["schedule_id"]
        delivery = await bob.receive(15)
        assert delivery == {"type": "deliver", "kind": "notify", "seq": 1, "message_id": delivery["message_id"],
                            "text": "stand-up in 5", "sent_at": delivery["sent_at"], "schedule_id": sid,
                            "from": {"peer_id": alice.peer_id, "name": "alice", "circle": "default"}}
        assert delivery["sent_at"] >= ms_of(created["next_fire_at"])
        view = await settled(hub, sid)
        assert view["state"] == "done" and "next_fire_at" not in view
        assert (view["fired"], view["missed"], view["failed"]) == (1, 0, 0)
        (fire,) = view["fires"]
        assert fire["state"] == "sent" and fire["due_at"] == created["next_fire_at"] and fire["node"] == "node-1"
        assert fire["message_id"] == fire["trace_id"] == delivery["message_id"] and fire["delivery"] == "delivered"
        trace = await eventually(lambda: asyncio.to_thread(
            lambda: (t := hub.get(f"/traces/{fire['trace_id']}").json()).get("final") == "received" and t), 10, "trace")
        assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "sent", "received"]
        assert trace["stages"][0]["schedule_id"] == sid and trace["from"] == alice.peer_id
        assert bob.pending_deliveries() == 0


async def test_a_scheduled_ask_follows_the_offline_rules_and_its_reply_reaches_the_creator(hub):
    ids = await register(hub, "bob")
    async with hub.client("alice") as alice:
        refused = schedule(hub, {"to": "bob", "kind": "ask", "text": "ready?", "at": iso_in(1)}, token=alice.token)
        queued = schedule(hub, {"to": "bob", "kind": "ask", "text": "ready now?", "at": iso_in(1.2),
                                "queue_if_offline": True, "timeout_s": 120}, token=alice.token)
        (failed,) = (await settled(hub, refused["schedule_id"]))["fires"]
        assert failed["state"] == "failed" and failed["reason"] == "peer_offline" and "bob" in failed["message"]
        view = await settled(hub, queued["schedule_id"])
        assert (view["fired"], view["failed"], view["state"]) == (1, 0, "done")
        (sent,) = view["fires"]
        assert sent["state"] == "sent" and sent["delivery"] == "queued" and sent["trace_id"] == sent["correlation_id"]
        assert hub.get(f"/schedules/{refused['schedule_id']}").json()["failed"] == 1
        async with hub.client("bob") as bob:
            ask = await bob.receive(10)
            assert ask["kind"] == "ask" and ask["text"] == "ready now?" and ask["schedule_id"] == queued["schedule_id"]
            assert ask["correlation_id"] == sent["correlation_id"] and ask["message_id"] == sent["message_id"]
            assert ask["deadline"] - ask["sent_at"] == 120_000 and ask["from"]["peer_id"] == alice.peer_id
            await bob.ack(ask["correlation_id"], "yes")
            reply = await alice.receive(10)
            assert reply["kind"] == "reply" and reply["text"] == "yes" and reply["correlation_id"] == ask["correlation_id"]
        assert ids["bob"] == view["to"]


async def test_paused_schedules_do_not_fire_and_resume_continues(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        paused = schedule(hub, {"to": "bob", "kind": "notify", "text": "paused one", "at": iso_in(1)},
                          token=alice.token)["schedule_id"]
        response = hub.post(f"/schedules/{paused}/pause", token=alice.token)
        assert response.status_code == 200 and response.json()["state"] == "paused"
        assert hub.post(f"/schedules/{paused}/pause", token=alice.token).json()["state"] == "paused"  # idempotent
        later = schedule(hub, {"to": "bob", "kind": "notify", "text": "the later one", "at": iso_in(1.8)},
                         token=alice.token)["schedule_id"]
        first = await bob.receive(15)
        assert first["text"] == "the later one" and first["schedule_id"] == later   # the paused one, due before, did not fire
        view = hub.get(f"/schedules/{paused}").json()
        assert (view["state"], view["fired"], view["fires"]) == ("paused", 0, [])
        resumed = hub.post(f"/schedules/{paused}/resume", token=alice.token).json()
        assert resumed["state"] == "active"
        late = await bob.receive(15)   # a one-shot whose time passed while paused is due at once (catch_up)
        assert late["text"] == "paused one" and late["schedule_id"] == paused
        (fire,) = (await settled(hub, paused))["fires"]
        assert fire["state"] == "sent" and fire["late_ms"] > 0
        finished = hub.post(f"/schedules/{paused}/pause", token=alice.token)
        assert finished.status_code == 409 and finished.json()["error"]["code"] == "schedule_finished"
        cron = schedule(hub, {"to": "bob", "kind": "notify", "text": "hourly", "cron": "0 * * * *"}, token=alice.token)
        hub.post(f"/schedules/{cron['schedule_id']}/pause", token=alice.token)
        assert hub.get("/schedules", token=alice.token).json()["schedules"][-1]["state"] == "paused"
        again = hub.post(f"/schedules/{cron['schedule_id']}/resume", token=alice.token).json()
        assert again["next_fire_at"] == cron["next_fire_at"] and again["state"] == "active"


async def test_a_cron_schedule_fires_on_the_minute_and_two_hub_nodes_fire_each_occurrence_once(shared_store,
                                                                                               start_hub):
    first = start_hub("--redis-url", shared_store, "--node", "n1")
    ids = await register(first, "alice", "bob")
    second = start_hub("--redis-url", shared_store, "--node", "n2")
    async with first.client("alice") as alice:
        minutely = schedule(first, {"to": "bob", "kind": "notify", "text": "tick", "cron": "* * * * *"},
                            token=alice.token)
        # one-shots made through either node (as its operator), due over the next seconds
        one_shots = [schedule(node, {"to": "bob@default", "kind": "notify", "text": f"one-shot {i}",
                                     "at": iso_in(1 + i * 0.15)})["schedule_id"]
                     for i, node in enumerate([first, second] * 6)]
    assert alice.peer_id == ids["alice"]
    due = ms_of(minutely["next_fire_at"])
    assert due % 60_000 == 0
    views = [await settled(first, sid) for sid in one_shots]
    tick = await settled(second, minutely["schedule_id"], timeout=75)
    fires = [v["fires"] for v in views] + [tick["fires"][:1]]
    assert all(len(f) == 1 and f[0]["state"] == "sent" for f in fires[:-1])
    assert tick["fires"][0]["due_at"] == minutely["next_fire_at"] and tick["fires"][0]["state"] == "sent"
    assert ms_of(tick["next_fire_at"]) == due + 60_000 and tick["state"] == "active"
    nodes = {f[0]["node"] for f in fires}
    assert nodes <= {"n1", "n2"}
    async with second.client("bob") as bob:   # every fire reaches bob once, through either node
        got = [await bob.receive(15) for _ in range(len(fires))]
    message_ids = sorted(d["message_id"] for d in got)
    assert message_ids == sorted(f[0]["message_id"] for f in fires)
    assert len(set(message_ids)) == 13
    assert sorted(d["text"] for d in got) == sorted([f"one-shot {i}" for i in range(12)] + ["tick"])
    for node in (first, second):
        stages = node.get(f"/traces/{got[0]['message_id']}").json()["stages"]
        assert stages[0]["stage"] == "accepted" and stages[0]["schedule_id"] == got[0]["schedule_id"]


async def test_a_hub_killed_just_after_a_claim_fires_that_occurrence_once_after_restart(shared_store, start_hub):
    hub = start_hub("--redis-url", shared_store, "--node", "n1")
    await register(hub, "alice", "bob")
    async with hub.client("alice") as alice:
        created = schedule(hub, {"to": "bob", "kind": "notify", "text": "after the crash", "at": iso_in(3)},
                           token=alice.token)
    sid, due = created["schedule_id"], ms_of(created["next_fire_at"])
    hub.kill()
    # The claim the hub would have made an instant before dying, made by the hub's own store code.
    client = redis.Redis.from_url(shared_store)
    try:
        claim = await claim_as(client, "n1", sid, due, "ab" * 16)
        again = ScheduleStore(client).claim_send_cmd(sid, due, None, claim, int(time.time() * 1000), "n2")
        assert (await client.execute_command(*again)) == [b"busy"]
    finally:
        await client.aclose()
    hub.restart()
    view = await settled(hub, sid)
    (fire,) = view["fires"]
    assert fire["state"] == "sent" and fire["recovered"] is True and fire["message_id"] == "ab" * 16
    assert (view["state"], view["fired"]) == ("done", 1)
    async with hub.client("bob") as bob:
        delivery = await bob.receive(10)
        assert delivery["message_id"] == "ab" * 16 and delivery["text"] == "after the crash"
        assert bob.pending_deliveries() == 0
    assert hub.get("/peers/bob").json()["pending"] == 0


async def test_a_claim_left_by_a_dead_node_is_taken_over_after_the_lease(shared_store, start_hub):
    hub = start_hub("--redis-url", shared_store, "--node", "n1", "--schedule-lease", "1")
    await register(hub, "bob")
    created = schedule(hub, {"to": "bob", "kind": "notify", "text": "orphaned fire", "at": iso_in(30)})
    sid, due = created["schedule_id"], ms_of(created["next_fire_at"])
    client = redis.Redis.from_url(shared_store)
    try:   # another node claims it early (its clock runs ahead) and dies before sending
        await claim_as(client, "n-dead", sid, due, "cd" * 16)
        await client.execute_command(*ScheduleStore.index_cmds(sid, None)[0])
    finally:
        await client.aclose()
    view = await settled(hub, sid, timeout=20)
    (fire,) = view["fires"]
    assert fire["state"] == "sent" and fire["recovered"] is True and fire["node"] == "n1"
    assert fire["message_id"] == "cd" * 16 and view["fired"] == 1


async def test_a_fire_written_before_the_crash_is_recorded_on_restart_not_sent_again(shared_store, start_hub):
    """The hub died after writing the fire's message and before recording it: the restarted
    hub finds the message's trace and only records the fire (promise 2: no duplicate)."""
    hub = start_hub("--redis-url", shared_store, "--node", "n1")
    ids = await register(hub, "alice", "bob")
    async with hub.client("alice") as alice:
        created = schedule(hub, {"to": "bob", "kind": "notify", "text": "written once", "at": iso_in(3)},
                           token=alice.token)
    sid, due = created["schedule_id"], ms_of(created["next_fire_at"])
    hub.kill()
    message_id = "ef" * 16
    client = redis.Redis.from_url(shared_store)
    try:   # the claim, then the message and its first trace stage, as the hub writes them
        await claim_as(client, "n1", sid, due, message_id)
        now = int(time.time() * 1000)
        payload = orjson.dumps({"kind": "notify", "message_id": message_id, "text": "written once", "sent_at": now,
                                "from": {"peer_id": ids["alice"], "name": "alice", "circle": "default"},
                                "schedule_id": sid})
        await client.execute_command(*StoreState(client, None, "n1").enqueue_cmd(ids["bob"], message_id, payload, now + 3_600_000,
                                                             message_id, "notify"))
        await client.execute_command(*StoreState.unannounced_trace_cmd(
            message_id, [{"stage": "accepted", "at": now, "node": "n1", "schedule_id": sid}], 3600))
    finally:
        await client.aclose()
    hub.restart()
    view = await settled(hub, sid)
    (fire,) = view["fires"]
    assert fire["state"] == "sent" and fire["recovered"] is True and fire["message_id"] == message_id
    assert "delivery" not in fire and view["fired"] == 1
    async with hub.client("bob") as bob:
        delivery = await bob.receive(10)
        assert delivery["message_id"] == message_id and delivery["text"] == "written once"
        assert bob.pending_deliveries() == 0
    stages = hub.get(f"/traces/{message_id}").json()["stages"]
    assert [s["stage"] for s in stages].count("accepted") == 1


async def test_a_dead_nodes_claim_that_never_reached_the_index_is_still_taken_over(shared_store, start_hub):
    hub = start_hub("--redis-url", shared_store, "--node", "n1", "--schedule-lease", "1")
    await register(hub, "bob")
    created = schedule(hub, {"to": "bob", "kind": "notify", "text": "unindexed claim", "at": iso_in(30)})
    sid, due = created["schedule_id"], ms_of(created["next_fire_at"])
    client = redis.Redis.from_url(shared_store)
    try:   # the other node died right after its claim script: the due index still names the old time
        await claim_as(client, "n-dead", sid, due, "aa" * 16, indexed=False)
        stale = ScheduleStore.index_cmds(sid, int(time.time() * 1000))[0]   # due now, as the stale entry would be
        await client.execute_command(*stale)
    finally:
        await client.aclose()
    view = await settled(hub, sid, timeout=20)
    (fire,) = view["fires"]
    assert fire["state"] == "sent" and fire["recovered"] is True and fire["message_id"] == "aa" * 16


async def test_occurrences_due_while_the_hub_was_down_are_sent_on_start_or_recorded_missed(start_hub):
    hub = start_hub("--schedule-grace", "0.5")
    await register(hub, "bob")
    kept = schedule(hub, {"to": "bob", "kind": "notify", "text": "caught up", "at": iso_in(1.5)})
    dropped = schedule(hub, {"to": "bob", "kind": "notify", "text": "too late", "at": iso_in(1.5),
                             "catch_up": False})
    hub.kill()
    due = ms_of(kept["next_fire_at"])
    wait_until(lambda: time.time() * 1000 > due + 1000, 10, "both to fall due (and the grace to pass) while down")
    hub.restart()
    (sent,) = (await settled(hub, kept["schedule_id"]))["fires"]
    assert sent["state"] == "sent" and sent["late_ms"] >= 1000
    view = await settled(hub, dropped["schedule_id"])
    assert view["fires"] == [{"due_at": dropped["next_fire_at"], "state": "missed", "node": "node-1",
                              "recorded_at": view["fires"][0]["recorded_at"], "reason": "catch_up_off", "count": 1}]
    assert (view["state"], view["missed"], view["fired"]) == ("done", 1, 0)
    async with hub.client("bob") as bob:
        assert (await bob.receive(10))["text"] == "caught up"
        assert bob.pending_deliveries() == 0


# ---- requests, permissions, limits -------------------------------------------------------------

async def test_malformed_requests_get_their_codes_and_store_nothing(hub):
    await register(hub, "bob")
    good = {"to": "bob", "kind": "notify", "text": "x"}
    cases = [
        ({**good, "cron": "61 * * * *"}, 422, "invalid_cron"),
        ({**good, "cron": "0 0 31 2 *"}, 422, "invalid_cron"),
        ({**good, "cron": "* * *"}, 422, "invalid_cron"),
        ({**good, "at": iso_in(-5)}, 422, "schedule_in_past"),
        ({**good, "at": "next tuesday"}, 422, "invalid_request"),
        ({**good, "to": "nobody", "at": iso_in(60)}, 404, "peer_not_found"),
        ({**good, "at": iso_in(60), "timezone": "Mars/Olympus"}, 422, "invalid_timezone"),
        ({**good, "at": iso_in(60), "cron": "* * * * *"}, 422, "invalid_request"),
        (good, 422, "invalid_request"),
        ({**good, "kind": "shout", "at": iso_in(60)}, 422, "invalid_request"),
        ({**good, "at": iso_in(60), "timeout_s": 5}, 422, "invalid_request"),
        ({**good, "kind": "ask", "to": "*", "at": iso_in(60)}, 422, "invalid_request"),
        ({**good, "kind": "ask", "at": iso_in(60), "timeout_s": 999999}, 422, "invalid_frame"),
        ({**good, "at": iso_in(60), "text": "x" * (64 * 1024 + 1)}, 413, "text_too_long"),
        ({**good, "at": iso_in(60), "catch_up": "yes"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        response = hub.post("/schedules", body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    with hub.http() as client:
        response = client.post("/schedules", content=b"{not json", headers={"Content-Type": "application/json"})
        assert response.json()["error"]["code"] == "bad_json"
        response = client.post("/schedules", content=orjson.dumps({**good, "at": iso_in(60)}),
                               headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert hub.get("/schedules").json() == {"schedules": []}
    schedule(hub, {**good, "at": iso_in(60), "text": "x" * (64 * 1024)})   # the text limit itself is fine


async def test_schedules_belong_to_their_creator_and_to_people(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        mine = schedule(hub, {"to": "bob", "kind": "notify", "text": "from alice", "cron": "0 9 * * *",
                              "timezone": "Europe/Berlin"}, token=alice.token)["schedule_id"]
        theirs = schedule(hub, {"to": "alice", "kind": "notify", "text": "from bob", "at": iso_in(3600)},
                          token=bob.token)["schedule_id"]
        ops = schedule(hub, {"to": "alice", "kind": "notify", "text": "from the operator", "at": iso_in(3600)})
        assert [s["schedule_id"] for s in hub.get("/schedules", token=alice.token).json()["schedules"]] == [mine]
        everyone = hub.get("/schedules").json()["schedules"]
        assert [s["schedule_id"] for s in everyone] == [mine, theirs, ops["schedule_id"]]
        assert everyone[0]["created_by"] == {"peer_id": alice.peer_id, "name": "alice", "circle": "default"}
        assert everyone[0]["cron"] == "0 9 * * *" and everyone[0]["timezone"] == "Europe/Berlin"
        assert everyone[0]["next_fire_at"].endswith(("T08:00:00.000Z", "T07:00:00.000Z"))
        for at, expected in (("2030-03-10T02:30:00", "2030-03-10T07:00:00.000Z"),    # skipped by spring forward
                             ("2030-11-03T01:30:00", "2030-11-03T05:30:00.000Z")):   # repeated by fall back
            dst = schedule(hub, {"to": "bob", "kind": "notify", "text": "dst", "at": at, "timezone": "America/New_York"},
                           token=alice.token)
            assert dst["next_fire_at"] == expected
            with hub.http(alice.token) as client:
                client.delete(f"/schedules/{dst['schedule_id']}")
        assert [s["schedule_id"] for s in hub.get("/schedules?peer=bob").json()["schedules"]] == [theirs]
        assert [s["schedule_id"] for s in hub.get("/schedules?peer=operator").json()["schedules"]] == [ops["schedule_id"]]
        for method, path in (("GET", f"/schedules/{mine}"), ("DELETE", f"/schedules/{mine}"),
                             ("POST", f"/schedules/{mine}/pause"), ("POST", f"/schedules/{mine}/resume"),
                             ("GET", "/schedules?peer=alice")):
            with hub.http(bob.token) as client:
                response = client.request(method, path)
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), path
        assert hub.get(f"/schedules/{mine}").json()["state"] == "active"
        unknown = hub.get("/schedules/" + "0" * 32)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "schedule_not_found")
        with hub.http(alice.token) as client:
            assert client.delete(f"/schedules/{mine}").json() == {"deleted": mine}
            assert client.get(f"/schedules/{mine}").json()["error"]["code"] == "schedule_not_found"
        assert hub.get("/schedules", token=alice.token).json() == {"schedules": []}


async def test_schedules_per_peer_at_the_limit_and_one_over(start_hub):
    hub = start_hub("--max-schedules", "2")
    async with hub.client("alice") as alice:
        body = {"to": "alice", "kind": "notify", "text": "note to self", "at": iso_in(3600)}
        first = schedule(hub, body, token=alice.token)["schedule_id"]
        schedule(hub, body, token=alice.token)
        over = hub.post("/schedules", body, token=alice.token)
        assert (over.status_code, over.json()["error"]["code"]) == (507, "too_many_schedules")
        assert over.json()["error"]["details"] == {"limit": 2}
        assert len(hub.get("/schedules", token=alice.token).json()["schedules"]) == 2
        schedule(hub, body)   # the operator's own count is separate
        with hub.http(alice.token) as client:
            client.delete(f"/schedules/{first}")
        schedule(hub, body, token=alice.token)


def test_the_command_line_schedules_lists_shows_and_removes(hub):
    asyncio.run(register(hub, "bob"))
    made = repowire(hub, "schedule", "notify", "bob", "hello from cron", "--cron", "*/5 * * * *",
                    "--timezone", "Europe/Berlin", "--json")
    assert made.returncode == 0, made.stderr
    sid = orjson.loads(made.stdout)["schedule_id"]
    once = repowire(hub, "schedule", "ask", "bob", "soon?", "--at", "+1h", "--queue", "--timeout", "60")
    assert once.returncode == 0 and once.stdout.startswith("scheduled ")
    listed = repowire(hub, "schedules")
    assert sid in listed.stdout and "cron '*/5 * * * *' Europe/Berlin" in listed.stdout and "bob@default" in listed.stdout
    shown = repowire(hub, "schedule", "show", sid)
    assert "notify to bob@default: 'hello from cron'" in shown.stdout and "active" in shown.stdout
    assert repowire(hub, "schedule", "pause", sid).stdout.strip() == f"paused {sid}"
    assert repowire(hub, "schedule", "resume", sid).stdout.startswith(f"resumed {sid}  next fire ")
    assert repowire(hub, "schedule", "rm", sid).stdout.strip() == f"deleted {sid}"
    gone = repowire(hub, "schedule", "show", sid)
    assert gone.returncode == 1 and "schedule_not_found" in gone.stderr
    bad = repowire(hub, "schedule", "notify", "bob", "x", "--cron", "every day")
    assert bad.returncode == 1 and "invalid_cron" in bad.stderr
    neither = repowire(hub, "schedule", "notify", "bob", "x")
    assert neither.returncode == 2 and "--at WHEN" in neither.stderr
