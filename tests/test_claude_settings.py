"""`repowire hooks install | uninstall` and `repowire doctor hooks`, run as commands against
real settings files that already hold the user's own configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson

USER_SETTINGS = {
    "permissions": {"allow": ["Bash(npm run lint)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "~/bin/audit-bash.sh"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
    },
    "model": "opus",
}


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def repowire(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REPOWIRE_")}
    return subprocess.run([sys.executable, "-m", "hub.cli.main", *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd, env={**base, "REPOWIRE_URL": dead_url(), **env})


def ours(settings: dict) -> list[dict]:
    return [h for g in settings.get("hooks", {}).get("PreToolUse", []) for h in g["hooks"]
            if "hook pretooluse" in h["command"]]


def test_install_merges_once_keeps_a_backup_and_uninstall_restores(tmp_path):
    path = tmp_path / "settings.json"
    original = orjson.dumps(USER_SETTINGS, option=orjson.OPT_INDENT_2)
    path.write_bytes(original)
    done = repowire("hooks", "install", "--settings", str(path))
    assert done.returncode == 0, done.stderr
    assert "installed the PreToolUse hook" in done.stdout and "timeout 310s" in done.stdout
    installed = orjson.loads(path.read_bytes())
    assert (tmp_path / "settings.json.bak").read_bytes() == original
    assert installed["permissions"] == USER_SETTINGS["permissions"] and installed["model"] == "opus"
    assert installed["hooks"]["Stop"] == USER_SETTINGS["hooks"]["Stop"]
    assert installed["hooks"]["PreToolUse"][0] == USER_SETTINGS["hooks"]["PreToolUse"][0]
    (entry,) = ours(installed)
    assert entry["type"] == "command" and entry["timeout"] == 310
    assert entry["command"].endswith(" hook pretooluse --timeout 310")
    assert installed["hooks"]["PreToolUse"][1]["matcher"] == "*"

    again = repowire("hooks", "install", "--settings", str(path))
    assert again.returncode == 0 and "already installed" in again.stdout
    assert orjson.loads(path.read_bytes()) == installed

    removed = repowire("hooks", "uninstall", "--settings", str(path))
    assert removed.returncode == 0 and "removed 1 repowire hook entry" in removed.stdout
    assert orjson.loads(path.read_bytes()) == USER_SETTINGS
    nothing = repowire("hooks", "uninstall", "--settings", str(path))
    assert nothing.returncode == 0 and "no repowire hook" in nothing.stdout
    assert orjson.loads(path.read_bytes()) == USER_SETTINGS


def test_install_into_a_fresh_home_and_uninstall_leaves_no_hooks_key(tmp_path):
    done = repowire("hooks", "install", HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    path = tmp_path / ".claude" / "settings.json"
    assert len(ours(orjson.loads(path.read_bytes()))) == 1
    assert repowire("hooks", "uninstall", HOME=str(tmp_path)).returncode == 0
    assert orjson.loads(path.read_bytes()) == {}


def test_project_settings_and_the_timeout_follow_the_running_hub(start_hub, tmp_path):
    hub = start_hub("--question-timeout-max", "60", "--question-margin", "4")
    done = repowire("hooks", "install", "--project", cwd=tmp_path, REPOWIRE_URL=hub.url)
    assert done.returncode == 0, done.stderr
    (entry,) = ours(orjson.loads((tmp_path / ".claude" / "settings.json").read_bytes()))
    assert entry["timeout"] == 69  # 60 cap + 4 hub margin + 2 hook margin + 3 slack


def test_a_settings_file_that_is_not_json_is_left_alone(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{ this is not json")
    done = repowire("hooks", "install", "--settings", str(path))
    assert done.returncode == 1 and "not valid JSON" in done.stderr
    assert path.read_text() == "{ this is not json" and not (tmp_path / "settings.json.bak").exists()


def test_doctor_hooks(tmp_path):
    path = tmp_path / "settings.json"
    missing = repowire("doctor", "hooks", "--settings", str(path))
    assert missing.returncode == 1 and "no repowire PreToolUse hook" in missing.stdout

    assert repowire("hooks", "install", "--settings", str(path)).returncode == 0
    healthy = repowire("doctor", "hooks", "--settings", str(path))
    assert healthy.returncode == 0, healthy.stdout
    assert "ok       command resolves" in healthy.stdout and "ok       timeout 310s" in healthy.stdout

    settings = orjson.loads(path.read_bytes())
    (entry,) = ours(settings)
    entry["timeout"] = 30
    entry["command"] = entry["command"].replace("--timeout 310", "--timeout 30")
    path.write_bytes(orjson.dumps(settings))
    short = repowire("doctor", "hooks", "--settings", str(path))
    assert short.returncode == 1 and "timeout 30s is below the hub's cap 300s" in short.stdout

    entry["command"] = "/nonexistent/repowire hook pretooluse --timeout 30"
    path.write_bytes(orjson.dumps(settings))
    broken = repowire("doctor", "hooks", "--settings", str(path))
    assert broken.returncode == 1 and "/nonexistent/repowire is not an executable file" in broken.stdout
