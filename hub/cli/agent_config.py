"""Where each agent keeps its hook and MCP server configuration, and our entries in it.

- Claude Code: hooks in `settings.json` (see `claude_settings`); the MCP server in
  `~/.claude.json` (`$CLAUDE_CONFIG_DIR/.claude.json` when set), or `.mcp.json` in the project
  with `--project`, under `mcpServers.repowire`.
- Codex: hooks in `~/.codex/hooks.json` (`$CODEX_HOME`, or `.codex/` in the project), the
  same shape as Claude Code's; in `config.toml` the MCP server `[mcp_servers.repowire]` and
  the hooks feature flag, `[features] hooks = true` (its older name `codex_hooks` counts too),
  marked with a comment when we add it so that uninstall removes only what install added.
  Codex runs a new or changed hook only once the user has trusted it (its `/hooks` screen). `config.toml` is edited with
  tomlkit, which keeps the user's comments, order and formatting.

Ours is recognised by what it runs (`<repowire> mcp`), never by position.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import tomlkit
from tomlkit.exceptions import TOMLKitError

from hub.cli.failures import EXIT_REFUSED, CommandFailed

SERVER_NAME = "repowire"
OUR_MARK = "added by repowire hooks install"


def claude_mcp_path(project: bool) -> Path:
    if project:
        return Path.cwd() / ".mcp.json"
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(config_dir) / ".claude.json" if config_dir else Path.home() / ".claude.json"


def codex_dir(project: bool) -> Path:
    if project:
        return Path.cwd() / ".codex"
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")


def is_our_server(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    argv = [str(entry.get("command", "")), *(str(a) for a in entry.get("args") or [])]
    return argv[-1:] == ["mcp"] and any("repowire" in part or part == "hub.cli.main" for part in argv[:-1])


def _backup(path: Path) -> Path | None:
    if not path.exists():
        return None
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    return backup


def _write_atomically(path: Path, data: bytes, like: Path | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".repowire-tmp")
    tmp.write_bytes(data)
    if like is not None:
        shutil.copymode(like, tmp)
    tmp.replace(path)


def load_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = orjson.loads(path.read_bytes() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise CommandFailed(EXIT_REFUSED, f"{path} is not valid JSON ({exc}); fix it first, nothing was changed") from exc
    if not isinstance(data, dict):
        raise CommandFailed(EXIT_REFUSED, f"{path} does not hold a JSON object; nothing was changed")
    return data


def save_json(path: Path, data: dict) -> Path | None:
    """Atomic write; the previous file is kept as `<name>.bak`. Returns the backup."""
    backup = _backup(path)
    _write_atomically(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n", backup)
    return backup


# ---- Claude Code: mcpServers in a JSON file ------------------------------------------------------

def with_claude_server(data: dict, argv: list[str]) -> dict:
    entry = {"type": "stdio", "command": argv[0], "args": [*argv[1:], "mcp"], "env": {}}
    listed = data.get("mcpServers")
    servers: dict[str, Any] = listed if isinstance(listed, dict) else {}
    if servers.get(SERVER_NAME) == entry:
        return data
    if SERVER_NAME in servers and not is_our_server(servers[SERVER_NAME]):
        raise CommandFailed(EXIT_REFUSED, f"an MCP server named {SERVER_NAME!r} that is not ours is configured; "
                                          "rename or remove it first, nothing was changed")
    return {**data, "mcpServers": {**servers, SERVER_NAME: entry}}


def without_claude_server(data: dict) -> tuple[dict, bool]:
    servers = data.get("mcpServers")
    if not isinstance(servers, dict) or not is_our_server(servers.get(SERVER_NAME)):
        return data, False
    kept = {k: v for k, v in servers.items() if k != SERVER_NAME}
    result = {**data, "mcpServers": kept}
    if not kept:
        del result["mcpServers"]
    return result, True


# ---- Codex: config.toml ------------------------------------------------------------------------

def load_toml(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text())
    except TOMLKitError as exc:
        raise CommandFailed(EXIT_REFUSED, f"{path} is not valid TOML ({exc}); fix it first, nothing was changed") from exc


def save_toml(path: Path, doc: tomlkit.TOMLDocument) -> Path | None:
    """Atomic write, the previous file kept as `config.toml.bak`. Trailing blank lines go (a
    table removed from the end leaves the blank line that set it apart)."""
    backup = _backup(path)
    text = tomlkit.dumps(doc)
    _write_atomically(path, (text.rstrip("\n") + "\n" if text.strip() else "").encode(), backup)
    return backup


HOOKS_FLAGS = ("hooks", "codex_hooks")   # Codex's feature flag for hooks, and its older name


def add_codex_config(doc: tomlkit.TOMLDocument, argv: list[str]) -> bool:
    """Our MCP server and, if absent, the hooks feature flag (marked as ours). True if changed."""
    changed = False
    features = doc.get("features")
    if features is None:
        features = tomlkit.table()
        doc["features"] = features
    if not any(name in features for name in HOOKS_FLAGS):
        flag = tomlkit.item(True)
        flag.comment(OUR_MARK)
        features[HOOKS_FLAGS[0]] = flag
        changed = True
    servers = doc.get("mcp_servers")
    if servers is None:
        servers = tomlkit.table(is_super_table=True)
        doc["mcp_servers"] = servers
    wanted = {"command": argv[0], "args": [*argv[1:], "mcp"]}
    current = servers.get(SERVER_NAME)
    if current is not None and not is_our_server(current.unwrap()):
        raise CommandFailed(EXIT_REFUSED, f"an MCP server named {SERVER_NAME!r} that is not ours is in config.toml; "
                                          "rename or remove it first, nothing was changed")
    if current is None or current.unwrap() != wanted:
        table = tomlkit.table()
        table.update(wanted)
        servers[SERVER_NAME] = table
        changed = True
    return changed


def remove_codex_config(doc: tomlkit.TOMLDocument) -> bool:
    """Remove our MCP server, and the feature flag if we added it. True if changed."""
    changed = False
    servers = doc.get("mcp_servers")
    if servers is not None and is_our_server((servers.get(SERVER_NAME) or tomlkit.table()).unwrap()):
        del servers[SERVER_NAME]
        if not servers:
            del doc["mcp_servers"]
        changed = True
    features = doc.get("features")
    for name in HOOKS_FLAGS:
        flag = features.item(name) if features is not None and name in features else None
        if features is not None and flag is not None and OUR_MARK in (flag.trivia.comment or ""):
            del features[name]
            changed = True
    if features is not None and not features:
        del doc["features"]
    return changed
