"""`repowire hook <event>`: the hook programs agents run (on every prompt, stop and tool call,
so this imports only the hooks' small modules)."""

from __future__ import annotations

from transports import session_hooks, session_start
from transports.claude_hook import run


def pretooluse(args) -> int:
    return run(timeout_s=args.timeout, home=args.home)


def session_event(args) -> int:
    """session-start (transports.session_start); user-prompt-submit, stop, notification,
    session-end (transports.session_hooks)."""
    if args.action == "session-start":
        return session_start.run(backend=args.agent, home=args.home)
    return session_hooks.run(args.action, backend=args.agent, home=args.home)

