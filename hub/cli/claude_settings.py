"""`repowire hooks install | uninstall` and `repowire doctor hooks`: our entries in an agent's
hook settings (Claude Code's `settings.json`, Codex's `hooks.json`: the same shape).

Install merges one entry per event into `hooks.<Event>` (PreToolUse for Claude Code, and the
session events), leaving everything else as it was; it is idempotent (run twice, one entry
each), saves the previous file as `<file>.bak`, and writes atomically. Our entries are
recognised by their command (`<repowire> hook <event>`), so uninstall removes exactly those
and nothing of the user's. The PreToolUse timeout leaves room for the hub: its question cap,
plus its margin, plus the hook's own margin. The MCP server entries are `agent_config`'s.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from hub.cli.agent_config import load_json
from hub.cli.failures import EXIT_OK, EXIT_REFUSED
from hub.core.approvals import QuestionPolicy
from schemas.local import PRESET_FILE, home_folder
from schemas.names import SESSION_HOOK_EVENTS
from transports.claude_hook import LOCAL_MARGIN_S
from transports.discovery import find_hub, find_token

EVENT = "PreToolUse"
OUR_COMMAND = re.compile(r"(^|[/\s'\"])(repowire|hub\.cli\.main|entry\.py)['\"]?\s+hook\s+"
                         f"(pretooluse|{'|'.join(SESSION_HOOK_EVENTS.values())})" + r"(\s|$)")
SESSION_HOOKS = tuple(SESSION_HOOK_EVENTS)
ENTRY = Path(__file__).resolve().with_name("entry.py")   # the console script's module, run as a file by the hooks
# the timeout an agent gives each session hook; the hooks' own deadlines are shorter (8 s, 3 s)
START_TIMEOUT_S, EVENT_TIMEOUT_S = 15, 10
CODEX_EVENTS = ("SessionStart", "UserPromptSubmit", "Stop")   # what Codex offers of these
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


def _hub_get(home: str | None, path: str, token: str | None = None) -> dict:
    """One quick GET on the running hub (3 s at most); raises httpx.HTTPError or ValueError."""
    address = find_hub(home)
    transport = httpx.HTTPTransport(uds=address.uds) if address.uds else None
    with httpx.Client(base_url=address.http_url, transport=transport, timeout=3.0,
                      headers={"Authorization": f"Bearer {token}"} if token else {}) as client:
        return client.get(path).raise_for_status().json()


def hub_times(home: str | None) -> HubTimes:
    """The running hub's question cap and margin, or the defaults when it is not running."""
    try:
        facts = _hub_get(home, "/health").get("questions") or {}
        return HubTimes(float(facts["max_timeout_s"]), float(facts["margin_s"]))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        defaults = QuestionPolicy()
        return HubTimes(defaults.max_timeout_s, defaults.margin_s)


def program_argv() -> list[str]:
    """An absolute command, so that hooks and the MCP server work whatever PATH the agent runs
    them with: the console script of this Python installation, else the one on PATH, else
    `python -m`."""
    beside = Path(sys.executable).parent / "repowire"
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("repowire")
    return [str(Path(found).absolute())] if found else [sys.executable, "-m", "hub.cli.main"]


def program() -> str:
    return " ".join(shlex.quote(part) for part in program_argv())


def hook_program() -> str:
    """The hooks need only the standard library and this project, so they run as
    `<python> -S <hub/cli/entry.py>`: no `site`, half the start-up (hub.cli.entry)."""
    return " ".join(shlex.quote(part) for part in (sys.executable, "-S", str(ENTRY)))


def hook_command(timeout_s: int) -> str:
    return f"{hook_program()} hook pretooluse --timeout {timeout_s}"


def session_entries(agent: str) -> dict[str, dict]:
    """Our session-hook entry for each event the agent offers."""
    events = CODEX_EVENTS if agent == "codex" else SESSION_HOOKS
    return {event: {"type": "command", "command": f"{hook_program()} hook {SESSION_HOOK_EVENTS[event]} --agent {agent}",
                    "timeout": START_TIMEOUT_S if event == "SessionStart" else EVENT_TIMEOUT_S} for event in events}


def is_ours(hook: object) -> bool:
    return isinstance(hook, dict) and isinstance(hook.get("command"), str) and bool(OUR_COMMAND.search(hook["command"]))


