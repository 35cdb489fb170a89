"""`repowire hook <event>`: the hook programs agents run (on every prompt, stop and tool call,
so this imports only the hooks' small modules)."""

from __future__ import annotations

from transports import session_hooks
from transports.claude_hook import run


def pretooluse(args) -> int:
    return run(timeout_s=args.timeout, home=args.home)


def session_event(args) -> int:
    """session-start, user-prompt-submit, stop, notification, session-end (transports.session_hooks)."""
    return session_hooks.run(args.action, backend=args.agent, home=args.home)

