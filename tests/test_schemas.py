"""Wire contract v1: golden examples, generated JSON Schema in step, strict decoding."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from hub.server.openapi import openapi_document
from schemas.codec import (
    FrameError,
    decode_client_frame,
    decode_dashboard_frame,
    decode_dashboard_hub_frame,
    decode_hub_frame,
    encode,
)
from schemas.dashboard import DASHBOARD_CLIENT_FRAMES, DASHBOARD_HUB_FRAMES
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.frames import API_VERSION, CLIENT_FRAMES, HUB_FRAMES
from schemas.generate import GENERATED, frame_schemas
from schemas.normalise import normalised

EXAMPLES = Path(__file__).resolve().parents[1] / "schemas" / "examples"
LIMIT = 1024


def test_api_version():
    assert API_VERSION == "repowire.v1"


@pytest.mark.parametrize("frame_type", [t.__struct_config__.tag for t in CLIENT_FRAMES])
def test_client_golden_example_round_trips(frame_type):
    raw = (EXAMPLES / f"{frame_type}.json").read_bytes()
    frame = decode_client_frame(raw, LIMIT)
    assert orjson.loads(encode(frame)) == orjson.loads(raw)


@pytest.mark.parametrize("frame_type", [t.__struct_config__.tag for t in HUB_FRAMES])
def test_hub_golden_example_round_trips(frame_type):
    raw = (EXAMPLES / f"{frame_type}.json").read_bytes()
    assert orjson.loads(encode(decode_hub_frame(raw))) == orjson.loads(raw)


@pytest.mark.parametrize("frame_type", [t.__struct_config__.tag for t in DASHBOARD_CLIENT_FRAMES])
def test_dashboard_client_golden_example_round_trips(frame_type):
    raw = (EXAMPLES / f"{frame_type}.json").read_bytes()
    assert orjson.loads(encode(decode_dashboard_frame(raw, LIMIT))) == orjson.loads(raw)


@pytest.mark.parametrize("frame_type", [t.__struct_config__.tag for t in DASHBOARD_HUB_FRAMES])
def test_dashboard_hub_golden_example_round_trips(frame_type):
    raw = (EXAMPLES / f"{frame_type}.json").read_bytes()
    assert orjson.loads(encode(decode_dashboard_hub_frame(raw))) == orjson.loads(raw)


def test_dashboard_socket_takes_only_its_own_frames():
    with pytest.raises(FrameError) as caught:
        decode_dashboard_frame(b'{"type":"hello","name":"a"}', LIMIT)
    assert caught.value.code is ErrorCode.UNKNOWN_TYPE and "['ping', 'subscribe']" in caught.value.message
    with pytest.raises(FrameError) as caught:
        decode_dashboard_frame(b'{"type":"subscribe","backlog":1001}', LIMIT)
    assert caught.value.code is ErrorCode.INVALID_FRAME
    assert decode_dashboard_frame(b'{"type":"subscribe","backlog":1000}', LIMIT).backlog == 1000


def test_every_frame_has_a_golden_example():
    names = {t.__struct_config__.tag for t in CLIENT_FRAMES + HUB_FRAMES + DASHBOARD_CLIENT_FRAMES + DASHBOARD_HUB_FRAMES}
    assert {p.stem for p in EXAMPLES.glob("*.json")} == names


def test_checked_in_json_schema_matches_the_structs():
    for filename, data in frame_schemas().items():
        checked_in = orjson.loads((GENERATED / filename).read_bytes())
        assert checked_in == orjson.loads(data), f"regenerate with `python -m schemas.generate` ({filename})"


@pytest.mark.parametrize("indented", [
    "First line of a docstring,\n    its second line as msgspec 0.22 kept it.\n\n    A second paragraph.",
    "First line of a docstring,\nits second line as msgspec 0.23 dedents it.\n\nA second paragraph.",
])
def test_descriptions_are_normalised_whatever_the_library_did(indented):
    document = {"$defs": {"Ask": {"description": indented, "properties": {"description": {"type": "string"}}}}}
    cleaned = normalised(document)["$defs"]["Ask"]
    first, second = cleaned["description"].split("\n\n")
    assert "\n" not in first and "  " not in first and first.startswith("First line of a docstring, its second line")
    assert second == "A second paragraph."
    assert cleaned["properties"] == {"description": {"type": "string"}}, "a property named description is not text"


def test_checked_in_openapi_matches_the_routes():
    checked_in = orjson.loads((GENERATED / "openapi.json").read_bytes())
    assert checked_in == openapi_document(), "regenerate: python -m hub.server.openapi > schemas/generated/openapi.json"


@pytest.mark.parametrize("raw, code", [
    (b"{", ErrorCode.BAD_JSON),
    (b"not json", ErrorCode.BAD_JSON),
    (b"[1, 2]", ErrorCode.INVALID_FRAME),
    (b'{"type": "teleport"}', ErrorCode.UNKNOWN_TYPE),
    (b'{"id": "x"}', ErrorCode.UNKNOWN_TYPE),
    (b'{"type": "notify", "id": "x", "to": "bob", "text": 5}', ErrorCode.INVALID_FRAME),
    (b'{"type": "notify", "id": "x", "to": "bob"}', ErrorCode.INVALID_FRAME),
    (b'{"type": "hello", "name": "has space"}', ErrorCode.INVALID_FRAME),
    (b'{"type": "hello", "name": ""}', ErrorCode.INVALID_FRAME),
    (b'{"type": "receipt", "message_id": "short", "status": "received"}', ErrorCode.INVALID_FRAME),
    (b'{"type": "receipt", "message_id": "01a20339afd85edba833ab7e7f9bae04", "status": "eaten"}', ErrorCode.INVALID_FRAME),
])
def test_bad_frames_get_a_code_from_the_table(raw, code):
    with pytest.raises(FrameError) as caught:
        decode_client_frame(raw, LIMIT)
    assert caught.value.code is code
    assert code in ERROR_TABLE


def test_ref_is_recovered_from_an_invalid_frame():
    with pytest.raises(FrameError) as caught:
        decode_client_frame(b'{"type": "notify", "id": "n-9", "to": 3, "text": "x"}', LIMIT)
    assert caught.value.ref == "n-9"


def test_frame_size_limit_at_limit_and_limit_plus_one():
    frame = {"type": "notify", "id": "x", "to": "bob", "text": ""}
    padding = LIMIT - len(orjson.dumps(frame))
    at_limit = orjson.dumps({**frame, "text": "a" * padding})
    assert len(at_limit) == LIMIT
    assert decode_client_frame(at_limit, LIMIT).text == "a" * padding
    over = orjson.dumps({**frame, "text": "a" * (padding + 1)})
    with pytest.raises(FrameError) as caught:
        decode_client_frame(over, LIMIT)
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE
    assert caught.value.details == {"size": LIMIT + 1, "limit": LIMIT}


def test_unknown_fields_are_ignored_for_additive_growth():
    frame = decode_client_frame(b'{"type": "ping", "id": "p", "future_field": {"x": 1}}', LIMIT)
    assert frame.id == "p"


def test_error_table_codes_are_unique_and_close_codes_are_application_range():
    close_codes = [i.close_code for i in ERROR_TABLE.values() if i.close_code and i.close_code >= 4000]
    assert all(4000 <= c <= 4999 for c in close_codes)
    assert set(ERROR_TABLE) == set(ErrorCode)


def test_msgspec_schema_names_every_client_frame():
    schema = orjson.loads((GENERATED / "client-frames.schema.json").read_bytes())
    assert set(schema["$defs"]) >= {"Hello", "Notify", "Receipt", "Ping", "Presence"}
    assert msgspec.json.schema  # the generator in use


def test_the_backend_literal_names_every_backend():
    """The REST schema's Backend (a Literal mypy can read) and the names the CLI offers agree."""
    from typing import get_args

    from schemas.names import BACKENDS
    from schemas.rest import Backend
    assert get_args(Backend) == BACKENDS


