"""`repowire hook pretooluse`: runs Claude Code's PreToolUse hook (transports.claude_hook)."""

from __future__ import annotations

from transports.claude_hook import run


def pretooluse(args) -> int:
    return run(timeout_s=args.timeout, home=args.home)
