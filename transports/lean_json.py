"""JSON for the programs agents start again and again (the hooks, the MCP server): the
standard library's `json`, which imports in about 2 ms. orjson, for all its speed, imports
`dataclasses`, `inspect` and `json` itself when it loads (about 15 ms), more than a hook's
whole work; the hub and the CLI keep orjson."""

from __future__ import annotations

import json

JSONDecodeError = json.JSONDecodeError   # a ValueError, like orjson's


def dumps(value: object) -> bytes:
    """Compact UTF-8 JSON, as orjson.dumps writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | str) -> object:
    return json.loads(data)
