"""repowire's wire contract v1: frames, error codes, codec, JSON Schema and golden examples."""

from schemas.errors import ERROR_TABLE, ErrorCode, error_body
from schemas.frames import API_VERSION

__all__ = ["API_VERSION", "ERROR_TABLE", "ErrorCode", "error_body"]
