"""Reply parsers: the store's raw RESP replies turned into typed values, in one place.

The hub's clients run without response decoding, so every reply is bytes, lists of bytes, or
(for a few redis-py helpers) tuples and dicts of them. redis-py types those replies as broad
unions; these parsers check the shape they expect and say so in their return type, so the code
above `hub.store` never indexes a raw reply. A reply of the wrong shape is a store that does not
speak the protocol the hub was built for: `StoreReplyError`, never a silent wrong value.
"""

from __future__ import annotations

from collections.abc import Iterable


class StoreReplyError(ValueError):
    """The store answered with a shape this hub does not understand."""


def text(value: object) -> str:
    """A bulk string as text."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise StoreReplyError(f"expected a string from the store, got {type(value).__name__}")


def text_or_none(value: object) -> str | None:
    """A bulk string as text, or None for a nil reply."""
    return None if value is None else text(value)


def texts(values: object) -> list[str]:
    """An array of bulk strings."""
    return [text(v) for v in _array(values)]


def scored(rows: object) -> list[tuple[str, int]]:
    """A sorted-set range WITHSCORES: (member, integer score) pairs."""
    out: list[tuple[str, int]] = []
    for row in _array(rows):
        if not isinstance(row, list | tuple) or len(row) != 2:
            raise StoreReplyError("expected (member, score) pairs from the store")
        out.append((text(row[0]), int(row[1])))
    return out


def stream_entries(rows: object) -> list[tuple[str, dict[bytes, bytes]]]:
    """A stream range (XRANGE, XREVRANGE, one stream of XREAD): (entry id, fields)."""
    out: list[tuple[str, dict[bytes, bytes]]] = []
    for row in _array(rows):
        if not isinstance(row, list | tuple) or len(row) != 2 or not isinstance(row[1], dict):
            raise StoreReplyError("expected (id, fields) stream entries from the store")
        out.append((text(row[0]), row[1]))
    return out


def xread_entries(reply: object, stream: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """XREAD's reply for one stream: [[stream, [entries]], ...], or nil when nothing came."""
    for row in _array(reply):
        if isinstance(row, list | tuple) and len(row) == 2 and text(row[0]) == stream:
            return stream_entries(row[1])
    return []


def is_ok(reply: object) -> bool:
    """A script that answers `{'ok', ...}` when it did what it was asked (a compare-and-set)."""
    return isinstance(reply, list | tuple) and bool(reply) and reply[0] in (b"ok", "ok")


def status_and(reply: object) -> tuple[str, object]:
    """A script's `{status, value}` answer: the status as text and the value as it came."""
    items = list(_array(reply))
    if not items:
        raise StoreReplyError("expected a status from the store, got an empty reply")
    return text(items[0]), items[1] if len(items) > 1 else None


def _array(value: object) -> Iterable[object]:
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return value
    raise StoreReplyError(f"expected an array from the store, got {type(value).__name__}")
