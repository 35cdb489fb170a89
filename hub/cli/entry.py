"""The `repowire` console script.

Agent hooks run on every tool call, prompt and stop of every agent, and every session starts
the MCP server, so the exact command lines `repowire hooks install` writes (`hook pretooluse
--timeout T`, `hook EVENT --agent A`, `mcp`) go straight to their small programs, without the argument parser and the modules behind the other
commands (`hub.cli.main`). Anything else, hooks with other options included, goes through
`hub.cli.main`, which parses and checks it in full.

`repowire hooks install` runs this file directly with `python -S` for the hooks
(`<python> -S <this file> hook pretooluse --timeout T`): they need nothing but the standard
library and this project, so the interpreter skips `site` (and an editable install's import
hook), about half of Python's start-up. Any path that needs an installed package (the MCP
server, every other command) loads `site` first.
"""

from __future__ import annotations

import importlib
import os
import sys

if __name__ == "__main__":   # run as a file: the project's root is importable, not this folder
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SESSION_EVENTS = ("session-start", "user-prompt-submit", "stop", "notification", "session-end")
AGENTS = ("claude", "codex")


def hook_call(argv: list[str]) -> tuple[str, dict] | None:
    """(hook, its options) for a command line exactly as `hooks install` writes it, else None."""
    if len(argv) < 2 or argv[0] != "hook":
        return None
    event, rest = argv[1], argv[2:]
    if event == "pretooluse":
        if not rest:
            return event, {"timeout_s": None}
        if len(rest) == 2 and rest[0] == "--timeout":
            try:
                timeout_s = float(rest[1])
            except ValueError:
                return None
            return (event, {"timeout_s": timeout_s}) if timeout_s > 0 else None
        return None
    if event in SESSION_EVENTS:
        if not rest:
            return event, {"backend": "claude"}
        if len(rest) == 2 and rest[0] == "--agent" and rest[1] in AGENTS:
            return event, {"backend": rest[1]}
    return None


def with_site() -> None:
    """Installed packages importable, when this runs under `python -S`."""
    if sys.flags.no_site:
        importlib.import_module("site").main()


def main() -> int:
    if sys.argv[1:] == ["mcp"]:   # started by the agent for every session, like the hooks
        with_site()
        return importlib.import_module("transports.mcp_server").run()
    fast = hook_call(sys.argv[1:])
    if fast is None:
        with_site()
        return importlib.import_module("hub.cli.main").main()
    event, options = fast
    if event == "pretooluse":
        return importlib.import_module("transports.claude_hook").run(**options)
    if event == "session-start":
        return importlib.import_module("transports.session_start").run(**options)
    return importlib.import_module("transports.session_hooks").run(event, **options)


if __name__ == "__main__":
    sys.exit(main())
