"""Encoding and strict decoding of frames, with errors classified by the code table.

`decode_client_frame` never raises anything but `FrameError`, whose `code` is from
`schemas.errors`, so the edge can answer every bad frame with an `error` frame and carry on.
"""

from __future__ import annotations

import msgspec
import orjson

from schemas.errors import ErrorCode
from schemas.dashboard import DASHBOARD_CLIENT_FRAMES, DashboardClientFrame, DashboardHubFrame
from schemas.frames import CLIENT_FRAMES, ClientFrame, HubFrame

_client_decoder = msgspec.json.Decoder(ClientFrame)
_dashboard_decoder = msgspec.json.Decoder(DashboardClientFrame)
_hub_decoder = msgspec.json.Decoder(HubFrame)
_dashboard_hub_decoder = msgspec.json.Decoder(DashboardHubFrame)
_encoder = msgspec.json.Encoder()
_CLIENT_TYPES = frozenset(t.__struct_config__.tag for t in CLIENT_FRAMES)
_DASHBOARD_TYPES = frozenset(t.__struct_config__.tag for t in DASHBOARD_CLIENT_FRAMES)


class FrameError(Exception):
    """A frame that cannot be accepted; `ref` is the client's frame id when it could be read."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.details = details or {}


def encode(frame: msgspec.Struct) -> bytes:
    return _encoder.encode(frame)


def decode_client_frame(data: bytes | str, max_bytes: int) -> ClientFrame:
    """Decode one client frame; raise FrameError with a table code for anything wrong."""
    return _decode(data, max_bytes, _client_decoder, _CLIENT_TYPES)


def decode_dashboard_frame(data: bytes | str, max_bytes: int) -> DashboardClientFrame:
    """Decode one frame a dashboard sent on `/dashboard/ws` (subscribe, ping)."""
    return _decode(data, max_bytes, _dashboard_decoder, _DASHBOARD_TYPES)


def _decode(data: bytes | str, max_bytes: int, decoder: msgspec.json.Decoder, types: frozenset[str]):
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise FrameError(ErrorCode.FRAME_TOO_LARGE, f"frame is {size} bytes; the limit is {max_bytes}",
                         details={"size": size, "limit": max_bytes})
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _classify(data, exc, types) from None
    except msgspec.DecodeError as exc:
        raise FrameError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None


def _classify(data: bytes | str, exc: msgspec.ValidationError, types: frozenset[str]) -> FrameError:
    """Tell an unknown type from an invalid field (error path only, so re-parsing is fine)."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return FrameError(ErrorCode.BAD_JSON, "frame is not valid JSON")
    if not isinstance(raw, dict):
        return FrameError(ErrorCode.INVALID_FRAME, "a frame must be a JSON object")
    ref = raw.get("id") if isinstance(raw.get("id"), str) else None
    frame_type = raw.get("type")
    if frame_type not in types:
        return FrameError(ErrorCode.UNKNOWN_TYPE,
                          f"unknown frame type {frame_type!r}; expected one of {sorted(types)}",
                          ref=ref, details={"type": frame_type if isinstance(frame_type, (str, int, float)) else None})
    return FrameError(ErrorCode.INVALID_FRAME, f"invalid {frame_type} frame: {exc}", ref=ref)


def decode_hub_frame(data: bytes | str) -> HubFrame:
    """Used by clients; hub frames are trusted to be well formed."""
    return _hub_decoder.decode(data)


def decode_dashboard_hub_frame(data: bytes | str) -> DashboardHubFrame:
    """Used by dashboard clients and tests."""
    return _dashboard_hub_decoder.decode(data)
