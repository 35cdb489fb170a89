"""Bad input gets a clear error from the code table and changes nothing; every limit at
limit and limit+1."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import eventually, recv, send
from transports.client import HubRefused

FRAME_LIMIT = 2048


def sized(frame: dict, field: str, total: int) -> str:
    """`frame` with `field` padded so that its JSON is exactly `total` bytes."""
    base = len(orjson.dumps({**frame, field: ""}))
    data = orjson.dumps({**frame, field: "y" * (total - base)})
    assert len(data) == total
    return data.decode()


def nothing_written(hub) -> None:
    assert all(p["pending"] == 0 for p in hub.peers().values())


@pytest.fixture
def small_hub(start_hub):
    return start_hub("--limit", f"max_frame_bytes={FRAME_LIMIT}", "--limit", "max_text_chars=100",
                     "--limit", "max_body_bytes=512", "--limit", "transport_max_frame_bytes=8192")


async def test_bad_frames_get_error_frames_and_the_connection_survives(small_hub):
    hub = small_hub
    ws, _ = await hub.raw_peer("alice")
    await hub.raw_peer("bob")
    cases = [
        ("{not json", "bad_json", None),
        ('["a list"]', "invalid_frame", None),
        ('{"type": "teleport", "id": "t1"}', "unknown_type", "t1"),
        ('{"type": "notify", "id": "n1", "to": "bob", "text": 42}', "invalid_frame", "n1"),
        ('{"type": "notify", "id": "n2", "to": "bob"}', "invalid_frame", "n2"),
        ('{"type": "notify", "id": "n3", "to": "nobody", "text": "x"}', "peer_not_found", "n3"),
        ('{"type": "notify", "id": "n4", "to": "bob@", "text": "x"}', "invalid_frame", "n4"),
        ('{"type": "hello", "name": "alice"}', "already_welcomed", None),
        ('{"type": "receipt", "message_id": "xyz", "status": "received"}', "invalid_frame", None),
        # `$` in a Python pattern also matches before a final newline: the patterns must not
        ('{"type": "receipt", "message_id": "' + "a" * 32 + '\\n", "status": "received"}', "invalid_frame", None),
        ('{"type": "bye", "reason": "gone\\n"}', "invalid_frame", None),
    ]
    for raw, code, ref in cases:
        await send(ws, raw)
        frame = await recv(ws)
        assert frame["type"] == "error" and frame["error"]["code"] == code, (raw, frame)
        assert frame.get("ref") == ref, (raw, frame)
        assert set(frame["error"]) == {"code", "message", "details"} and frame["error"]["message"]
    nothing_written(hub)
    await send(ws, {"type": "notify", "id": "ok", "to": "bob", "text": "still alive"})
    assert (await recv(ws))["type"] == "accepted"


async def test_frame_size_at_limit_and_limit_plus_one(small_hub):
    ws, _ = await small_hub.raw_peer("alice")
    await send(ws, sized({"type": "ping", "id": "at"}, "pad", FRAME_LIMIT))
    assert await recv(ws) == {"type": "pong", "ref": "at"}
    await send(ws, sized({"type": "ping", "id": "over"}, "pad", FRAME_LIMIT + 1))
    error = await recv(ws)
    assert error["error"]["code"] == "frame_too_large"
    assert error["error"]["details"] == {"size": FRAME_LIMIT + 1, "limit": FRAME_LIMIT}
    await send(ws, {"type": "ping", "id": "after"})
    assert await recv(ws) == {"type": "pong", "ref": "after"}


async def test_frames_over_the_transport_limit_close_the_socket_with_1009(small_hub):
    ws, _ = await small_hub.raw_peer("alice")
    await send(ws, sized({"type": "ping", "id": "t"}, "pad", 8192))  # at the transport limit: a frame error
    assert (await recv(ws))["error"]["code"] == "frame_too_large"
    await send(ws, sized({"type": "ping", "id": "t"}, "pad", 8193))
    with pytest.raises(ConnectionClosed):
        await recv(ws)
    assert ws.close_code == 1009


async def test_text_length_at_limit_and_limit_plus_one(small_hub):
    ws, _ = await small_hub.raw_peer("alice")
    await small_hub.raw_peer("bob")
    await send(ws, {"type": "notify", "id": "a", "to": "bob", "text": "é" * 100})
    assert (await recv(ws))["type"] == "accepted"
    await send(ws, {"type": "notify", "id": "b", "to": "bob", "text": "é" * 101})
    error = await recv(ws)
    assert error["ref"] == "b" and error["error"]["code"] == "text_too_long"
    assert small_hub.peers()["bob"]["pending"] == 1


def test_rest_bodies(small_hub):
    hub = small_hub

    async def register():
        async with hub.client("bob"):
            pass
    asyncio.run(register())
    with hub.http() as http:
        plain = http.post("/messages", content=b'{"to": "bob", "text": "x"}', headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"
        bad = http.post("/messages", content=b"{oops", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_json"
        missing = http.post("/messages", json={"to": "bob"})
        assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_request"
        wrong = http.post("/messages", json={"to": "bob", "text": ["list"]})
        assert wrong.status_code == 422
        json_type = {"content-type": "application/json"}
        ok = http.post("/messages", content=sized({"to": "bob", "text": "a"}, "x", 512), headers=json_type)
        assert ok.status_code == 202, ok.text
        over = http.post("/messages", content=sized({"to": "bob", "text": "a"}, "x", 513), headers=json_type)
        assert over.status_code == 413 and over.json()["error"]["code"] == "body_too_large"
        unknown = http.get("/nowhere")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
        method = http.put("/messages", json={})
        assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"
    assert hub.peers()["bob"]["pending"] == 1  # only the one good message


def test_rest_needs_a_valid_token(hub):
    for token in (None, "not-a-token"):
        response = hub.get("/peers", token=token)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        posted = hub.post("/messages", {"to": "x", "text": "y"}, token=token)
        assert posted.status_code == 401
    assert hub.get("/health", token=None).status_code == 200


def test_burst_limit_at_limit_and_limit_plus_one(start_hub):
    hub = start_hub("--limit", "message_burst=5", "--limit", "messages_per_second=1")

    async def raw():
        ws, _ = await hub.raw_peer("alice")
        await hub.raw_peer("bob")
        for i in range(6):
            await send(ws, {"type": "notify", "id": f"r{i}", "to": "bob", "text": "x"})
        frames = [await recv(ws) for _ in range(6)]
        by_ref = {f["ref"]: f for f in frames}
        assert [by_ref[f"r{i}"]["type"] for i in range(5)] == ["accepted"] * 5
        assert by_ref["r5"]["error"]["code"] == "rate_limited"
    asyncio.run(raw())
    assert hub.peers()["bob"]["pending"] == 5


def test_connection_limit_at_limit_and_limit_plus_one(start_hub):
    hub = start_hub("--limit", "max_connections=2")

    async def scenario():
        first, _ = await hub.raw_peer("a")
        _second, _ = await hub.raw_peer("b")
        third = await hub.raw()
        await send(third, {"type": "hello", "name": "c"})
        frame = await recv(third)
        assert frame["error"]["code"] == "too_many_connections"
        await third.wait_closed()
        assert third.close_code == 4503
        await first.close()

        async def admitted():
            ws = await hub.raw()
            await send(ws, {"type": "hello", "name": "c"})
            ok = (await recv(ws))["type"] == "welcome"
            if not ok:
                await ws.close()
            return ok
        await eventually(admitted, 10, "a free slot")
    asyncio.run(scenario())
    assert set(hub.peers()) == {"a", "b", "c"}


def test_pending_asks_per_peer_at_limit_and_limit_plus_one(start_hub):
    hub = start_hub("--limit", "pending_asks_per_peer=3")

    async def scenario():
        async with hub.client("alice") as alice, hub.client("bob") as bob:
            asked = [await alice.ask("bob", f"q{i}", timeout_s=60) for i in range(3)]
            with pytest.raises(HubRefused) as refused:
                await alice.ask("bob", "one too many", timeout_s=60)
            assert refused.value.code == "too_many_pending_asks"
            assert refused.value.details == {"pending": 3, "limit": 3}
            rest = await asyncio.to_thread(hub.post, "/ask", {"to": "bob", "text": "over REST too"},
                                           token=alice.token)
            assert rest.status_code == 429 and rest.json()["error"]["code"] == "too_many_pending_asks"
            assert [(await bob.receive(10))["text"] for _ in range(3)] == ["q0", "q1", "q2"]
            pending = await asyncio.to_thread(hub.get, "/asks/pending?direction=outbound", token=alice.token)
            assert pending.json()["total"] == 3   # the refused ones changed nothing
            await bob.ack(asked[0]["correlation_id"])   # a closed ask makes room for the next
            assert (await alice.ask("bob", "now it fits", timeout_s=60))["state"] == "delivered"
    asyncio.run(scenario())


def _nested(levels: int) -> bytes:
    """A tool input of `levels` dicts, one inside the other (the tool input itself is the first)."""
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("levels, status", [(32, 200), (33, 400), (5000, 400)])
def test_json_nesting_at_limit_and_limit_plus_one_is_never_a_500(hub, levels, status):
    """F10: deeply nested JSON was a 500 (and a RecursionError in the hub)."""
    body = b'{"tool_name": "Bash", "tool_input": ' + _nested(levels) + b"}"
    answered = hub.post("/policies/evaluate", content=body, headers={"content-type": "application/json"})
    assert answered.status_code == status, answered.text
    if status == 400:
        assert answered.json()["error"] == {"code": "bad_json", "message": "JSON nests deeper than 32 levels",
                                            "details": {"max_depth": 32}}


@pytest.mark.parametrize("number, status", [(2**64 - 1, 200), (2**64, 400), (-(2**63), 200), (-(2**63) - 1, 400)])
def test_integers_at_the_64_bit_edges(hub, number, status):
    """F10: an integer past 64 bits in a tool input was a 500."""
    body = b'{"tool_name": "Bash", "tool_use_id": "t1", "hook_timeout_s": 30, "tool_input": {"n": %d}}' % number
    answered = hub.post("/policies/evaluate", content=body, headers={"content-type": "application/json"})
    assert answered.status_code == status, answered.text
    if status == 400:
        assert answered.json()["error"]["code"] == "bad_json"
        assert hub.get("/questions").json()["questions"] == []


async def test_a_deep_or_huge_tool_input_over_the_socket_is_an_error_frame(hub):
    ws, _ = await hub.raw_peer("agent")
    deep = '{"type": "ask_blocking", "id": "q1", "tool_name": "Bash", "tool_use_id": "t1", "hook_timeout_s": 30, ' \
           '"tool_input": ' + _nested(40).decode() + "}"
    await send(ws, deep)
    error = await recv(ws)
    assert (error["type"], error["error"]["code"], error["ref"]) == ("error", "bad_json", "q1")
    huge = deep.replace(_nested(40).decode(), f'{{"n": {2**64}}}').replace('"q1"', '"q2"')
    await send(ws, huge)
    error = await recv(ws)
    assert (error["type"], error["error"]["code"], error["ref"]) == ("error", "bad_json", "q2")
    await send(ws, {"type": "ping", "id": "p"})
    assert (await recv(ws))["type"] == "pong"
    assert hub.get("/questions").json()["questions"] == []
    await ws.close()


@pytest.mark.parametrize("resume", [2**53, 2**64])
async def test_a_resume_out_of_range_is_refused_and_leaves_no_ghost(hub, resume):
    """F10: hello with resume >= 2^64 left a peer online with no connection. The limit is
    2^53 - 1 (a sequence stays exact in the store's scripts); one more is refused."""
    ws = await hub.raw()
    await send(ws, f'{{"type": "hello", "name": "ghost", "resume": {resume}}}')
    error = await recv(ws)
    assert error["type"] == "error" and error["error"]["code"] == "invalid_frame"
    await ws.close()
    assert "ghost" not in hub.peers()
    ws, welcome = await hub.raw_peer("ghost", resume=2**53 - 1)
    assert welcome["type"] == "welcome"
    await ws.close()
    await eventually(lambda: hub.peers()["ghost"]["status"] == "offline", what="ghost offline after close")
