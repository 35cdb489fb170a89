"""`repowire hooks install | uninstall`: everything an agent needs to be on the hub by itself.

For Claude Code: the PreToolUse approval hook and the session hooks in `settings.json`, and
the MCP server entry; `--approvals` chooses the hub's approval preset (what an agent may do
without asking a person), or `off` leaves the approval hook out. For Codex: the session hooks it offers (SessionStart, UserPromptSubmit,
Stop) in `hooks.json`, the MCP server and the hooks feature flag in `config.toml`. Each file
is merged, never replaced: idempotent, atomic, the previous file kept as `<file>.bak`; and
uninstall removes exactly what install added (see `claude_settings`, `agent_config`).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from hub.cli import agent_config
from hub.cli.claude_settings import (
    EVENT,
    SESSION_HOOKS,
    SLACK_S,
    hook_command,
    hub_times,
    program_argv,
    session_entries,
    settings_path,
    with_ours,
    without_ours,
)
from hub.cli.client_commands import call
from hub.cli.failures import EXIT_OK, EXIT_UNREACHABLE, CommandFailed
from hub.core.presets import PRESETS
from schemas.local import PRESET_FILE, home_folder

OFF = "off"   # --approvals off: no PreToolUse hook; the agent's own permission settings decide


def _agents(choice: str) -> list[str]:
    return ["claude", "codex"] if choice == "all" else [choice]


def _saved(backup: Path | None) -> str:
    return f"; the previous file is {backup}" if backup else ""


def _install_hooks(path: Path, entries: dict[str, dict], what: str) -> None:
    data = agent_config.load_json(path)
    updated = with_ours(data, entries)
    if updated == data:
        print(f"already installed in {path}")
        return
    print(f"installed {what} in {path}{_saved(agent_config.save_json(path, updated))}")


def _uninstall_hooks(path: Path) -> None:
    data = agent_config.load_json(path)
    updated, removed = without_ours(data)
    if not removed:
        print(f"no repowire hook in {path}")
        return
    backup = agent_config.save_json(path, updated)
    print(f"removed {removed} repowire hook entr{'y' if removed == 1 else 'ies'} from {path}{_saved(backup)}")


def _claude_mcp_path(args) -> Path | None:
    if args.mcp_config:
        return Path(args.mcp_config)
    if args.settings:
        return None   # an explicit settings file says nothing of where the MCP servers are
    return agent_config.claude_mcp_path(args.project)


def _choose_preset(name: str, home: str | None) -> None:
    """The hub's approval preset: set now on a running hub, else left in the home folder for
    the next hub to apply."""
    try:
        preset = call("PUT", "/policies/preset", home=home, json={"name": name})
    except CommandFailed as exc:
        if exc.exit_code != EXIT_UNREACHABLE:
            print(f"repowire: the hooks are installed, but the hub did not take the approval preset ({exc}); as its "
                  f"operator, run `repowire policies preset {name}`", file=sys.stderr)
            return
        path = Path(home_folder(home)) / PRESET_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(name + "\n")
        print(f"approvals: `{name}` ({PRESETS[name].summary}); no hub is running, so the next `repowire serve` "
              "applies it")
        return
    print(f"approvals: `{preset['name']}`: {preset['summary']} (`repowire policies` lists the rules)")


def install(args) -> int:
    argv = program_argv()
    for agent in _agents(args.agent):
        if agent == "claude":
            if args.approvals == OFF:
                _install_hooks(settings_path(args.project, args.settings), session_entries("claude"),
                               f"the session hooks ({', '.join(SESSION_HOOKS)}) and no approval hook (--approvals off)")
            else:
                times = hub_times(args.home)
                timeout_s = args.timeout or math.ceil(times.needed_hook_timeout_s + SLACK_S)
                entries = {EVENT: {"type": "command", "command": hook_command(timeout_s), "timeout": timeout_s},
                           **session_entries("claude")}
                _install_hooks(settings_path(args.project, args.settings), entries,
                               f"the PreToolUse hook (timeout {timeout_s}s) and the session hooks "
                               f"({', '.join(SESSION_HOOKS)})")
                _choose_preset(args.approvals, args.home)
            mcp_path = _claude_mcp_path(args)
            if mcp_path is None:
                print("the MCP server entry was not written: give --mcp-config FILE (e.g. .mcp.json) with --settings")
                continue
            data = agent_config.load_json(mcp_path)
            updated = agent_config.with_claude_server(data, argv)
            if updated == data:
                print(f"already installed in {mcp_path}")
            else:
                backup = agent_config.save_json(mcp_path, updated)
                print(f"installed the MCP server `repowire` in {mcp_path}{_saved(backup)}")
        else:
            folder = agent_config.codex_dir(args.project)
            entries = session_entries("codex")
            _install_hooks(folder / "hooks.json", entries, f"the session hooks ({', '.join(entries)})")
            config = folder / "config.toml"
            doc = agent_config.load_toml(config)
            if agent_config.add_codex_config(doc, argv):
                backup = agent_config.save_toml(config, doc)
                print(f"installed the MCP server `repowire` and the hooks feature in {config}"
                      f"{_saved(backup)}")
            else:
                print(f"already installed in {config}")
            print("Codex runs new hooks only once you trust them: start codex and open /hooks to review and trust "
                  "the repowire hooks.")
    return EXIT_OK


def uninstall(args) -> int:
    for agent in _agents(args.agent):
        if agent == "claude":
            _uninstall_hooks(settings_path(args.project, args.settings))
            mcp_path = _claude_mcp_path(args)
            if mcp_path is None:
                continue
            data, removed = agent_config.without_claude_server(agent_config.load_json(mcp_path))
            if removed:
                backup = agent_config.save_json(mcp_path, data)
                print(f"removed the MCP server `repowire` from {mcp_path}{_saved(backup)}")
            else:
                print(f"no repowire MCP server in {mcp_path}")
        else:
            folder = agent_config.codex_dir(args.project)
            _uninstall_hooks(folder / "hooks.json")
            config = folder / "config.toml"
            doc = agent_config.load_toml(config)
            if config.exists() and agent_config.remove_codex_config(doc):
                backup = agent_config.save_toml(config, doc)
                print(f"removed the MCP server `repowire` from {config}{_saved(backup)}")
            else:
                print(f"no repowire MCP server in {config}")
    return EXIT_OK
