"""Identifiers and secrets minted by the hub.

Message ids are 128 bits: 48 bits of milliseconds then 80 bits that are random for the first id
of a millisecond and count up after it, as 32 hex digits, so they sort in minting order. Peer ids are 128 random bits. Tokens are 256 random bits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class MonotonicIds:
    """Message ids that also sort in the order they were minted: within one millisecond (or if
    the clock steps back) the random part counts up from the last id instead of being drawn."""

    __slots__ = ("_ms", "_rand")

    def __init__(self) -> None:
        self._ms = -1
        self._rand = 0

    def next(self, now_ms: int) -> str:
        if now_ms > self._ms:
            self._ms, self._rand = now_ms, secrets.randbits(79)  # headroom to count up
        else:
            self._rand += 1
        return f"{self._ms & 0xFFFFFFFFFFFF:012x}{self._rand:020x}"


def new_peer_id() -> str:
    return secrets.token_hex(16)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps instead of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(token), digest)


def is_hex128(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
