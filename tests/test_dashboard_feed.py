"""The dashboard's sign-in and its live socket at the wire: one-time links, the session cookie,
who may use them, the `/dashboard/ws` frames, resuming from a cursor with nothing missed or
twice, and `history_lost` when the store no longer keeps what came after a cursor.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import httpx
import orjson
import pytest
import redis.asyncio as redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import HubProcess, eventually, recv, send, wait_until

COOKIE = "repowire_session"


@dataclass(frozen=True)
class BrowserSession:
    """What a signed-in page holds: the session cookie (the browser sends it to every server on
    this host) and the page's key (from the URL fragment; it never leaves the page)."""
    cookie: str
    key: str


def signed_in_browser(hub: HubProcess) -> BrowserSession:
    link = hub.post("/dashboard/links").json()["url"]
    with httpx.Client() as client:
        response = client.get(link, follow_redirects=False)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/dashboard#key=")
    return BrowserSession(response.cookies[COOKIE], location.removeprefix("/dashboard#key="))


def as_dashboard(browser: BrowserSession, with_key: bool = True) -> dict:
    headers = {"cookie": f"{COOKIE}={browser.cookie}"}
    if with_key:
        headers["x-repowire-dashboard"] = browser.key
    return headers


async def dashboard_socket(hub: HubProcess, browser: BrowserSession | None = None, with_key: bool = True, **kw):
    headers = {"origin": hub.url}
    if browser:
        headers["cookie"] = f"{COOKIE}={browser.cookie}"
        if with_key:
            kw["subprotocols"] = ["repowire.dashboard", f"repowire.key.{browser.key}"]
    return await connect(hub.ws_url.replace("/ws", "/dashboard/ws"), additional_headers=headers, **kw)


async def subscribe(hub: HubProcess, browser: BrowserSession, cursor: str | None = None, backlog: int = 0):
    ws = await dashboard_socket(hub, browser)
    await send(ws, {"type": "subscribe", "cursor": cursor, "backlog": backlog})
    subscribed = await recv(ws)
    assert subscribed["type"] == "subscribed", subscribed
    return ws, subscribed


async def events(ws, count: int, timeout: float = 10) -> list[dict]:
    got = [await recv(ws, timeout) for _ in range(count)]
    assert all(frame["type"] == "event" for frame in got), got
    return got


async def traces(ws, count: int) -> list[dict]:
    """The next `count` traces from `traces` events (one event carries a hub write's traces)."""
    got: list[dict] = []
    while len(got) < count:
        (event,) = await events(ws, 1)
        assert event["kind"] == "traces", event
        got += event["data"]
    assert len(got) == count, got
    return got


async def nothing_more(ws) -> None:
    """Nothing further arrives: a ping's pong is the next frame (frames are in order)."""
    await send(ws, {"type": "ping", "id": "p"})
    assert await recv(ws) == {"type": "pong", "ref": "p"}


def test_a_sign_in_link_works_once_and_sets_a_strict_cookie(hub):
    made = hub.post("/dashboard/links")
    assert made.status_code == 201 and made.json()["expires_in_s"] == 600
    link = made.json()["url"]
    assert link.startswith(f"{hub.url}/dashboard/login?code=")
    with httpx.Client() as client:
        first = client.get(link, follow_redirects=False)
        again = client.get(link, follow_redirects=False)
        html = client.get(link, headers={"accept": "text/html"})
    assert first.status_code == 303
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}=") and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert "Path=/" in set_cookie and "Max-Age=43200" in set_cookie
    assert again.status_code == 401 and again.json()["error"]["code"] == "login_link_invalid"
    assert html.status_code == 401 and "login_link_invalid" in html.text
    assert html.headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("code", ["", "nope", "x" * 128, "x" * 129])
def test_a_made_up_code_signs_nobody_in(hub, code):
    response = httpx.get(f"{hub.url}/dashboard/login", params={"code": code}, follow_redirects=False)
    assert response.status_code == 401 and response.json()["error"]["code"] == "login_link_invalid"
    assert "set-cookie" not in response.headers


def test_serve_prints_a_working_sign_in_link(hub):
    log = wait_until(lambda: "/dashboard/login?code=" in hub.log() and hub.log(), 10, "the sign-in link")
    link = next(line.strip() for line in log.splitlines() if "/dashboard/login?code=" in line)
    assert link.startswith(f"{hub.url}/dashboard/login?code=")
    assert httpx.get(link, follow_redirects=False).status_code == 303


def test_the_cli_prints_a_link(hub):
    from tests.support import repowire
    done = repowire(hub, "dashboard")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1].strip()
    assert url.startswith(f"{hub.url}/dashboard/login?code=")
    assert httpx.get(url, follow_redirects=False).status_code == 303


