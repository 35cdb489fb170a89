"""Ask, ack and answer: durable request/reply with deadlines and structured questions."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import orjson
import pytest

from tests.support import eventually, process_gone, wait_until
from transports.client import HubRefused


def offline(hub, name):
    return eventually(lambda: asyncio.to_thread(lambda: hub.peers()[name]["status"] == "offline"), 10, f"{name} offline")


async def test_ask_and_reply_with_exact_frames_and_trace(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        accepted = await alice.ask("bob", "may I merge #42?", timeout_s=60)
        assert set(accepted) == {"type", "ref", "message_id", "correlation_id", "state", "deadline"}
        assert accepted["state"] == "delivered"
        cid = accepted["correlation_id"]
        ask = await bob.receive(10)
        assert ask == {"type": "deliver", "kind": "ask", "seq": 1, "message_id": accepted["message_id"],
                       "correlation_id": cid, "text": "may I merge #42?", "deadline": accepted["deadline"],
                       "sent_at": ask["sent_at"], "from": {"peer_id": alice.peer_id, "name": "alice", "circle": "default"}}
        assert accepted["deadline"] - ask["sent_at"] == 60_000
        acked = await bob.ack(cid, "yes, merge")
        assert acked["ask_state"] == "replied" and acked["correlation_id"] == cid and acked["state"] == "delivered"
        reply = await alice.receive(10)
        assert reply == {"type": "deliver", "kind": "reply", "seq": 1, "message_id": acked["message_id"],
                         "correlation_id": cid, "text": "yes, merge", "sent_at": reply["sent_at"],
                         "from": {"peer_id": bob.peer_id, "name": "bob", "circle": "default"}}
        trace = await eventually(lambda: asyncio.to_thread(
            lambda: (t := hub.get(f"/traces/{cid}").json()) and t["stages"][-1]["stage"] == "received" and
            len([s for s in t["stages"] if s["stage"] == "received"]) == 2 and t), 10, "reply received")
        assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed", "sent", "received", "replied", "sent",
                                                          "received"]
        assert trace["kind"] == "ask" and trace["final"] == "replied"
        view = hub.get(f"/asks/{cid}").json()
        assert view["state"] == "replied" and view["result"]["text"] == "yes, merge"
        assert view["trace_id"] == cid and view["from"]["name"] == "alice" and view["to"]["name"] == "bob"


async def test_bare_ack_closes_and_later_acks_change_nothing(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("eve") as eve:
        cid = (await alice.ask("bob", "ping?"))["correlation_id"]
        await bob.receive(10)
        with pytest.raises(HubRefused) as stranger:
            await eve.ack(cid, "not mine to answer")
        assert stranger.value.code == "forbidden"
        with pytest.raises(HubRefused) as self_ack:
            await alice.ack(cid)
        assert self_ack.value.code == "forbidden"
        assert hub.get(f"/asks/{cid}").json()["state"] == "pending"
        acked = await bob.ack(cid)
        assert acked["ask_state"] == "acked"
        notice = await alice.receive(10)
        assert notice["kind"] == "ack" and notice["correlation_id"] == cid and "text" not in notice
        with pytest.raises(HubRefused) as again:
            await bob.ack(cid, "changed my mind")
        assert again.value.code == "already_closed"
        assert hub.get(f"/asks/{cid}").json()["result"] == {"state": "acked", "kind": "ack", "at": notice["sent_at"],
                                                           "by": bob.peer_id}
        with pytest.raises(asyncio.TimeoutError):
            await alice.receive(0.3)


async def test_an_exact_replay_of_an_ack_returns_the_first_result(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        cid = (await alice.ask("bob", "deploy?"))["correlation_id"]
        first = await bob.ack(cid, "done", idempotency_key="ack-1")
        again = await bob.ack(cid, "done", idempotency_key="ack-1")
        assert again == {**first, "ref": again["ref"], "replayed": True}
        with pytest.raises(HubRefused) as changed:
            await bob.ack(cid, "different", idempotency_key="ack-1")
        assert changed.value.code == "conflict"
        assert (await alice.receive(10))["text"] == "done"
        with pytest.raises(asyncio.TimeoutError):
            await alice.receive(0.3)


async def test_offline_recipient_fails_fast_unless_queued(hub):
    bob = hub.client("bob")
    await bob.connect()
    await bob.close()
    async with hub.client("alice") as alice:
        await offline(hub, "bob")
        with pytest.raises(HubRefused) as fast:
            await alice.ask("bob", "are you there?")
        assert fast.value.code == "peer_offline" and fast.value.details == {"offline": [bob.peer_id]}
        assert hub.get("/asks/pending", params={"peer": "alice"}).json()["total"] == 0
        queued = await alice.ask("bob", "answer when back", queue_if_offline=True, timeout_s=60)
        assert queued["state"] == "queued"
        async with hub.client("bob", token=bob.token) as back:
            ask = await back.receive(10)
            assert ask["correlation_id"] == queued["correlation_id"]
            await back.ack(ask["correlation_id"], "back now")
        assert (await alice.receive(10))["text"] == "back now"
    stages = [s["stage"] for s in hub.get(f"/traces/{queued['correlation_id']}").json()["stages"]]
    assert stages[:3] == ["accepted", "routed", "queued"] and "replied" in stages


async def test_reply_reaches_an_asker_who_went_offline(hub):
    alice = hub.client("alice")
    await alice.connect()
    async with hub.client("bob") as bob:
        cid = (await alice.ask("bob", "tell me later", timeout_s=60))["correlation_id"]
        await alice.close()
        await offline(hub, "alice")
        ask = await bob.receive(10)
        acked = await bob.ack(ask["correlation_id"], "here you go")
        assert acked["state"] == "queued"
    async with hub.client("alice", token=alice.token) as back:
        reply = await back.receive(10)
        assert reply["kind"] == "reply" and reply["correlation_id"] == cid and reply["text"] == "here you go"


async def test_deadline_expiry_tells_the_asker_and_refuses_late_acks(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        accepted = await alice.ask("bob", "quick!", timeout_s=0.5)
        cid = accepted["correlation_id"]
        await bob.receive(10)
        expired = await alice.receive(10)
        assert expired["kind"] == "expired" and expired["correlation_id"] == cid and expired["reason"] == "deadline"
        assert expired["from"]["name"] == "hub"
        with pytest.raises(HubRefused) as late:
            await bob.ack(cid, "too late")
        assert late.value.code == "expired"
        trace = hub.get(f"/traces/{cid}").json()
        assert trace["final"] == "expired"
        assert next(s for s in trace["stages"] if s["stage"] == "expired")["reason"] == "deadline"
        assert hub.get(f"/asks/{cid}").json()["state"] == "expired"


def test_a_deadline_that_passed_while_the_hub_was_down_fires_at_start(hub):
    async def ask():
        alice = hub.client("alice", reconnect=False)
        await alice.connect()
        async with hub.client("bob"):
            accepted = await alice.ask("bob", "over the restart", timeout_s=1.5)
        await alice.close()
        return alice.token, accepted

    token, accepted = asyncio.run(ask())
    assert hub.stop() == 0
    wait_until(lambda: time.time() * 1000 > accepted["deadline"], 10, "the deadline to pass while the hub is down")
    hub.restart()

    async def after():
        async with hub.client("alice", token=token) as alice:
            notice = await alice.receive(10)
            assert notice["kind"] == "expired" and notice["correlation_id"] == accepted["correlation_id"]
    asyncio.run(after())
    assert hub.get(f"/asks/{accepted['correlation_id']}").json()["state"] == "expired"


def test_an_ask_accepted_before_sigkill_completes_after_restart_with_one_reply(hub):
    async def before():
        bob = hub.client("bob", reconnect=False)
        await bob.connect()
        await bob.close()
        alice = hub.client("alice", reconnect=False)
        await alice.connect()
        await offline(hub, "bob")
        accepted = await alice.ask("bob", "survive this", queue_if_offline=True, timeout_s=120)
        return bob.token, alice.token, accepted

    bob_token, alice_token, accepted = asyncio.run(before())
    store_pid = hub.store_pid()
    hub.kill()
    assert process_gone(hub.pid)
    hub.restart()
    assert hub.store_pid() != store_pid

    async def after():
        async with hub.client("alice", token=alice_token) as alice, hub.client("bob", token=bob_token) as bob:
            ask = await bob.receive(10)
            assert ask["correlation_id"] == accepted["correlation_id"]
            await bob.ack(ask["correlation_id"], "survived")
            reply = await alice.receive(10)
            assert reply["text"] == "survived"
            with pytest.raises(asyncio.TimeoutError):
                await alice.receive(0.5)
            with pytest.raises(HubRefused) as again:
                await bob.ack(ask["correlation_id"], "twice")
            assert again.value.code == "already_closed"
    asyncio.run(after())


async def test_structured_questions_and_first_answer_wins(hub):
    question = {"kind": "choice", "prompt": "Merge #42?", "options": [{"id": "yes", "title": "Merge"},
                                                                         {"id": "no", "title": "Not yet"}]}
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        cid = (await alice.ask("bob", "Merge #42?", question=question))["correlation_id"]
        ask = await bob.receive(10)
        assert ask["question"] == question
        with pytest.raises(HubRefused) as bad:
            await bob.answer(cid, option_id="maybe")
        assert bad.value.code == "invalid_option" and bad.value.details["options"] == ["yes", "no"]
        answered = await bob.answer(cid, option_id="yes", outcome="accepted")
        assert answered["ask_state"] == "answered"
        notice = await alice.receive(10)
        assert notice["kind"] == "answer" and notice["option_id"] == "yes" and notice["outcome"] == "accepted"
        with pytest.raises(HubRefused) as second:
            await bob.answer(cid, option_id="no")
        assert second.value.code == "already_answered"
        assert hub.get(f"/asks/{cid}").json()["result"]["option_id"] == "yes"
        plain = (await alice.ask("bob", "no question here"))["correlation_id"]
        with pytest.raises(HubRefused) as not_q:
            await bob.answer(plain, text="hm")
        assert not_q.value.code == "not_a_question"
        text_q = (await alice.ask("bob", "name?", question={"kind": "text", "prompt": "Your name?"}))["correlation_id"]
        with pytest.raises(HubRefused) as empty:
            await bob.answer(text_q)
        assert empty.value.code == "invalid_frame"
        assert (await bob.answer(text_q, text="Bob"))["ask_state"] == "answered"


@pytest.mark.parametrize("question, code", [
    ({"kind": "choice", "prompt": "x"}, "invalid_frame"),
    ({"kind": "choice", "prompt": "x", "options": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]}, "invalid_frame"),
    ({"kind": "text", "prompt": "x", "options": [{"id": "a", "title": "A"}]}, "invalid_frame"),
    ({"kind": "poll", "prompt": "x"}, "invalid_frame"),
])
async def test_malformed_questions_are_refused_and_nothing_is_written(hub, question, code):
    async with hub.client("alice") as alice, hub.client("bob"):
        with pytest.raises(HubRefused) as refused:
            await alice.ask("bob", "x", question=question)
        assert refused.value.code == code
        assert hub.get("/asks/pending", params={"peer": "bob"}).json()["total"] == 0


def test_deadline_at_the_maximum_and_over_it(start_hub):
    hub = start_hub("--ask-timeout-max", "10")

    async def scenario():
        async with hub.client("alice") as alice, hub.client("bob"):
            assert (await alice.ask("bob", "ok", timeout_s=10))["state"] == "delivered"
            with pytest.raises(HubRefused) as over:
                await alice.ask("bob", "too long", timeout_s=10.001)
            assert over.value.code == "invalid_frame" and over.value.details["max_timeout_s"] == 10
    asyncio.run(scenario())


def test_rest_ask_wait_ack_and_pending(hub):
    async def scenario():
        async with hub.client("bob") as bob:
            posted = await asyncio.to_thread(hub.post, "/ask", {"to": "bob", "text": "from rest", "timeout_s": 30})
            assert posted.status_code == 202
            cid = posted.json()["correlation_id"]
            pending = await asyncio.to_thread(hub.get, "/asks/pending", bob.token, params={"direction": "inbound"})
            assert [a["correlation_id"] for a in pending.json()["asks"]] == [cid]
            assert pending.json()["asks"][0]["direction"] == "inbound" and pending.json()["total"] == 1
            waiting = asyncio.create_task(asyncio.to_thread(hub.post, f"/asks/{cid}/wait", {"timeout_s": 20}))
            ask = await bob.receive(10)
            acked = await asyncio.to_thread(hub.post, "/ack", {"correlation_id": cid, "text": "via socket"}, bob.token)
            assert acked.status_code == 200 and acked.json()["ask_state"] == "replied"
            view = (await waiting).json()
            assert view["state"] == "replied" and view["result"]["text"] == "via socket"
            assert ask["from"]["name"] == "operator"
            empty = await asyncio.to_thread(hub.get, "/asks/pending", bob.token)
            assert empty.json() == {"asks": [], "total": 0, "next_offset": None}
            timed = await asyncio.to_thread(hub.post, "/ask", {"to": "bob", "text": "wait briefly"})
            short = await asyncio.to_thread(hub.post, f"/asks/{timed.json()['correlation_id']}/wait", {"timeout_s": 0.2})
            assert short.json()["state"] == "pending"
            forbidden = await asyncio.to_thread(hub.post, f"/asks/{timed.json()['correlation_id']}/wait",
                                                {"timeout_s": 0}, bob.token)
            assert forbidden.status_code == 403
            missing = await asyncio.to_thread(hub.get, "/asks/" + "a" * 32)
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "ask_not_found"
            bad = await asyncio.to_thread(hub.get, "/asks/pending", params={"direction": "sideways"})
            assert bad.status_code == 422
    asyncio.run(scenario())


def test_pending_asks_page_oldest_first(hub):
    async def scenario():
        async with hub.client("alice") as alice, hub.client("bob"):
            cids = [(await alice.ask("bob", f"q{i}"))["correlation_id"] for i in range(5)]
            first = await asyncio.to_thread(hub.get, "/asks/pending", alice.token, params={"limit": 2})
            assert [a["correlation_id"] for a in first.json()["asks"]] == cids[:2]
            assert first.json()["next_offset"] == 2 and first.json()["total"] == 5
            last = await asyncio.to_thread(hub.get, "/asks/pending", alice.token, params={"limit": 2, "offset": 4})
            assert [a["correlation_id"] for a in last.json()["asks"]] == cids[4:]
            assert last.json()["next_offset"] is None
            over = await asyncio.to_thread(hub.get, "/asks/pending", alice.token, params={"limit": 501})
            assert over.status_code == 422
    asyncio.run(scenario())


async def test_ask_several_peers_at_once(start_hub):
    hub = start_hub("--ask-fanout", "2")
    async with hub.client("lead") as lead, hub.client("a") as a, hub.client("b") as b, hub.client("c"):
        accepted = await lead.ask(["a", "b"], "status?")
        children = accepted["children"]
        assert [c["name"] for c in children] == ["a", "b"] and len({c["correlation_id"] for c in children}) == 2
        for client in (a, b):
            ask = await client.receive(10)
            await client.ack(ask["correlation_id"], f"{client.name} ok")
        replies = {(await lead.receive(10))["text"] for _ in range(2)}
        assert replies == {"a ok", "b ok"}
        group = await asyncio.to_thread(hub.get, f"/asks/{accepted['group_id']}")
        assert group.json()["states"] == {"replied": 2}
        with pytest.raises(HubRefused) as wide:
            await lead.ask(["a", "b", "c"], "too many")
        assert wide.value.code == "too_many_recipients"


async def test_unanswered_reply_expires_and_the_replier_is_told(start_hub):
    hub = start_hub("--reply-ttl", "1", "--sweep-interval", "0.2")
    alice = hub.client("alice")
    await alice.connect()
    async with hub.client("bob") as bob:
        cid = (await alice.ask("bob", "reply later", timeout_s=60))["correlation_id"]
        await alice.close()
        await offline(hub, "alice")
        await bob.receive(10)
        await bob.ack(cid, "nobody will read this")
        notice = await bob.receive(10)
        assert notice["kind"] == "expired" and notice["correlation_id"] == cid
        assert notice["reason"] == "reply_not_collected"
    stages = hub.get(f"/traces/{cid}").json()["stages"]
    assert [s["stage"] for s in stages if s.get("of") == "reply"] == ["expired"]


def test_cli_ask_wait_and_exit_codes(hub):
    env = {**os.environ, "REPOWIRE_HOME": str(hub.home)}
    env.pop("REPOWIRE_URL", None)

    async def scenario():
        async with hub.client("bob") as bob:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli.main", "ask", "bob", "ship it?", "--wait", "--timeout", "30", "--json",
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            ask = await bob.receive(20)
            await bob.ack(ask["correlation_id"], "shipped")
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 0, err
            assert orjson.loads(out)["result"]["text"] == "shipped"
            expired = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub.cli.main", "ask", "bob", "nobody answers", "--wait", "--timeout", "0.5",
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, _ = await asyncio.wait_for(expired.communicate(), 30)
            assert expired.returncode == 3 and b"no answer before the deadline" in out
    asyncio.run(scenario())


async def test_deleting_the_asked_peer_fails_its_queued_ask_in_the_trace(hub):
    bob = hub.client("bob")
    await bob.connect()
    await bob.close()
    async with hub.client("alice") as alice:
        await offline(hub, "bob")
        cid = (await alice.ask("bob", "still there?", queue_if_offline=True, timeout_s=60))["correlation_id"]
        with hub.http() as http:
            assert (await asyncio.to_thread(http.delete, "/peers/bob")).status_code == 200
        stages = hub.get(f"/traces/{cid}").json()["stages"]
        assert stages[-1]["stage"] == "failed" and stages[-1]["reason"] == "peer_deleted"
