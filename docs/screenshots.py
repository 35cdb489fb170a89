"""Take the README's dashboard screenshots: `python docs/screenshots.py`.

Starts a hub on its embedded store in a temporary folder, connects a few peers, sends them
messages (one answered, one still open), opens a tool-permission question through the real
PreToolUse hook, and photographs the page in Debian's Chromium: light, dark, and with a trace
open. Writes docs/dashboard-light.png, docs/dashboard-dark.png and docs/dashboard-trace.png.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.cli.claude_settings import hook_command  # noqa: E402
from tests.support import HubProcess  # noqa: E402

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
PEERS = [("api", "shop"), ("web", "shop"), ("reviewer", "shop"), ("docs", "default"), ("infra", "ops")]


def join(hub: HubProcess, name: str, circle: str):
    ws = connect(hub.ws_url, additional_headers={"Authorization": f"Bearer {hub.token}"}, legacy=True)
    ws.send(orjson.dumps({"type": "hello", "name": name, "circle": circle}).decode())
    return ws, orjson.loads(ws.recv(timeout=10))


def confirm_all(ws) -> None:
    """Read what arrived and confirm each delivery, as an agent does."""
    while True:
        try:
            frame = orjson.loads(ws.recv(timeout=0.3))
        except TimeoutError:
            return
        if frame["type"] == "deliver":
            ws.send(orjson.dumps({"type": "receipt", "message_id": frame["message_id"], "status": "received"}).decode())


def main() -> None:
    hub = HubProcess(home=Path(tempfile.mkdtemp(prefix="rw-shots-")) / "home").start()
    hook = None
    try:
        peers = {name: join(hub, name, circle) for name, circle in PEERS}
        peers["docs"][0].close()  # one offline peer
        hub.post("/messages", {"to": "api@shop", "text": "main is green again; the flaky checkout test is fixed"})
        hub.post("/messages", {"to": "*@shop", "text": "release 2.4 is cut: please stop merging to main"})
        asked = hub.post("/ask", {"to": "reviewer@shop", "text": "can you review PR #482 (payment retries)?",
                                  "timeout_s": 600}).json()
        hub.post("/ask", {"to": "infra@ops", "text": "which port does the staging API listen on?", "timeout_s": 900})
        hub.post("/ask", {"to": "api@shop", "text": "is the migration safe to run twice?", "timeout_s": 1,
                          "queue_if_offline": True})
        for name in ("api", "web", "reviewer", "infra"):
            confirm_all(peers[name][0])
        peers["reviewer"][0].send(orjson.dumps({"type": "ack", "correlation_id": asked["correlation_id"],
                                                "text": "on it, done within the hour"}).decode())
        hub.post("/messages", {"to": "web@shop", "text": "<script>alert('hi')</script> is shown as text, never run"})
        confirm_all(peers["web"][0])
        event = {"session_id": "8b1c2d3e-0000-4000-8000-000000000001", "cwd": "/home/ana/src/shop",
                 "hook_event_name": "PreToolUse", "tool_name": "Bash",
                 "tool_input": {"command": "git push --force origin main", "description": "Push the release"},
                 "tool_use_id": "toolu_01shots"}
        env = {**os.environ, "REPOWIRE_HOME": str(hub.home), "REPOWIRE_PEER": "api@shop"}
        hook = subprocess.Popen(shlex.split(hook_command(600)), env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hook.stdin.write(orjson.dumps(event))
        hook.stdin.close()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
            page.goto(hub.post("/dashboard/links").json()["url"])
            expect(page.locator("#question-list .question")).to_have_count(1, timeout=15_000)
            expect(page.locator("#message-list .message")).to_have_count(8, timeout=15_000)
            time.sleep(0.5)
            out = ROOT / "docs"
            page.screenshot(path=out / "dashboard-light.png")
            page.click("#theme")
            time.sleep(0.3)
            page.screenshot(path=out / "dashboard-dark.png")
            page.click("#theme")
            page.locator(f'.message[data-trace-id="{asked["correlation_id"]}"][data-kind="ask"]').click()
            expect(page.locator("#trace-stages .stage").last).to_have_attribute("data-stage", "replied", timeout=10_000)
            time.sleep(0.3)
            page.screenshot(path=out / "dashboard-trace.png")
            browser.close()
        print("wrote docs/dashboard-light.png, docs/dashboard-dark.png, docs/dashboard-trace.png")
    finally:
        if hook is not None and hook.poll() is None:
            hook.kill()
        hub.stop()


if __name__ == "__main__":
    main()
