"""`repowire hooks install | uninstall` and `repowire doctor hooks`, run as commands against
real settings files that already hold the user's own configuration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
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


def ours(settings: dict, event: str = "PreToolUse") -> list[dict]:
    return [h for g in settings.get("hooks", {}).get(event, []) for h in g["hooks"]
            if " hook " in h["command"] and ("repowire" in h["command"] or "hub.cli.main" in h["command"]
                                             or "hub/cli/entry.py" in h["command"])]


SESSION_EVENTS = {"SessionStart": "session-start", "UserPromptSubmit": "user-prompt-submit", "Stop": "stop",
                  "Notification": "notification", "SessionEnd": "session-end"}


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
    assert installed["hooks"]["Stop"][0] == USER_SETTINGS["hooks"]["Stop"][0]
    assert installed["hooks"]["PreToolUse"][0] == USER_SETTINGS["hooks"]["PreToolUse"][0]
    (entry,) = ours(installed)
    assert entry["type"] == "command" and entry["timeout"] == 310
    assert entry["command"].endswith(" hook pretooluse --timeout 310")
    assert installed["hooks"]["PreToolUse"][1]["matcher"] == "*"
    for event, subcommand in SESSION_EVENTS.items():
        (session_entry,) = ours(installed, event)
        assert session_entry["command"].endswith(f" hook {subcommand} --agent claude"), event
        assert session_entry["timeout"] == (15 if event == "SessionStart" else 10)
    assert "the MCP server entry was not written" in done.stdout

    again = repowire("hooks", "install", "--settings", str(path))
    assert again.returncode == 0 and "already installed" in again.stdout
    assert orjson.loads(path.read_bytes()) == installed

    removed = repowire("hooks", "uninstall", "--settings", str(path))
    assert removed.returncode == 0 and "removed 6 repowire hook entries" in removed.stdout
    assert orjson.loads(path.read_bytes()) == USER_SETTINGS
    nothing = repowire("hooks", "uninstall", "--settings", str(path))
    assert nothing.returncode == 0 and "no repowire hook" in nothing.stdout
    assert orjson.loads(path.read_bytes()) == USER_SETTINGS


def test_install_into_a_fresh_home_and_uninstall_leaves_no_hooks_key(tmp_path):
    claude_json = tmp_path / ".claude.json"
    claude_json.write_bytes(orjson.dumps({"numStartups": 3, "mcpServers": {"github": {"command": "gh-mcp"}}}))
    done = repowire("hooks", "install", HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    path = tmp_path / ".claude" / "settings.json"
    assert len(ours(orjson.loads(path.read_bytes()))) == 1
    servers = orjson.loads(claude_json.read_bytes())["mcpServers"]
    assert servers["github"] == {"command": "gh-mcp"}
    assert servers["repowire"]["type"] == "stdio" and servers["repowire"]["args"][-1] == "mcp"
    assert "installed the MCP server `repowire`" in done.stdout
    assert "already installed" in repowire("hooks", "install", HOME=str(tmp_path)).stdout
    assert repowire("hooks", "uninstall", HOME=str(tmp_path)).returncode == 0
    assert orjson.loads(path.read_bytes()) == {}
    assert orjson.loads(claude_json.read_bytes()) == {"numStartups": 3, "mcpServers": {"github": {"command": "gh-mcp"}}}


def test_project_settings_and_the_timeout_follow_the_running_hub(start_hub, tmp_path):
    hub = start_hub("--question-timeout-max", "60", "--question-margin", "4")
    done = repowire("hooks", "install", "--project", cwd=tmp_path, REPOWIRE_URL=hub.url)
    assert done.returncode == 0, done.stderr
    (entry,) = ours(orjson.loads((tmp_path / ".claude" / "settings.json").read_bytes()))
    assert entry["timeout"] == 69  # 60 cap + 4 hub margin + 2 hook margin + 3 slack
    assert orjson.loads((tmp_path / ".mcp.json").read_bytes())["mcpServers"]["repowire"]["args"][-1] == "mcp"


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


CODEX_CONFIG = """# my codex settings
model = "gpt-5-codex"   # keep this comment

[mcp_servers.docs]
command = "docs-mcp"
args = ["--stdio"]
"""


def test_codex_gets_its_hooks_mcp_server_and_feature_flag_and_uninstall_restores_every_byte(tmp_path):
    codex = tmp_path / "codex"
    codex.mkdir()
    (codex / "config.toml").write_text(CODEX_CONFIG)
    user_hooks = {"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]}}
    (codex / "hooks.json").write_bytes(orjson.dumps(user_hooks))
    done = repowire("hooks", "install", "--agent", "codex", CODEX_HOME=str(codex), HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    hooks = orjson.loads((codex / "hooks.json").read_bytes())
    assert set(hooks["hooks"]) == {"SessionStart", "UserPromptSubmit", "Stop"}
    assert hooks["hooks"]["Stop"][0] == user_hooks["hooks"]["Stop"][0]
    (start,) = ours(hooks, "SessionStart")
    assert start["command"].endswith(" hook session-start --agent codex")
    config = tomllib.loads((codex / "config.toml").read_text())
    assert config["features"]["hooks"] is True and config["model"] == "gpt-5-codex"
    assert config["mcp_servers"]["docs"] == {"command": "docs-mcp", "args": ["--stdio"]}
    assert config["mcp_servers"]["repowire"]["args"][-1] == "mcp"
    assert "# keep this comment" in (codex / "config.toml").read_text()
    assert not (tmp_path / ".claude").exists()

    again = repowire("hooks", "install", "--agent", "codex", CODEX_HOME=str(codex), HOME=str(tmp_path))
    assert again.stdout.count("already installed") == 2

    removed = repowire("hooks", "uninstall", "--agent", "codex", CODEX_HOME=str(codex), HOME=str(tmp_path))
    assert removed.returncode == 0 and "removed 3 repowire hook entries" in removed.stdout
    assert (codex / "config.toml").read_text() == CODEX_CONFIG
    assert orjson.loads((codex / "hooks.json").read_bytes()) == user_hooks


def test_a_flag_the_user_set_stays_after_uninstall(tmp_path):
    codex = tmp_path / "codex"
    codex.mkdir()
    (codex / "config.toml").write_text("[features]\ncodex_hooks = true\n")
    assert repowire("hooks", "install", "--agent", "codex", CODEX_HOME=str(codex)).returncode == 0
    assert repowire("hooks", "uninstall", "--agent", "codex", CODEX_HOME=str(codex)).returncode == 0
    assert (codex / "config.toml").read_text() == "[features]\ncodex_hooks = true\n"
