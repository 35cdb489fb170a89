"""Approval presets: named sets of policy rules, chosen once, tried after the person's own rules.

A preset says what an agent may do without asking a person. The names follow the agents' own
modes (Codex's sandboxes, Claude Code's permission modes):

- `readonly` (the default): read and search inside the agent's project, and talk through the
  hub. Everything that can change something or send data out asks a person.
- `writes`: `readonly`, and edit files inside the project, except the agents' own
  configuration and git's folder (`.claude/`, `.codex/`, `.mcp.json`, `.git/`), which ask.
- `all`: every tool call runs; each is still audited.
- `none`: no preset rule; whatever the person's rules leave undecided asks a person.

A path counts as inside the project when it resolves, without following links, under the
call's `cwd`. A Bash command runs without a person when it only reads the project (see
`hub.core.shell`: Claude Code searches with its shell) or is one of the `repowire` messaging
commands the hub tells agents to run (without `--attach`); never with a shell operator in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.core.shell import HUB_MESSAGE, READS

READONLY, WRITES, ALL, NONE = "readonly", "writes", "all", "none"
NAMES = (READONLY, WRITES, ALL, NONE)
DEFAULT = READONLY

# tool -> the input fields naming a path that must lie inside the project (absent: the cwd itself)
READ_TOOLS: dict[str, tuple[str, ...]] = {
    "Read": ("file_path",), "Grep": ("path",), "Glob": ("path", "pattern"), "LS": ("path",),
    "NotebookRead": ("notebook_path",),
}
# tools that touch nothing outside the agent's own session
SESSION_TOOLS = ("TodoWrite", "TodoRead", "Task", "BashOutput", "ExitPlanMode", "AskUserQuestion")
# the hub's own MCP tools: messages through the hub, which traces them
HUB_TOOLS = "mcp__repowire__*"
WRITE_TOOLS: dict[str, str] = {"Edit": "file_path", "Write": "file_path", "MultiEdit": "file_path",
                               "NotebookEdit": "notebook_path"}
# where an edit would change how the agent itself runs: a person decides, even under `writes`
GUARDED_PATHS = ("*.claude/*", "*.codex/*", "*.mcp.json", "*.git/*")


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    summary: str
    rules: tuple[dict[str, Any], ...]


def _rule(rule_id: str, action: str, tool: str, reason: str, **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "action": action, "tool": tool, "reason": reason, **fields}


def _readonly_rules(preset: str) -> list[dict[str, Any]]:
    rules = [_rule(f"{preset}/read-{tool.lower()}", "allow", tool, f"{preset} preset: {tool} inside the project",
                   inside_cwd=list(fields)) for tool, fields in READ_TOOLS.items()]
    rules += [_rule(f"{preset}/session-{tool.lower()}", "allow", tool, f"{preset} preset: {tool} stays in the session")
              for tool in SESSION_TOOLS]
    rules.append(_rule(f"{preset}/hub-tools", "allow", HUB_TOOLS, f"{preset} preset: the hub's own tools"))
    rules.append(_rule(f"{preset}/shell-reads", "allow", "Bash", f"{preset} preset: a command that only reads the "
                       "project (grep, rg, find, ls, cat, git status, …)", shell=READS))
    rules.append(_rule(f"{preset}/hub-messages", "allow", "Bash", f"{preset} preset: a repowire messaging command",
                       shell=HUB_MESSAGE))
    return rules


def _writes_rules() -> list[dict[str, Any]]:
    guarded = [_rule(f"writes/guard-{tool.lower()}-{n}", "ask", tool, "writes preset: this file configures an agent "
                     "or git, so a person decides", input={field: pattern}, priority=10)
               for tool, field in WRITE_TOOLS.items() for n, pattern in enumerate(GUARDED_PATHS, 1)]
    edits = [_rule(f"writes/edit-{tool.lower()}", "allow", tool, f"writes preset: {tool} inside the project",
                   inside_cwd=[field]) for tool, field in WRITE_TOOLS.items()]
    return guarded + _readonly_rules(WRITES) + edits


PRESETS: dict[str, Preset] = {
    READONLY: Preset(READONLY, "read and search the project and talk through the hub; everything else asks a person",
                     tuple(_readonly_rules(READONLY))),
    WRITES: Preset(WRITES, "readonly, and edit files inside the project (not .claude/, .codex/, .mcp.json or .git/); "
                           "shell commands and the network ask a person", tuple(_writes_rules())),
    ALL: Preset(ALL, "every tool call runs without a person (each still audited)",
                (_rule("all/everything", "allow", "*", "all preset: every tool call runs"),)),
    NONE: Preset(NONE, "no preset: every tool call your rules leave undecided asks a person", ()),
}
