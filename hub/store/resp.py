"""RESP2 request encoding for the group-commit writer: one `bytes` for a whole batch.

redis-py encodes argument by argument with generic checks; the writer sends thousands of small
commands a second and only ever passes str, bytes, int and float, so a direct encoder is a
measurable part of the hub's CPU per message (see bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Iterable


def _arg(value: bytes | str | float) -> bytes:
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        data = repr(value).encode()
    else:
        raise TypeError(f"cannot send {type(value).__name__} to the store")
    return b"$%d\r\n%b\r\n" % (len(data), data)


def pack(commands: Iterable[tuple]) -> bytes:
    parts = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        parts.extend(_arg(arg) for arg in command)
    return b"".join(parts)