def test_the_cookie_acts_as_the_person_only_with_the_dashboard_header(hub):
    browser = signed_in_browser(hub)
    assert hub.get("/peers", token=None, headers=as_dashboard(browser)).status_code == 200
    refused = hub.get("/peers", token=None, headers=as_dashboard(browser, with_key=False))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    session = hub.get("/dashboard/session", token=None, headers=as_dashboard(browser)).json()
    assert session["as"] == {"peer_id": "0" * 32, "name": "operator", "circle": "default"}
    # a browser session makes no more links and acts as no peer
    assert hub.post("/dashboard/links", token=None, headers=as_dashboard(browser)).status_code == 403
    alice = hub.post("/messages", {"to": "*", "text": "x"}, token=None,
                     headers={**as_dashboard(browser), "x-repowire-peer": "alice"})
    assert alice.status_code == 403
    # peers may not make links either
    assert hub.post("/dashboard/links", token=None).status_code == 401


def test_a_cookie_replayed_by_another_local_server_is_not_the_operator(hub):
    """F1: browsers do not scope cookies by port, so an agent's dev server on 127.0.0.1 receives
    the session cookie; with the constant `X-Repowire-Dashboard: 1` it could approve its own
    tool calls and add an allow-all policy. The cookie now counts only with the page's key."""
    stolen = signed_in_browser(hub).cookie
    for key in ("1", "", "x" * 43, signed_in_browser(hub).key):   # the old constant, none, a guess, another tab's
        headers = {"cookie": f"{COOKIE}={stolen}", "x-repowire-dashboard": key}
        refused = hub.get("/questions", token=None, headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized", key
        policy = hub.post("/policies", {"action": "allow", "tool": "*"}, token=None, headers=headers)
        assert policy.status_code == 401, key
    assert hub.get("/policies").json()["policies"] == []


async def test_the_socket_needs_the_pages_key_too(hub):
    browser = signed_in_browser(hub)
    ws = await dashboard_socket(hub, browser, with_key=False)
    frame = await recv(ws)
    assert frame["type"] == "error" and frame["error"]["code"] == "unauthorized"
    await ws.wait_closed()
    assert ws.close_code == 4401
    forged = BrowserSession(browser.cookie, "not-the-key")
    ws = await dashboard_socket(hub, forged)
    assert (await recv(ws))["error"]["code"] == "unauthorized"
    await ws.wait_closed()
    ws = await dashboard_socket(hub, browser)
    assert ws.subprotocol == "repowire.dashboard"
    await send(ws, {"type": "subscribe", "cursor": None, "backlog": 0})
    assert (await recv(ws))["type"] == "subscribed"
    await ws.close()


def test_signing_out_ends_the_session(hub):
    browser = signed_in_browser(hub)
    out = hub.post("/dashboard/logout", token=None, headers=as_dashboard(browser))
    assert out.status_code == 204 and 'repowire_session=""' in out.headers["set-cookie"]
    assert hub.get("/peers", token=None, headers=as_dashboard(browser)).status_code == 401


async def test_the_socket_refuses_a_foreign_origin_and_a_missing_session(hub):
    browser = signed_in_browser(hub)
    with pytest.raises(InvalidStatus) as refused:
        await connect(hub.ws_url.replace("/ws", "/dashboard/ws"),
                      additional_headers={"origin": "http://evil.example", "cookie": f"{COOKIE}={browser.cookie}"})
    assert refused.value.response.status_code == 403
    ws = await dashboard_socket(hub)
    frame = await recv(ws)
    assert frame["type"] == "error" and frame["error"]["code"] == "unauthorized"
    await ws.wait_closed()
    assert ws.close_code == 4401


@pytest.mark.parametrize("first, code", [
    ({"type": "hello", "name": "x"}, "subscribe_required"),
    ({"type": "ping"}, "subscribe_required"),
    ({"type": "subscribe", "backlog": 1001}, "invalid_frame"),
    ({"type": "subscribe", "cursor": "yesterday"}, "invalid_frame"),
])
async def test_the_first_frame_must_be_a_good_subscribe(hub, first, code):
    ws = await dashboard_socket(hub, signed_in_browser(hub))
    await send(ws, first)
    frame = await recv(ws)
    assert frame["type"] == "error" and frame["error"]["code"] == code, frame
    await ws.wait_closed()
    assert ws.close_code == 4402


async def test_events_resume_from_the_cursor_with_nothing_missed_or_twice(hub):
    browser = signed_in_browser(hub)
    ws, subscribed = await subscribe(hub, browser)
    assert subscribed == {"type": "subscribed", "cursor": subscribed["cursor"], "history_lost": False}
    bob = await hub.raw_peer("bob")
    (presence,) = await events(ws, 1)
    assert presence["kind"] == "presence" and presence["data"]["status"] == "online"
    assert presence["data"]["peer"]["name"] == "bob" and "token_digest" not in presence["data"]["peer"]
    sent = hub.post("/messages", {"to": "bob", "text": "first"}).json()
    (event,) = await events(ws, 1)
    (trace,) = event["data"]
    assert event == {"type": "event", "cursor": event["cursor"], "kind": "traces", "data": [{
        "trace_id": sent["message_id"],
        "stages": trace["stages"],
        "message": {"kind": "notify", "message_id": sent["message_id"], "to": "bob", "text": "first",
                    "from": {"peer_id": "0" * 32, "name": "operator", "circle": "default"},
                    "at": trace["stages"][0]["at"]}}]}
    assert [s["stage"] for s in trace["stages"]] == ["accepted", "routed"]
    cursor = event["cursor"]
    await ws.close()

    missed = [hub.post("/messages", {"to": "bob", "text": f"while away {i}"}).json()["message_id"] for i in range(5)]
    ws, subscribed = await subscribe(hub, browser, cursor=cursor)
    assert subscribed == {"type": "subscribed", "cursor": cursor, "history_lost": False}
    caught_up = await traces(ws, 5)
    assert [t["trace_id"] for t in caught_up] == missed
    await nothing_more(ws)
    live = hub.post("/messages", {"to": "bob", "text": "live again"}).json()
    (after,) = await traces(ws, 1)
    assert after["trace_id"] == live["message_id"]
    await nothing_more(ws)
    await ws.close()
    await bob[0].close()


async def test_a_fresh_subscriber_gets_the_backlog_then_live(hub):
    browser = signed_in_browser(hub)
    watcher, _ = await subscribe(hub, browser)
    await hub.raw_peer("carol")
    await events(watcher, 1)
    ids = []
    for i in range(4):  # one stream entry each: the next is sent once the last one's entry is seen
        ids.append(hub.post("/messages", {"to": "carol", "text": f"m{i}"}).json()["message_id"])
        await traces(watcher, 1)
    ws, subscribed = await subscribe(hub, browser, backlog=3)
    backlog = await events(ws, 3)
    assert [e["data"][0]["trace_id"] for e in backlog] == ids[1:]
    assert subscribed["cursor"] < backlog[0]["cursor"] and not subscribed["history_lost"]
    await nothing_more(ws)
    ws2, _ = await subscribe(hub, browser, backlog=1000)   # the limit; 1001 is refused (above)
    everything = await events(ws2, 5)   # carol's presence, then the four messages
    assert everything[0]["kind"] == "presence"
    await nothing_more(ws2)


async def test_history_lost_when_the_store_no_longer_keeps_what_followed_the_cursor(start_hub, shared_store):
    hub = start_hub("--redis-url", shared_store)
    browser = signed_in_browser(hub)
    await hub.raw_peer("dave")
    ws, _ = await subscribe(hub, browser)
    hub.post("/messages", {"to": "dave", "text": "seen"})
    (seen,) = await events(ws, 1)
    await ws.close()
    for i in range(3):
        hub.post("/messages", {"to": "dave", "text": f"trimmed {i}"})
    last = hub.post("/messages", {"to": "dave", "text": "kept"}).json()["message_id"]
    store = redis.Redis.from_url(shared_store)
    try:
        async def newest_holds_last() -> bool:
            ((_, fields),) = await store.xrevrange("rw:events", count=1)
            return last.encode() in fields[b"d"]
        await eventually(newest_holds_last, 10)   # trace events are gathered for up to 5 ms
        await store.xtrim("rw:events", maxlen=1, approximate=False)
    finally:
        await store.aclose()
    ws, subscribed = await subscribe(hub, browser, cursor=seen["cursor"], backlog=10)
    assert subscribed["history_lost"] is True and subscribed["missed_after"] == seen["cursor"]
    (kept,) = await events(ws, 1)
    assert last in [trace["trace_id"] for trace in kept["data"]]
    await nothing_more(ws)
    # a cursor from a store that never reached it (the store was replaced): lost as well
    ws, subscribed = await subscribe(hub, browser, cursor="99999999999999-0")
    assert subscribed["history_lost"] is True
    await ws.close()


async def test_questions_and_answers_reach_the_feed(hub):
    browser = signed_in_browser(hub)
    ws, _ = await subscribe(hub, browser)
    asking = asyncio.create_task(asyncio.to_thread(
        hub.post, "/questions/ask-blocking", {"tool_name": "Bash", "tool_input": {"command": "make deploy"},
                                              "session_id": "s1", "tool_use_id": "toolu_1", "timeout_s": 30}))
    (opened,) = await events(ws, 1)
    assert opened["kind"] == "question" and opened["data"]["tool_input"] == {"command": "make deploy"}
    assert opened["data"]["state"] == "pending"
    qid = opened["data"]["correlation_id"]
    cookie_answer = hub.post(f"/questions/{qid}/answer", {"decision": "allow"}, token=None, headers=as_dashboard(browser))
    assert cookie_answer.status_code == 200
    (decided,) = await events(ws, 1)
    assert decided["kind"] == "question_decided"
    assert {k: decided["data"][k] for k in ("correlation_id", "decision", "answered_by")} == {
        "correlation_id": qid, "decision": "allow", "answered_by": "human"}
    assert (await asking).json()["decision"] == "allow"
    await ws.close()


async def test_replies_carry_their_text_into_the_feed(hub):
    browser = signed_in_browser(hub)
    erin, _ = await hub.raw_peer("erin")
    ws, _ = await subscribe(hub, browser)
    asked = hub.post("/ask", {"to": "erin", "text": "which port?", "timeout_s": 60}).json()
    (ask,) = await traces(ws, 1)
    assert ask["message"]["kind"] == "ask" and ask["message"]["to"] == "erin@default"
    assert ask["message"]["correlation_id"] == asked["correlation_id"]
    await send(erin, {"type": "ack", "correlation_id": asked["correlation_id"], "text": "8080"})
    (reply,) = await traces(ws, 1)
    assert reply["trace_id"] == asked["correlation_id"]
    assert reply["message"]["kind"] == "reply" and reply["message"]["text"] == "8080"
    assert [s["stage"] for s in reply["stages"]] == ["replied"]
    await ws.close()
    await erin.close()


def test_message_previews_are_cut_at_2000_characters(hub):
    browser = signed_in_browser(hub)

    async def run():
        await hub.raw_peer("frank")
        ws, _ = await subscribe(hub, browser)
        hub.post("/messages", {"to": "frank", "text": "x" * 2000})
        hub.post("/messages", {"to": "frank", "text": "y" * 2001})
        at_limit, over = await traces(ws, 2)
        assert at_limit["message"]["text"] == "x" * 2000 and "truncated" not in at_limit["message"]
        assert over["message"]["text"] == "y" * 2000 and over["message"]["truncated"] is True
        await ws.close()

    asyncio.run(run())


def test_the_page_and_its_files_are_served_from_dashboard(hub):
    for name, media in [("", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css"),
                        ("/icon.svg", "image/svg+xml")]:
        response = httpx.get(f"{hub.url}/dashboard{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
        assert response.headers["x-content-type-options"] == "nosniff"
    for bad in ["/../hub.token", "/index.htm", "/%2e%2e%2fhub.token"]:
        assert httpx.get(f"{hub.url}/dashboard{bad}").status_code == 404
    body = orjson.loads(httpx.get(f"{hub.url}/dashboard/nothing").content)
    assert body["error"]["code"] == "not_found"


async def test_a_slow_dashboard_is_cut_and_does_not_stall_another(start_hub):
    """Promise 6 for dashboards: a subscriber that stops reading is closed as a slow consumer
    (4008) once its bounded outbox fills; another subscriber still gets every event."""
    hub = start_hub("--limit", "outbox_frames=16")
    browser = signed_in_browser(hub)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    slow = await dashboard_socket(hub, browser, sock=sock, max_queue=1)
    await send(slow, {"type": "subscribe"})
    assert (await recv(slow))["type"] == "subscribed"
    fast, _ = await subscribe(hub, browser)
    target, _ = await hub.raw_peer("target")
    await target.close()   # offline: every notify waits in its inbox
    count = 3000   # previews of 2,000 characters: about 6 MB of events against a 64 KiB buffer
    got: list[str] = []

    async def read_fast() -> None:   # a dashboard that keeps up, reading while the messages flow
        for _ in range(count * 2):   # presence events come too (target, sender)
            if len(got) == count:
                return
            (event,) = await events(fast, 1)
            if event["kind"] == "traces":
                got.extend(t["trace_id"] for t in event["data"] if t.get("message"))

    reading = asyncio.create_task(read_fast())
    async with hub.client("sender") as sender:
        sent = [(await sender.notify("target", "z" * 2000))["message_id"] for _ in range(count)]
    await asyncio.wait_for(reading, 30)
    assert got == sent, "the fast dashboard got every message, in order"
    with pytest.raises(ConnectionClosed):
        for _ in range(count):
            await recv(slow, timeout=10)
    assert slow.close_code == 4008 and slow.close_reason == "slow_consumer"
    await send(fast, {"type": "ping", "id": "p"})   # then no message comes twice: only presence before the pong
    for _ in range(10):
        frame = await recv(fast)
        if frame == {"type": "pong", "ref": "p"}:
            break
        assert frame["kind"] == "presence", frame
    else:
        raise AssertionError("no pong")
