"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright against a
real hub on its embedded store. Sign-in with the one-time link, live peers and messages with
their traces, questions from the real PreToolUse hook answered in the page, a reconnect that
misses nothing, and peer text that stays text.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

from tests.receiver import Receiver
from tests.support import HubProcess, wait_until
from tests.test_hook import hook_for, payload

CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps trying to reach Google's hosts (closed here).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), "Debian's chromium is needed: apt-get install -y chromium (the README's test command does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    yield opened
    context.close()
    assert not problems, f"the page threw: {problems}"


def sign_in(page: Page, hub: HubProcess) -> None:
    link = hub.post("/dashboard/links").json()["url"]
    page.goto(link)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)


@pytest.fixture
def peer():
    """Connects a peer to the hub's socket, as an agent does; closed after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda hub, name, circle="default": connected_peer(stack, hub, name, circle)


def connected_peer(stack: contextlib.ExitStack, hub: HubProcess, name: str, circle: str) -> tuple[ClientConnection, dict]:
    ws = stack.enter_context(connect(hub.ws_url, additional_headers={"Authorization": f"Bearer {hub.token}"}))
    ws.send(orjson.dumps({"type": "hello", "name": name, "circle": circle}).decode())
    welcome = orjson.loads(ws.recv(timeout=10))
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


def receive(ws: ClientConnection, frame_type: str) -> dict:
    for _ in range(50):
        frame = orjson.loads(ws.recv(timeout=10))
        if frame["type"] == frame_type:
            return frame
    raise AssertionError(f"no {frame_type} frame")


def messages(page: Page):
    return page.locator("#message-list .message")


def test_sign_in_with_the_one_time_link_sets_a_strict_http_only_cookie(hub, page):
    link = hub.post("/dashboard/links").json()["url"]
    page.goto(link)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    assert page.url == f"{hub.url}/dashboard", "the code must not stay in the address bar"
    (cookie,) = page.context.cookies()
    assert cookie["name"] == "repowire_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == "", "scripts must not read the session"
    expect(page.locator("#node-name")).to_have_text("node node-1")
    # the link worked once: a second browser gets the refusal, and no session
    other = page.context.browser.new_context()
    try:
        second = other.new_page()
        response = second.goto(link)
        assert response.status == 401
        expect(second.locator("h1")).to_have_text("This sign-in link does not work")
        expect(second.locator("code")).to_have_text("login_link_invalid")
        expect(second.locator("pre")).to_have_text("repowire dashboard --open")
        second.goto(f"{hub.url}/dashboard")
        expect(second.locator("#signed-out")).to_be_visible()
        expect(second.locator("#app")).to_be_hidden()
    finally:
        other.close()
    # signing out ends the session on the hub, not only in this browser
    page.click("#sign-out")
    expect(page.locator("#signed-out")).to_be_visible()
    page.goto(f"{hub.url}/dashboard")
    expect(page.locator("#signed-out")).to_be_visible()


def test_a_peer_appears_live_and_a_notify_opens_its_trace(hub, page, peer):
    sign_in(page, hub)
    expect(page.locator("#peer-list .peer")).to_have_count(0)
    alice, welcome = peer(hub, "alice", "team")
    row = page.locator(f'#peer-list .peer[data-peer-id="{welcome["peer_id"]}"]')
    expect(row).to_have_attribute("data-status", "online", timeout=WAIT_MS)
    expect(row.locator(".name")).to_have_text("alice@team")
    expect(row).to_contain_text("socket")

    accepted = hub.post("/messages", {"to": "alice@team", "text": "tests are green on main"}).json()
    delivery = receive(alice, "deliver")
    alice.send(orjson.dumps({"type": "receipt", "message_id": delivery["message_id"], "status": "received"}).decode())
    message = page.locator(f'.message[data-trace-id="{accepted["message_id"]}"]')
    expect(message.locator(".text")).to_have_text("tests are green on main", timeout=WAIT_MS)
    expect(message.locator(".route")).to_have_text("operator → alice@team")
    expect(message.locator(".state")).to_have_text("received", timeout=WAIT_MS)

    message.click()
    expect(page.locator("#trace")).to_be_visible()
    expect(page.locator("#trace-title")).to_have_text("notify trace")
    stages = page.locator("#trace-stages .stage")
    expect(stages).to_have_count(4, timeout=WAIT_MS)
    assert stages.evaluate_all("nodes => nodes.map(n => n.dataset.stage)") == ["accepted", "routed", "sent", "received"]
    expect(page.locator('#trace-facts dd[data-fact="final"]')).to_have_text("received")
    page.keyboard.press("Escape")
    expect(page.locator("#trace")).to_be_hidden()

    alice.close()
    expect(row).to_have_attribute("data-status", "offline", timeout=WAIT_MS)


def test_peer_text_is_shown_as_text(hub, page, peer):
    sign_in(page, hub)
    peer(hub, "bob")
    hostile = ('<script>window.__owned = 1</script><img src=x onerror="window.__owned = 2">'
               '<b>bold</b> & "quotes"')
    hub.post("/messages", {"to": "bob", "text": hostile})
    text = messages(page).first.locator(".text")
    expect(text).to_have_text(hostile, timeout=WAIT_MS)
    assert text.evaluate("node => node.children.length") == 0
    assert page.evaluate("window.__owned") is None
    assert page.locator("#message-list script, #message-list img, #message-list b").count() == 0


def test_the_page_sends_its_security_headers_and_loads_nothing_from_elsewhere(hub, page):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(f"{hub.url}/dashboard")
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    expect(page.locator("#signed-out")).to_be_visible()
    assert requests and all(url.startswith(hub.url) for url in requests), requests


@pytest.mark.parametrize("button, decision", [("Allow", "allow"), ("Deny", "deny")])
def test_a_question_from_the_real_hook_is_answered_in_the_page(hub, page, button, decision):
    sign_in(page, hub)
    event = payload("git push origin main")
    hook = hook_for(hub, timeout_s=60).start(event)
    card = page.locator("#question-list .question")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    expect(card.locator(".title")).to_contain_text("Bash")
    expect(card.locator("pre")).to_contain_text('"command": "git push origin main"')
    expect(card.locator(".countdown")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(page.locator("#questions-count")).to_have_text("1")
    card.get_by_role("button", name=button).click()
    run = hook.finish()
    assert run.decision == decision
    assert run.reason == f"repowire: {decision} (human): {decision} by operator"
    expect(card).to_have_count(0)
    expect(page.locator("#questions-empty")).to_be_visible()
    (listed,) = hub.get("/decisions").json()["decisions"]
    assert listed["decision"] == decision and listed["answered_by"] == "human"


def test_a_question_answered_elsewhere_leaves_every_page(hub, page, browser):
    sign_in(page, hub)
    other = browser.new_context()
    try:
        second = other.new_page()
        sign_in(second, hub)
        hook = hook_for(hub, timeout_s=60).start(payload("rm -rf build"))
        for shown in (page, second):
            expect(shown.locator("#question-list .question")).to_have_count(1, timeout=WAIT_MS)
        (question,) = hub.get("/questions").json()["questions"]
        assert hub.post(f"/questions/{question['correlation_id']}/answer", {"decision": "deny"}).status_code == 200
        assert hook.finish().decision == "deny"
        for shown in (page, second):
            expect(shown.locator("#question-list .question")).to_have_count(0, timeout=WAIT_MS)
    finally:
        other.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_reconnect_misses_nothing_and_shows_nothing_twice(start_hub, page, peer):
    hub = start_hub("--port", str(free_port()))  # the page must find it again after the restart
    sign_in(page, hub)
    peer(hub, "carol")
    sent = [hub.post("/messages", {"to": "carol", "text": f"before {i}"}).json()["message_id"] for i in range(3)]
    expect(messages(page)).to_have_count(3, timeout=WAIT_MS)

    page.click("#pause")  # the subscription closes; events keep coming
    expect(page.locator("#live-status")).to_have_attribute("data-state", "paused")
    sent += [hub.post("/messages", {"to": "carol", "text": f"while paused {i}"}).json()["message_id"] for i in range(20)]
    page.click("#pause")
    expect(messages(page)).to_have_count(23, timeout=WAIT_MS)

    # the hub restarts under the page: it reconnects by itself and catches up from its cursor
    hub.stop()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)
    hub.restart()
    peer(hub, "carol")
    sent += [hub.post("/messages", {"to": "carol", "text": f"after restart {i}"}).json()["message_id"] for i in range(5)]
    expect(messages(page)).to_have_count(28, timeout=30_000)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    shown = messages(page).evaluate_all("rows => rows.map(r => r.dataset.traceId)")
    assert shown == list(reversed(sent)), "every message once, newest first"


def test_the_browsers_pongs_keep_the_page_live_over_many_heartbeats(start_hub, page, peer):
    """Chromium answers the hub's keepalive pings itself; the hub must take those pongs (most
    come alone, and are matched without websockets' parser) or it cuts the page within two
    heartbeats and the page shows `reconnecting`."""
    heartbeat = 0.5
    hub = start_hub("--heartbeat", str(heartbeat))
    sign_in(page, hub)
    peer(hub, "erin")
    page.evaluate("""() => {
        window.liveStates = [];
        new MutationObserver(() => window.liveStates.push(document.getElementById("live-status").dataset.state))
            .observe(document.getElementById("live-status"), {attributes: true, attributeFilter: ["data-state"]});
    }""")
    started = time.monotonic()
    for shown in range(1, 101):   # a message at a time, for eight heartbeats
        hub.post("/messages", {"to": "erin", "text": f"still here {shown}"})
        expect(messages(page)).to_have_count(shown, timeout=WAIT_MS)
        if time.monotonic() - started > 8 * heartbeat:
            break
    assert time.monotonic() - started > 8 * heartbeat
    assert page.evaluate("window.liveStates") == [], "the page's socket was cut and reconnected"
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def test_the_composer_notifies_a_peer_as_the_person(hub, page, peer):
    sign_in(page, hub)
    dave, _ = peer(hub, "dave")
    page.fill("#compose-to", "dave")
    page.fill("#compose-text", "please rebase on main")
    page.click("#composer button[type=submit]")
    expect(page.locator("#compose-result")).to_have_text(re.compile(r"^notify delivered: [0-9a-f]{32}$"), timeout=WAIT_MS)
    delivery = receive(dave, "deliver")
    assert delivery["text"] == "please rebase on main"
    assert delivery["from"] == {"peer_id": "0" * 32, "name": "operator", "circle": "default"}
    page.fill("#compose-to", "nobody-here")
    page.fill("#compose-text", "hello?")
    page.click("#composer button[type=submit]")
    expect(page.locator("#compose-result")).to_have_text(re.compile(r"^peer_not_found: "), timeout=WAIT_MS)


def test_kind_and_peer_filters(hub, page, peer):
    sign_in(page, hub)
    peer(hub, "erin")
    peer(hub, "frank")
    hub.post("/messages", {"to": "erin", "text": "for erin"})
    hub.post("/messages", {"to": "frank", "text": "for frank"})
    hub.post("/ask", {"to": "frank", "text": "frank, a question", "timeout_s": 120})
    expect(messages(page)).to_have_count(3, timeout=WAIT_MS)
    page.fill("#message-peer", "frank")
    expect(messages(page)).to_have_count(2)
    page.click('#kind-filter button[data-kind="ask"]')
    expect(messages(page)).to_have_count(1)
    expect(messages(page).locator(".text")).to_have_text("for frank")


def test_a_question_card_shows_the_whole_input_every_character_and_the_hubs_labels(hub, page):
    """F3: the card cut tool input at 4,000 characters, rendered bidi reordering, and labelled a
    button with the agent's title even when it contradicted the button's decision."""
    sign_in(page, hub)
    token = hub.post("/peers", {"name": "agent-7"}).json()["token"]
    command = "echo start " + "x" * 6000 + " \u202eecho fdp.exe\u202c tail-end-marker"
    body = {"tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": "t-f3", "hook_timeout_s": 60,
            "options": [{"id": "yes", "title": "Deny", "decision": "allow"},
                        {"id": "no", "title": "Allow\u200b", "decision": "deny"}]}
    answered: dict = {}

    def ask() -> None:
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            answered.update(client.post("/questions/ask-blocking", json=body).json())
    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    card = page.locator("#question-list .question")
    expect(card).to_have_count(1, timeout=WAIT_MS)
    shown = card.locator("pre").inner_text()
    assert "tail-end-marker" in shown and shown.count("x") >= 6000, "the whole input, not the first 4,000 characters"
    assert "⟨U+202E⟩echo fdp.exe⟨U+202C⟩" in shown and "\u202e" not in shown
    overflow = card.locator("pre").evaluate("e => getComputedStyle(e).overflowY")
    assert overflow == "auto", "a long input scrolls inside its card"
    allow_button = card.locator("button[data-decision=allow][data-scope='']")
    deny_button = card.locator("button[data-decision=deny]")
    expect(allow_button).to_have_text("Allow: «Deny»")
    expect(deny_button).to_have_text("Deny: «Allow⟨U+200B⟩»")
    allow_button.click()
    thread.join(20)
    assert answered["decision"] == "allow" and answered["option_id"] == "yes"


def _held(hub: HubProcess, token: str, body: dict, answers: dict) -> threading.Thread:
    def ask() -> None:
        with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            answers[body.get("tool_use_id") or body["title"]] = client.post("/questions/ask-blocking", json=body).json()
    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread


def test_questions_show_newest_first_with_scoped_allows_and_keys_and_a_plain_question_with_its_options(hub, page):
    sign_in(page, hub)
    token = hub.post("/sessions", {"backend": "claude", "cwd": "/work/shop", "agent_pid": 1, "name": "shop-claude",
                                   "session_id": "sess-1"}).json()["session_token"]
    answers: dict = {}
    threads = []
    cards = page.locator("#question-list .question")
    for n, command in enumerate(("npm test -- -k cart", "make deploy")):
        threads.append(_held(hub, token, {"tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": f"t{n}",
                                          "session_id": "sess-1", "cwd": "/work/shop", "hook_timeout_s": 60}, answers))
        expect(cards).to_have_count(n + 1, timeout=WAIT_MS)
    expect(page).to_have_title("(2) repowire")
    newest, oldest = cards.nth(0), cards.nth(1)
    expect(newest.locator("pre")).to_contain_text("make deploy")
    # a card that arrives never takes the selection from the one the person is looking at
    expect(oldest).to_have_class(re.compile(r"\bselected\b"))
    expect(oldest.locator("button[data-key=A]")).to_have_text("Always allow “npm test …”A")
    expect(oldest.locator("button[data-key=s]")).to_have_text("Allow for this sessions")
    page.keyboard.press("k")
    expect(newest).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("j")                      # back to the older card: always allow its command's prefix
    expect(oldest).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("Shift+A")
    expect(cards).to_have_count(1, timeout=WAIT_MS)
    page.keyboard.press("d")                      # the one left is selected: deny it
    expect(cards).to_have_count(0, timeout=WAIT_MS)
    for thread in threads:
        thread.join(20)
    assert (answers["t0"]["decision"], answers["t0"]["scope"]) == ("allow", "always")
    assert answers["t1"]["decision"] == "deny" and "scope" not in answers["t1"]
    (rule,) = hub.get("/policies").json()["policies"]
    assert (rule["command_prefix"], rule["scope"]) == ("npm test", "always")
    expect(page).to_have_title("repowire")

    plain = {"title": "Ship \u202eit?", "options": [{"id": "yes", "title": "Yes, ship"}, {"id": "no", "title": "No"}],
             "default": "no"}
    thread = _held(hub, token, plain, answers)
    expect(cards).to_have_count(1, timeout=WAIT_MS)
    expect(cards.nth(0).locator(".title")).to_contain_text("Ship ⟨U+202E⟩it?")
    expect(cards.nth(0).locator("button")).to_have_text(["«Yes, ship»", "«No» (default)"])
    assert cards.nth(0).locator("button[data-key=a]").count() == 0, "a plain question has no allow"
    cards.nth(0).get_by_role("button", name="«Yes, ship»").click()
    thread.join(20)
    assert answers[plain["title"]]["option_id"] == "yes"


def test_an_alerts_link_signs_in_once_and_opens_its_question(start_hub, browser):
    with Receiver() as receiver:
        hub = start_hub("--alert-webhook", f"{receiver.url}/hook", env={"REPOWIRE_ALERT_SECRET": "x"})
        token = hub.post("/sessions", {"backend": "claude", "cwd": "/work/shop", "agent_pid": 1,
                                       "name": "shop-claude"}).json()["session_token"]
        answers: dict = {}
        threads = []
        for n in range(2):   # one after the other: the first is the older, which the page would not select itself
            threads.append(_held(hub, token, {"tool_name": "Bash", "tool_input": {"command": f"make step-{n}"},
                                              "tool_use_id": f"t{n}", "cwd": "/work/shop", "hook_timeout_s": 60},
                                 answers))
            hooks = wait_until(lambda: len(receiver.got("/hook")) == n + 1 and receiver.got("/hook"), 10, "the alerts")
        sent = orjson.loads(min(hooks, key=lambda h: h.at).body)
        assert sent["summary"] == "make step-0"
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(sent["url"])
        card = page.locator(f"#question-list .question[data-question-id='{sent['question']['correlation_id']}']")
        expect(card).to_have_class(re.compile(r"\bselected\b"), timeout=WAIT_MS)
        page.keyboard.press("d")
        expect(card).to_have_count(0, timeout=WAIT_MS)
        again = context.new_page()
        again.goto(sent["url"])
        expect(again.locator("body")).to_contain_text("This sign-in link does not work")
        context.close()
        hub.post(f"/questions/{next(iter(hub.get('/questions').json()['questions']))['correlation_id']}/answer",
                 {"decision": "deny"})
        for thread in threads:
            thread.join(20)
        assert sorted(a["decision"] for a in answers.values()) == ["deny", "deny"]


def test_jobs_show_live_and_a_job_opens_with_its_trace_progress_and_result(hub, page, tmp_path, gate):
    sign_in(page, hub)
    expect(page.locator("#jobs-empty")).to_be_visible(timeout=WAIT_MS)
    work = tmp_path / "gated.py"
    work.write_text(textwrap.dedent(f"""
        import sys
        print("reading", sys.stdin.read(), flush=True)
        {gate.waits}
        print("<b>all</b> done")
        """))
    job = hub.post("/jobs", {"prompt": "the changelog", "path": str(tmp_path), "backend": "command",
                             "command": [sys.executable, str(work)]}).json()
    row = page.locator(f'#job-list li[data-job="{job["id"]}"]')
    expect(row).to_have_attribute("data-state", "running", timeout=WAIT_MS)   # live, from the job events
    expect(row.locator(".name")).to_have_text(f"command in {tmp_path}")
    gate.open()
    expect(row).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    expect(row.locator(".detail")).to_have_text("reading the changelog\n<b>all</b> done")   # text, never markup
    row.click()
    expect(page.locator("#trace-title")).to_have_text("job: succeeded", timeout=WAIT_MS)
    expect(page.locator('#trace-facts dd[data-fact="prompt"]')).to_have_text("the changelog")
    expect(page.locator('#trace-facts dd[data-fact="result"]')).to_have_text("reading the changelog\n<b>all</b> done")
    expect(page.locator("#trace-stages li .name")).to_have_text(["queued", "started", "executor", "succeeded"])
    expect(page.locator('#trace-facts dd[data-fact="progress"]')).to_have_count(2)
