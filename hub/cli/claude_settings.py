"""`repowire hooks install | uninstall` and `repowire doctor hooks`: the PreToolUse entry in
Claude Code's settings file.

Install merges one entry into `hooks.PreToolUse` of `~/.claude/settings.json` (or, with
`--project`, `.claude/settings.json` in the current folder), leaving everything else as it was;
it is idempotent (run twice, one entry), saves the previous file as `settings.json.bak`, and
writes atomically. Our entry is recognised by its command (`<repowire> hook pretooluse`), so
uninstall removes exactly that and nothing of the user's. The hook's timeout leaves room for
the hub: its question cap, plus its margin, plus the hook's own margin.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from hub.cli.failures import EXIT_OK, EXIT_REFUSED, CommandFailed
from hub.core.approvals import QuestionPolicy
from transports.claude_hook import LOCAL_MARGIN_S
from transports.discovery import find_hub

EVENT = "PreToolUse"
OUR_COMMAND = re.compile(r"(^|[/\s'\"])(repowire|hub\.cli\.main)['\"]?\s+hook\s+pretooluse(\s|$)")
SLACK_S = 3.0   # on top of the margins: process start-up and a slow machine


@dataclass(frozen=True, slots=True)
class HubTimes:
    max_timeout_s: float
    margin_s: float

    @property
    def needed_hook_timeout_s(self) -> float:
        return self.max_timeout_s + self.margin_s + LOCAL_MARGIN_S


def settings_path(project: bool, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if project:
        return Path.cwd() / ".claude" / "settings.json"
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    return (Path(config_dir) if config_dir else Path.home() / ".claude") / "settings.json"


def hub_times(home: str | None) -> HubTimes:
    """The running hub's question cap and margin, or the defaults when it is not running."""
    address = find_hub(home)
    try:
        transport = httpx.HTTPTransport(uds=address.uds) if address.uds else None
        with httpx.Client(base_url=address.http_url, transport=transport, timeout=3.0) as client:
            facts = client.get("/health").json().get("questions") or {}
        return HubTimes(float(facts["max_timeout_s"]), float(facts["margin_s"]))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        defaults = QuestionPolicy()
        return HubTimes(defaults.max_timeout_s, defaults.margin_s)


def hook_command(timeout_s: int) -> str:
    """An absolute command, so that the hook works whatever PATH Claude Code runs it with: the
    console script of this Python installation, else the one on PATH, else `python -m`."""
    beside = Path(sys.executable).parent / "repowire"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("repowire")
    program = shlex.quote(str(Path(found).absolute())) if found else f"{shlex.quote(sys.executable)} -m hub.cli.main"
    return f"{program} hook pretooluse --timeout {timeout_s}"


