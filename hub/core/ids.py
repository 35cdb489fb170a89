"""Identifiers and secrets minted by the hub.

Message ids are 128 bits: 48 bits of milliseconds then 80 random bits, as 32 hex digits, so
they sort by creation time. Peer ids are 128 random bits. Tokens are 256 random bits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_message_id(now_ms: int) -> str:
    return f"{now_ms & 0xFFFFFFFFFFFF:012x}{secrets.randbits(80):020x}"


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
