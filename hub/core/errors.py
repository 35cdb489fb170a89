"""The hub's one error tree: every failure a caller can see is a HubError with a table code."""

from __future__ import annotations

from typing import Any

from schemas.errors import ErrorCode


class HubError(Exception):
    def __init__(self, code: ErrorCode, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    def __repr__(self) -> str:
        return f"HubError({self.code.value!r}, {self.message!r})"