def _load(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = orjson.loads(path.read_bytes() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise CommandFailed(EXIT_REFUSED, f"{path} is not valid JSON ({exc}); fix it first, nothing was changed")
    if not isinstance(data, dict):
        raise CommandFailed(EXIT_REFUSED, f"{path} does not hold a JSON object; nothing was changed")
    return data


def _save(path: Path, data: dict) -> Path | None:
    """Atomic write; the previous file is kept as settings.json.bak. Returns the backup."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if path.exists():
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
    tmp = path.with_name(path.name + ".repowire-tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    if backup is not None:
        shutil.copymode(backup, tmp)
    tmp.replace(path)
    return backup


def is_ours(hook: object) -> bool:
    return isinstance(hook, dict) and isinstance(hook.get("command"), str) and bool(OUR_COMMAND.search(hook["command"]))


def our_entries(data: dict) -> list[dict]:
    """Our PreToolUse hook entries in these settings, in order."""
    groups = (data.get("hooks") or {}).get(EVENT) or []
    return [h for group in groups if isinstance(group, dict) for h in (group.get("hooks") or []) if is_ours(h)]


def without_ours(data: dict) -> tuple[dict, int]:
    """The settings with our PreToolUse entries removed (and the groups and keys that held
    only them); returns how many were removed."""
    hooks = data.get("hooks")
    if not isinstance(hooks, dict) or not isinstance(hooks.get(EVENT), list):
        return data, 0
    removed = 0
    groups = []
    for group in hooks[EVENT]:
        if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
            groups.append(group)
            continue
        kept = [h for h in group["hooks"] if not is_ours(h)]
        removed += len(group["hooks"]) - len(kept)
        if kept:
            groups.append({**group, "hooks": kept})
        elif len(group["hooks"]) == 0:
            groups.append(group)
    new_hooks = {**hooks, EVENT: groups}
    if not groups:
        del new_hooks[EVENT]
    result = {**data, "hooks": new_hooks}
    if not new_hooks:
        del result["hooks"]
    return result, removed


def with_ours(data: dict, command: str, timeout_s: int) -> dict:
    """The settings with exactly one entry of ours, this one (unchanged if that is so already)."""
    entry = {"type": "command", "command": command, "timeout": timeout_s}
    if our_entries(data) == [entry]:
        return data
    cleaned, _ = without_ours(data)
    hooks = dict(cleaned.get("hooks") or {})
    groups = list(hooks.get(EVENT) or [])
    groups.append({"matcher": "*", "hooks": [entry]})
    hooks[EVENT] = groups
    return {**cleaned, "hooks": hooks}


# ---- commands ----------------------------------------------------------------------------------

def install(args) -> int:
    path = settings_path(args.project, args.settings)
    times = hub_times(args.home)
    timeout_s = args.timeout or math.ceil(times.needed_hook_timeout_s + SLACK_S)
    data = _load(path)
    updated = with_ours(data, hook_command(timeout_s), timeout_s)
    if updated == data:
        print(f"already installed in {path}")
        return EXIT_OK
    backup = _save(path, updated)
    print(f"installed the PreToolUse hook in {path} (timeout {timeout_s}s)"
          + (f"; the previous file is {backup}" if backup else ""))
    return EXIT_OK


def uninstall(args) -> int:
    path = settings_path(args.project, args.settings)
    data = _load(path)
    updated, removed = without_ours(data)
    if not removed:
        print(f"no repowire hook in {path}")
        return EXIT_OK
    backup = _save(path, updated)
    print(f"removed {removed} repowire hook entr{'y' if removed == 1 else 'ies'} from {path}; the previous file is {backup}")
    return EXIT_OK


def _program_resolves(command: str) -> tuple[bool, str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return False, f"the command does not parse ({exc})"
    if not argv:
        return False, "the command is empty"
    found = shutil.which(argv[0])
    if not found:
        return False, f"{argv[0]} is not an executable file"
    return True, found


def doctor(args) -> int:
    """Checks the installed entry; prints one line per check; exit 1 when any check fails."""
    path = settings_path(args.project, args.settings)
    times = hub_times(args.home)
    problems: list[str] = []
    lines: list[str] = []
    data = _load(path)
    ours = our_entries(data)
    if not ours:
        problems.append(f"no repowire PreToolUse hook in {path}: run `repowire hooks install`")
    elif len(ours) > 1:
        problems.append(f"{len(ours)} repowire PreToolUse hooks in {path}; run `repowire hooks install` to keep one")
    for hook in ours[:1]:
        ok, found = _program_resolves(hook["command"])
        (lines if ok else problems).append(f"command resolves: {found}" if ok else f"command: {found}")
        timeout = hook.get("timeout")
        needed = times.needed_hook_timeout_s
        if not isinstance(timeout, (int, float)):
            problems.append(f"no timeout: Claude Code would give the hook 60s, less than the {needed:g}s the hub "
                            f"may need (cap {times.max_timeout_s:g}s + margins)")
        elif timeout < needed:
            problems.append(f"timeout {timeout}s is below the hub's cap {times.max_timeout_s:g}s + margin "
                            f"{times.margin_s:g}s + the hook's {LOCAL_MARGIN_S:g}s: a person gets less time "
                            f"than the hub allows (the hook still denies in time)")
        else:
            lines.append(f"timeout {timeout}s covers the hub's cap {times.max_timeout_s:g}s + margins")
        if f"--timeout {timeout}" not in hook["command"]:
            problems.append("the command's --timeout differs from the entry's timeout: the hook would not know "
                            "its own deadline")
    for line in lines:
        print(f"ok       {line}")
    for problem in problems:
        print(f"problem  {problem}")
    return EXIT_OK if not problems else EXIT_REFUSED