def test_every_field_the_hub_puts_in_a_trace_stage_is_in_the_trace_stage_schema():
    """GET /traces/{id} answers typed TraceStage structs: a stage field missing from the schema
    would be dropped on the way out. Every keyword the hub passes to stage_entry is listed."""
    import ast
    from pathlib import Path

    from schemas.rest import TraceStage
    used = set()
    for path in Path(__file__).resolve().parents[1].joinpath("hub").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "stage_entry", "_traced", "_pane_call"):
                used |= {k.arg for k in node.keywords if k.arg is not None}
    assert used - set(TraceStage.__struct_fields__) == set()
    assert {"lines", "keys", "recovered", "of"} <= used   # the scan sees the less common ones


def test_a_traces_event_built_from_the_written_stages_is_the_documented_one():
    """The store keeps each stage's bytes once and sends them on in the `traces` event; the
    result is exactly the TracesChanged the dashboard schema documents."""
    import msgspec

    from hub.core.trace import Stage, stage_entry
    from hub.store.state import _TracesEncoded
    from schemas.codec import encode
    from schemas.dashboard import TracesChanged
    stages = [stage_entry(Stage.ACCEPTED, 1, "n1", kind="notify", from_peer="a" * 32, to="bob"),
              stage_entry(Stage.ROUTED, 2, "n1", peer_id="b" * 32, name="bob")]
    sent = encode(_TracesEncoded(trace_id="c" * 32, stages=[msgspec.Raw(encode(s)) for s in stages]))
    documented = TracesChanged(trace_id="c" * 32, stages=stages)
    assert sent == encode(documented)
    assert msgspec.json.decode(sent, type=TracesChanged) == documented
