"""What a person is asked, and what approvals cost, with the real Claude Code CLI.

    python -m bench.approvals [--runs 3] [--alerts 20] [--out bench/RESULTS.md]

Fifty tool calls of a realistic mix (12 reads, 10 searches through the shell, 8 edits and
writes, 8 test runs, 8 git commands, 4 web fetches from a local server), scripted through the
local model stand-in, are run by `claude -p` in a fresh project under each approval preset
(`repowire hooks install --approvals NAME`), and once with no approval hook at all (`off`, the
baseline). A person is watching (`repowire questions --follow`) and a program in their place
allows every question at once; the questions it answered are the calls that reached a person.
Claude Code's own permission rules allow every tool in these runs, so only the hub decides.

- reached a person: questions answered by the person, of 50;
- added per call: (the run's wall time − the baseline's) / 50, the median of the runs; under
  `all` every call is allowed by a rule, so that row is what the hook adds to a call no person
  sees (the hook's process, the hub's decision, the audit write).

Alerts: a hub with a webhook alert to a local receiver; one question at a time; the time from
the question's creation (the hub's clock) to the receiver's arrival time, p50 and the slowest.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.run import ROOT, publish, start_hub
from tests.agent_clis import ClaudeCode
from tests.model_standin import ModelStandIn, Turn, bash, say
from tests.model_standin import run as tool
from tests.receiver import Receiver

SECTION_START, SECTION_END = "<!-- approvals -->", "<!-- /approvals -->"
PRESETS = ("off", "none", "readonly", "writes", "all")
CALLS = 50
SOURCE = {"README.md": "# cart\nThe cart service. TODO: tax rules.\n",
          "cart.py": "TAX_RATE = 0.2\n\n\ndef total(items):\n    return sum(items) * (1 + TAX_RATE)\n",
          "test_cart.py": "import unittest\n\nimport cart\n\n\nclass T(unittest.TestCase):\n"
                          "    def test_total(self):\n        self.assertGreater(cart.total([1]), 1)\n",
          "docs/notes.md": "notes\n"}


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """The local web server the fetches read from, without a log line per request."""

    def log_message(self, *args) -> None:
        pass


def project(folder: Path) -> Path:
    """A small git project, committed once."""
    for name, text in SOURCE.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.email=b@x", "-c", "user.name=b", "commit", "-qm", "start"]):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    return folder


def script(folder: Path, web: str) -> list[Turn]:
    """The fifty calls, interleaved the way a session reads, changes, tests and commits."""
    reads = [tool("Read", file_path=str(folder / name)) for name in ("README.md", "cart.py", "test_cart.py")] * 4
    searches = [bash(c) for c in ("grep -rn TAX_RATE .", "grep -rln TODO .", "ls", "ls docs", "find . -name '*.py'",
                                  "grep -n def cart.py", "cat docs/notes.md", "wc -l cart.py", "grep -rn total .",
                                  "head -n 3 README.md")]
    edits = [tool("Edit", file_path=str(folder / "cart.py"), old_string=f"TAX_RATE = 0.{n}",
                  new_string=f"TAX_RATE = 0.{n + 1}") for n in range(2, 8)]
    edits += [tool("Write", file_path=str(folder / "docs" / f"change-{n}.md"), content=f"change {n}\n") for n in range(2)]
    tests = [bash("python3 -m unittest -q test_cart")] * 8
    git = [bash(c) for c in ("git status", "git diff", "git status --short", "git log --oneline -3", "git diff --stat",
                             "git status", "git add -A", "git -c user.email=b@x -c user.name=b commit -qm change")]
    fetches = [bash(f"curl -s {web}/README.md")] * 4
    order = [*reads[:4], *searches[:4], edits[0], tests[0], *git[:2], *fetches[:2], *reads[4:8], *searches[4:7],
             *edits[1:4], *tests[1:4], *git[2:4], *reads[8:], *searches[7:], *edits[4:], *tests[4:], *git[4:],
             *fetches[2:]]
    assert len(order) == CALLS
    return [*order, say("done")]


def approver(hub_url: str, token: str, stop: threading.Event, answered: list[str]) -> None:
    """The person: allows each question as soon as it is listed."""
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        while not stop.is_set():
            for q in client.get("/questions").json()["questions"]:
                if client.post(f"/questions/{q['correlation_id']}/answer",
                               json={"decision": "allow", "content_hash": q["content_hash"]}).status_code == 200:
                    answered.append(q["correlation_id"])
            stop.wait(0.02)


def one_run(preset: str, hub_home: Path, hub_url: str, token: str, web_root: Path, web: str) -> dict:
    work = Path(tempfile.mkdtemp(prefix="rw-approvals-"))
    folder = project(work / "proj")
    (web_root / "README.md").write_text(SOURCE["README.md"])
    with ModelStandIn(script(folder, web)) as model:
        claude = ClaudeCode(work / "user", hub_home, model)
        (claude.home / ".claude").mkdir(parents=True)
        (claude.home / ".claude" / "settings.json").write_bytes(orjson.dumps(
            {"permissions": {"allow": ["Bash", "Edit", "Write", "Read"]}}))   # Claude Code's own rules allow all
        claude.install_hooks("--approvals", preset)
        answered: list[str] = []
        stop = threading.Event()
        person = threading.Thread(target=approver, args=(hub_url, token, stop, answered), daemon=True)
        person.start()
        started = time.perf_counter()
        done = claude.print_mode("work on the cart", folder)
        elapsed = time.perf_counter() - started
        stop.set()
        person.join(10)
        results = model.tool_results()
    if done.returncode != 0 or len(results) != CALLS:
        raise RuntimeError(f"{preset}: claude exited {done.returncode} after {len(results)} calls: {done.stderr[-500:]}")
    refused = sum(1 for r in results if r.startswith("repowire: deny"))
    return {"seconds": elapsed, "asked": len(answered), "refused": refused}


def alert_latencies(count: int) -> list[float]:
    with Receiver() as receiver:
        target = start_hub(["--no-bridge", "--alert-webhook", f"{receiver.url}/hook"])
        try:
            token = target.token
            url = target.url.replace("ws", "http", 1).removesuffix("/ws")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                session = client.post("/sessions", json={"backend": "claude", "cwd": "/work/b", "agent_pid": 1,
                                                         "name": "bench-claude"}).json()["session_token"]
                latencies = []
                for n in range(count):
                    holder = threading.Thread(target=lambda n=n: httpx.post(
                        f"{url}/questions/ask-blocking", timeout=60, headers={"Authorization": f"Bearer {session}"},
                        json={"tool_name": "Bash", "tool_input": {"command": f"make step-{n}"}, "tool_use_id": f"a{n}",
                              "hook_timeout_s": 60}), daemon=True)
                    holder.start()
                    deadline = time.monotonic() + 10
                    while len(receiver.got("/hook")) <= n and time.monotonic() < deadline:
                        time.sleep(0.005)
                    sent = orjson.loads(receiver.got("/hook")[n].body)
                    question = client.get(f"/questions/{sent['question']['correlation_id']}").json()
                    latencies.append(receiver.got("/hook")[n].at * 1000 - question["created_at"])
                    client.post(f"/questions/{question['correlation_id']}/answer", json={"decision": "deny"})
                    holder.join(10)
            return latencies
        finally:
            target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--alerts", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    web_root = Path(tempfile.mkdtemp(prefix="rw-web-"))
    handler = functools.partial(QuietFiles, directory=str(web_root))
    web_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web_server.serve_forever, daemon=True).start()
    web = f"http://127.0.0.1:{web_server.server_address[1]}"
    target = start_hub()
    try:
        with subprocess.Popen([sys.executable, "-m", "hub.cli.main", "questions", "--follow"],
                              env={**os.environ, "REPOWIRE_HOME": str(target.home)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) as watcher:
            try:
                if "watching for questions" not in watcher.stderr.readline():
                    raise RuntimeError("`repowire questions --follow` did not start watching")
                url = target.url.replace("ws", "http", 1).removesuffix("/ws")
                runs = {p: [one_run(p, target.home, url, target.token, web_root, web) for _ in range(args.runs)]
                        for p in PRESETS}
            finally:
                watcher.kill()
    finally:
        target.stop()
        web_server.shutdown()
    alerts = alert_latencies(args.alerts)
    base = statistics.median(r["seconds"] for r in runs["off"])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    meaning = {"off": "no approval hook (baseline)", "none": "every call asks (the hub before presets)",
               "readonly": "`readonly` (the default)", "writes": "`writes`", "all": "`all` (audited only)"}
    for preset in PRESETS:
        seconds = statistics.median(r["seconds"] for r in runs[preset])
        asked = statistics.median(r["asked"] for r in runs[preset])
        added = "—" if preset == "off" else f"{(seconds - base) / CALLS * 1000:.0f}"
        rows.append(f"| {meaning[preset]} | {asked:.0f} of {CALLS} | {seconds:.1f} | {added} |")
    alerts.sort()
    section = "\n".join([
        SECTION_START, "## Approvals: what a person is asked (real Claude Code)", "",
        f"Measured {when} by `python -m bench.approvals --runs {args.runs} --alerts {args.alerts}`: 50 tool calls "
        "(12 reads, 10 shell searches, 8 edits/writes, 8 test runs, 8 git commands, 4 web fetches from a local "
        "server) by `claude -p` against the model stand-in, median of the runs. A program in the person's place "
        "allows each question as soon as it is listed, so the asked rows include that round trip.", "",
        "| preset | reached a person | run (s) | added per call (ms) |", "|---|---:|---:|---:|", *rows, "",
        f"Alert to a local webhook, from the question's creation to its arrival ({len(alerts)} questions): "
        f"p50 {alerts[len(alerts) // 2]:.1f} ms, slowest {alerts[-1]:.1f} ms.", SECTION_END])
    publish(args.out, section)


if __name__ == "__main__":
    main()