def our_entries(data: dict, event: str = EVENT) -> list[dict]:
    """Our hook entries for one event in these settings, in order."""
    groups = (data.get("hooks") or {}).get(event) or []
    return [h for group in groups if isinstance(group, dict) for h in (group.get("hooks") or []) if is_ours(h)]


def without_ours(data: dict) -> tuple[dict, int]:
    """The settings with all our hook entries removed (and the groups and keys that held only
    them); returns how many were removed."""
    removed = 0
    hooks = data.get("hooks")
    for event in list(hooks) if isinstance(hooks, dict) else []:
        data, count = _without_ours_in(data, event)
        removed += count
    return data, removed


def _without_ours_in(data: dict, event: str) -> tuple[dict, int]:
    hooks = data.get("hooks")
    if not isinstance(hooks, dict) or not isinstance(hooks.get(event), list):
        return data, 0
    removed = 0
    groups = []
    for group in hooks[event]:
        if not isinstance(group, dict) or not isinstance(group.get("hooks"), list):
            groups.append(group)
            continue
        kept = [h for h in group["hooks"] if not is_ours(h)]
        removed += len(group["hooks"]) - len(kept)
        if kept:
            groups.append({**group, "hooks": kept})
        elif len(group["hooks"]) == 0:
            groups.append(group)
    if not removed:
        return data, 0
    new_hooks = {**hooks, event: groups}
    if not groups:
        del new_hooks[event]
    result = {**data, "hooks": new_hooks}
    if not new_hooks:
        del result["hooks"]
    return result, removed


def with_ours(data: dict, entries: dict[str, dict]) -> dict:
    """The settings with exactly our entries, one per event (unchanged if that is so already).
    PreToolUse's group matches every tool; the session events take no matcher."""
    wanted_events = set(entries)
    present = {event for event in (data.get("hooks") or {}) if our_entries(data, event)}
    if present == wanted_events and all(our_entries(data, e) == [entries[e]] for e in entries):
        return data
    cleaned, _ = without_ours(data)
    hooks = dict(cleaned.get("hooks") or {})
    for event, entry in entries.items():
        group = {"matcher": "*", "hooks": [entry]} if event == EVENT else {"hooks": [entry]}
        hooks[event] = [*(hooks.get(event) or []), group]
    return {**cleaned, "hooks": hooks}


# ---- commands ----------------------------------------------------------------------------------

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


def approvals_line(home: str | None) -> str:
    """Which approval preset the hub applies (what agents may do without asking a person)."""
    try:
        preset = _hub_get(home, "/policies", token=find_token(home))["preset"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        chosen = Path(home_folder(home)) / PRESET_FILE
        if chosen.exists():
            return f"approvals: `{chosen.read_text().strip()}` chosen; the next `repowire serve` applies it"
        return "approvals: the hub is not running; it applies its preset (`readonly` unless chosen) when it starts"
    return f"approvals: preset `{preset['name']}`: {preset['summary']}"


def doctor(args) -> int:
    """Checks the installed entry; prints one line per check; exit 1 when any check fails."""
    path = settings_path(args.project, args.settings)
    times = hub_times(args.home)
    problems: list[str] = []
    lines: list[str] = []
    data = load_json(path)
    ours = our_entries(data)
    sessions_only = not ours and all(our_entries(data, event) for event in SESSION_HOOKS)
    if sessions_only:
        lines.append("approvals off: no repowire PreToolUse hook, so Claude Code's own permissions decide every tool "
                     "call (`repowire hooks install --approvals readonly` turns approvals on)")
    elif not ours:
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
    missing = [event for event in SESSION_HOOKS if not our_entries(data, event)]
    if missing:
        problems.append(f"no repowire {', '.join(missing)} hook in {path}: agents do not join the hub by "
                        "themselves; run `repowire hooks install`")
    else:
        lines.append(f"session hooks: {', '.join(SESSION_HOOKS)}")
        if ours and f"--timeout {ours[0].get('timeout')}" not in ours[0]["command"]:
            problems.append("the command's --timeout differs from the entry's timeout: the hook would not know "
                            "its own deadline")
    if ours:
        lines.append(approvals_line(args.home))
    for line in lines:
        print(f"ok       {line}")
    for problem in problems:
        print(f"problem  {problem}")
    return EXIT_OK if not problems else EXIT_REFUSED
