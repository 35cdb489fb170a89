"""Property tests (hypothesis) on what faces the network: the frame decoders and the Host/Origin
guard. Whatever arrives, the answer is a frame or an error whose code is in the one table; the
guard lets through exactly the allowed names and nothing else, and never fails."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.server.guard import LocalGuard, default_hosts, default_origins
from schemas.codec import FrameError, decode_client_frame, decode_dashboard_frame
from schemas.errors import ERROR_TABLE, ErrorCode

LIMIT = 4096
CLIENT_TYPES = ["hello", "notify", "ask", "ack", "answer", "receipt", "ping", "presence", "bye", "ask_blocking",
                "decide", "subscribe", "nonsense"]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=12)
frames = st.fixed_dictionaries({"type": st.sampled_from(CLIENT_TYPES)},
                               optional={"id": st.text(max_size=20) | st.integers(), "to": json_values,
                                         "text": json_values, "name": json_values, "circle": json_values,
                                         "correlation_id": json_values, "message_id": json_values,
                                         "timeout_s": json_values, "resume": json_values, "cursor": json_values,
                                         "backlog": json_values, "status": json_values})


def decodes_or_refuses(decode, data) -> None:
    try:
        decode(data, LIMIT)
    except FrameError as exc:
        assert exc.code in ERROR_TABLE
        assert exc.code in (ErrorCode.BAD_JSON, ErrorCode.INVALID_FRAME, ErrorCode.UNKNOWN_TYPE,
                            ErrorCode.FRAME_TOO_LARGE)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=600))
def test_any_bytes_are_a_frame_or_an_error_from_the_table(data):
    decodes_or_refuses(decode_client_frame, data)
    decodes_or_refuses(decode_dashboard_frame, data)


@settings(max_examples=400, deadline=None)
@given(frames)
def test_any_json_object_is_a_frame_or_an_error_from_the_table(frame):
    data = json.dumps(frame).encode()   # big integers too, which orjson would not write
    decodes_or_refuses(decode_client_frame, data)
    decodes_or_refuses(decode_dashboard_frame, data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=64))
def test_the_size_limit_holds_at_the_limit_and_one_past_it(extra):
    padding = LIMIT - len(b'{"type":"notify","id":"1","to":"bob","text":""}')
    at_limit = b'{"type":"notify","id":"1","to":"bob","text":"' + b"x" * padding + b'"}'
    assert len(at_limit) == LIMIT
    decode_client_frame(at_limit, LIMIT)
    try:
        decode_client_frame(at_limit[:-2] + b"x" * (extra + 1) + b'"}', LIMIT)
    except FrameError as exc:
        assert exc.code == ErrorCode.FRAME_TOO_LARGE and exc.details == {"size": LIMIT + extra + 1, "limit": LIMIT}
    else:
        raise AssertionError("a frame over the limit was decoded")


GUARD = LocalGuard(None, allowed_hosts=default_hosts("127.0.0.1", 8377), allowed_origins=default_origins("127.0.0.1", 8377))
header_values = st.binary(max_size=60) | st.sampled_from(
    [b"127.0.0.1:8377", b"localhost:8377", b"[::1]:8377", b"LOCALHOST:8377", b"127.0.0.1:8378", b"evil.test:8377",
     b"127.0.0.1", b"http://127.0.0.1:8377", b"null", b"http://localhost:8377", b"http://evil.test"])


@settings(max_examples=500, deadline=None)
@given(host=st.none() | header_values, origin=st.none() | header_values)
def test_the_guard_lets_through_exactly_the_allowed_host_and_origin(host, origin):
    headers = [(name, value) for name, value in ((b"host", host), (b"origin", origin)) if value is not None]
    refusal = GUARD._refusal({"type": "http", "headers": headers})
    host_ok = host is not None and host.decode("latin-1").lower() in GUARD.hosts
    origin_ok = origin is None or origin.decode("latin-1").lower() in GUARD.origins
    if host_ok and origin_ok:
        assert refusal is None
    else:
        code, message = refusal
        assert code == (ErrorCode.HOST_NOT_ALLOWED if not host_ok else ErrorCode.ORIGIN_NOT_ALLOWED)
        assert code in ERROR_TABLE and message
