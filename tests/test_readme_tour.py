"""The README's five-minute tour, run exactly as written, against a fresh hub in a temporary HOME.

The blocks are read from README.md at test time: the first (install and serve) starts the hub
as a newcomer would, on its default port; the shell blocks after it run in one bash session, in
order, so the variables they set (`BOB`, `ALICE`, `ID`) carry over; the Python block runs with
this interpreter. Each command's output is asserted, so a tour that stops working, or that
prints something other than what its prose promises, fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.readme_commands import README, tour_blocks, two_commands
from tests.support import process_gone, wait_until

ROOT = Path(__file__).resolve().parents[1]
MARK = "@@tour@@"


def _outputs(stdout: str) -> list[tuple[str, str]]:
    """(command line as the README writes it, what it printed), in the order they ran."""
    outputs: list[tuple[str, str]] = []
    for line in stdout.splitlines():
        if line.startswith(MARK):
            outputs.append((line[len(MARK):], ""))
        elif outputs:
            outputs[-1] = (outputs[-1][0], outputs[-1][1] + line + "\n")
    return outputs


@pytest.fixture
def tour_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REPOWIRE_", "TMUX"))}
    env.update(HOME=str(home), TMUX_TMPDIR=str(tmp_path), PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
               PYTHONPATH=str(ROOT))
    return home, env


def test_the_two_commands_are_the_ones_ci_runs():
    serve, test = two_commands(README.read_text(encoding="utf-8"))
    assert serve.startswith("pip install -e . && repowire serve")
    assert "pip install -r requirements-test.lock" in test and "python -m pytest" in test
    assert "npm ci --prefix tests/agents" in test   # the real agent CLIs the suite drives
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m tests.readme_commands test" in ci and "venv" in ci


def test_the_tour_works_as_written(tour_home):
    home, env = tour_home
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    languages = [language for language, _ in blocks]
    assert languages[0] == "sh" and "python" in languages
    first, shell_blocks = blocks[0][1], [code for language, code in blocks[1:] if language == "sh"]
    assert first.split() == ["pip", "install", "-e", ".", "repowire", "serve"]
    subprocess.run(["bash", "-c", first.splitlines()[0]], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=300)

    serve = subprocess.Popen(["bash", "-c", f"exec {first.splitlines()[1]}"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hub_file = home / ".repowire" / "hub.json"
    try:
        wait_until(hub_file.exists, timeout=30, what="repowire serve to write hub.json")
        hub = json.loads(hub_file.read_text())
        assert hub["url"] == "http://127.0.0.1:8377" and hub["pid"] == serve.pid

        lines = [line for code in shell_blocks for line in code.splitlines() if line.strip()]
        script = "set -euo pipefail\n" + "".join(
            f"printf '%s\\n' {shlex.quote(MARK + line)}\n{line}\n" for line in lines)
        ran = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        ran_in_order = _outputs(ran.stdout)
        assert [command for command, _ in ran_in_order] == lines
        out = dict(ran_in_order)

        assert "hub        http://127.0.0.1:8377" in out["repowire status"]
        assert "you        operator" in out["repowire status"]
        assert "embedded  append-only on" in out["repowire status"]
        listed = out["repowire peers"]
        assert "alice " in listed and "bob " in listed
        assert out["repowire notify bob \"build is green\""].startswith("queued  ")
        first_inbox, second_inbox = (printed for command, printed in ran_in_order
                                     if command == "REPOWIRE_TOKEN=$BOB repowire inbox")
        assert first_inbox == "[notify from operator] «build is green»\n"
        ask_id = second_inbox.split()[1]
        assert len(ask_id) == 32
        assert second_inbox == (f"[ask {ask_id} from alice] «ship it?» — reply: repowire ack {ask_id} \"<answer>\"\n")
        assert out["REPOWIRE_TOKEN=$BOB repowire ack $ID \"yes, ship it\""].startswith("replied")
        assert out["REPOWIRE_TOKEN=$ALICE repowire inbox"] == f"[reply to {ask_id} from bob] «yes, ship it»\n"
        stages = [line.split()[2] for line in out["repowire trace $ID"].splitlines()[1:]]
        assert stages == ["accepted", "routed", "queued", "sent", "received", "replied", "sent", "received"]
        assert "http://127.0.0.1:8377/dashboard/login?code=" in out["repowire dashboard"]
        assert "approvals: `readonly`: read and search the project" in out["repowire hooks install"]
        assert "ok       approvals: preset `readonly`" in out["repowire doctor hooks"]
        assert out["repowire policies evaluate Bash --input 'command=grep -rn TODO .' --cwd \"$PWD\""].startswith(
            "allow  (preset readonly, rule readonly/shell-reads)")
        settings = json.loads((home / ".claude" / "settings.json").read_text())
        assert "PreToolUse" in settings["hooks"]
        assert "repowire" in json.loads((home / ".claude.json").read_text())["mcpServers"]

        python_block = next(code for language, code in blocks if language == "python")
        subprocess.run([sys.executable, "-c", python_block], cwd=ROOT, env=env, check=True, timeout=60)
        token = (home / ".repowire" / "hub.token").read_text().strip()
        carol = httpx.get("http://127.0.0.1:8377/peers/carol", headers={"Authorization": f"Bearer {token}"})
        assert carol.status_code == 200 and carol.json()["name"] == "carol"
        bob = httpx.get("http://127.0.0.1:8377/peers/bob", headers={"Authorization": f"Bearer {token}"}).json()
        assert bob["pending"] == 1, "carol's notify waits in bob's inbox"
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=20)
        finally:
            if serve.poll() is None:
                serve.kill()
        serve.stdout.close()
    assert serve.returncode == 0
    wait_until(lambda: process_gone(hub["pid"]), timeout=10, what="the hub to exit")

