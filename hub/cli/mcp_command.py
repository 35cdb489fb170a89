"""`repowire mcp`: the MCP server on stdio (transports.mcp_server)."""

from __future__ import annotations

from transports.mcp_server import run


def mcp(args) -> int:
    return run(home=args.home)
