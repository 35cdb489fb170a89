"""Encoding and strict decoding of frames, with errors classified by the code table.

`decode_client_frame` never raises anything but `FrameError`, whose `code` is from
`schemas.errors`, so the edge can answer every bad frame with an `error` frame and carry on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
import orjson

from schemas.dashboard import DASHBOARD_CLIENT_FRAMES, DashboardClientFrame, DashboardHubFrame
from schemas.errors import ErrorCode
from schemas.frames import CLIENT_FRAMES, ClientFrame, Error, ErrorInfo, HubFrame

_client_decoder = msgspec.json.Decoder(ClientFrame)
_dashboard_decoder = msgspec.json.Decoder(DashboardClientFrame)
_hub_decoder = msgspec.json.Decoder(HubFrame)
_dashboard_hub_decoder = msgspec.json.Decoder(DashboardHubFrame)
_encoder = msgspec.json.Encoder()
T = TypeVar("T")
_CLIENT_TYPES = frozenset(str(t.__struct_config__.tag) for t in CLIENT_FRAMES)
_DASHBOARD_TYPES = frozenset(str(t.__struct_config__.tag) for t in DASHBOARD_CLIENT_FRAMES)


# Free-form JSON (a tool's input, a bridge's result) is stored, hashed and sent on by the hub:
# at most this deep, and integers within 64 bits, or it is refused as bad_json (400).
MAX_JSON_DEPTH = 32
INT_RANGE = (-(2 ** 63), 2 ** 64 - 1)


class FrameError(Exception):
    """A frame that cannot be accepted; `ref` is the client's frame id when it could be read."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.details = details or {}


def check_json_value(value: object) -> None:
    """Raise FrameError(bad_json) when anything in `value` (a decoded frame or body, its
    free-form dicts and lists included) nests deeper than MAX_JSON_DEPTH or holds an integer
    outside INT_RANGE. Iterative: a hostile depth cannot exhaust the stack."""
    low, high = INT_RANGE
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list, msgspec.Struct)):
            if depth > MAX_JSON_DEPTH:
                raise too_deep()
            children: Iterable[Any]
            if isinstance(item, dict):
                children = item.values()
            elif isinstance(item, list):
                children = item
            else:
                children = [getattr(item, name) for name in item.__struct_fields__]
            pending.extend((child, depth + 1) for child in children)
        elif type(item) is int and not low <= item <= high:
            raise FrameError(ErrorCode.BAD_JSON, "an integer is outside the 64-bit range the hub keeps",
                             details={"min": low, "max": high})


def _has_free_form(frame_type: type) -> bool:
    """Whether a struct type has a field of untyped JSON (dict, list of dict, Any) anywhere."""
    seen: set[int] = set()
    pending = [msgspec.inspect.type_info(frame_type)]
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.AnyType):
            return True
        if isinstance(info, msgspec.inspect.DictType) and isinstance(info.value_type, msgspec.inspect.AnyType):
            return True
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            pending.extend(field.type for field in info.fields)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.FrozenSetType
                        | msgspec.inspect.VarTupleType):
            pending.append(info.item_type)
        elif isinstance(info, msgspec.inspect.TupleType):
            pending.extend(info.item_types)
        elif isinstance(info, msgspec.inspect.DictType):
            pending.append(info.value_type)
        elif isinstance(info, msgspec.inspect.Metadata):
            pending.append(info.type)
    return False


# the client frames whose decoded value is walked by check_json_value (the others are typed
# through and through, so the hot path pays nothing)
_FREE_FORM_FRAMES = tuple(t for t in CLIENT_FRAMES if _has_free_form(t))


def encode(value: msgspec.Struct) -> bytes:
    """The one encoder for what the hub sends: frames, REST bodies, stored deliveries."""
    return _encoder.encode(value)


def encode_all(values: list[Any]) -> bytes:
    """A JSON array of structs (or raw JSON), encoded at once."""
    return _encoder.encode(values)


def decode_as(data: bytes | str, kind: type[T]) -> T:
    """Decode what the hub wrote itself (a stored result, a stored record) as its type."""
    return msgspec.json.decode(data, type=kind)


def error_frame(code: ErrorCode | str, message: str, ref: str | None = None,
                details: dict[str, Any] | None = None) -> bytes:
    """An `error` frame with its code from the table; `ref` echoes the frame it answers."""
    return _encoder.encode(Error(error=ErrorInfo(code=str(code), message=message, details=details or {}), ref=ref))


def deliver_frame(seq: int, delivery: bytes) -> bytes:
    """A stored delivery (an encoded `Delivery`, a JSON object) as the `deliver` frame for the
    recipient whose inbox gave it `seq`: the stored bytes are sent as they are, not re-encoded."""
    return b'{"type":"deliver","seq":%d,' % seq + delivery[1:]


def event_frame(cursor: str, kind: str, data: bytes) -> bytes:
    """A dashboard `event` frame around event data kept encoded in the store's stream."""
    return b'{"type":"event","cursor":"%s","kind":"%s","data":%s}' % (cursor.encode(), kind.encode(), data)


def decode_client_frame(data: bytes | str, max_bytes: int) -> ClientFrame:
    """Decode one client frame; raise FrameError with a table code for anything wrong."""
    frame: ClientFrame = _decode(data, max_bytes, _client_decoder, _CLIENT_TYPES)
    if isinstance(frame, _FREE_FORM_FRAMES):
        try:
            check_json_value(frame)
        except FrameError as exc:
            exc.ref = getattr(frame, "id", None)
            raise
    return frame


def decode_dashboard_frame(data: bytes | str, max_bytes: int) -> DashboardClientFrame:
    """Decode one frame a dashboard sent on `/dashboard/ws` (subscribe, ping)."""
    frame: DashboardClientFrame = _decode(data, max_bytes, _dashboard_decoder, _DASHBOARD_TYPES)
    return frame


def _decode(data: bytes | str, max_bytes: int, decoder: msgspec.json.Decoder[Any], types: frozenset[str]) -> Any:
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
    except RecursionError:
        raise too_deep() from None


def too_deep() -> FrameError:
    return FrameError(ErrorCode.BAD_JSON, f"JSON nests deeper than {MAX_JSON_DEPTH} levels",
                      details={"max_depth": MAX_JSON_DEPTH})


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
