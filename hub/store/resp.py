"""RESP request encoding for the group-commit writer: one `bytes` for a whole batch.

hiredis' `pack_command` (C) encodes each command; redis-py's own encoder works argument by
argument with generic checks, and our former Python encoder cost 12% of the hub's CPU in the
throughput profile (bench/RESULTS.md, section `profile`). A command is a tuple of str, bytes,
int and float; anything else (None, a bool, a list) is refused with TypeError.
"""

from __future__ import annotations

from collections.abc import Iterable

from hiredis import pack_command


def pack(commands: Iterable[tuple]) -> bytes:
    return b"".join([pack_command(command) for command in commands])
