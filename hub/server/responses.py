"""Encoding for the edge: JSON responses with orjson, errors through the one code table."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from hub.core.errors import HubError
from schemas.codec import encode
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.rest import error_envelope


class JSON(Response):
    """A JSON body built from a schemas struct, encoded by the one encoder (schemas.codec)."""
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if not isinstance(content, msgspec.Struct):
            raise TypeError(f"a response body is a schemas struct, not {type(content).__name__}")
        return encode(content)


def error_response(code: ErrorCode, message: str, details: dict | None = None,
                   headers: dict | None = None) -> JSON:
    return JSON(error_envelope(code, message, details), status_code=ERROR_TABLE[code].http_status, headers=headers)


def hub_error_response(exc: HubError) -> JSON:
    headers = {"WWW-Authenticate": 'Bearer realm="repowire"'} if exc.code is ErrorCode.UNAUTHORIZED else None
    return error_response(exc.code, exc.message, exc.details, headers)
