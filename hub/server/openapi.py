"""The OpenAPI 3.1 document of the REST routes, generated from the schemas' structs.

The generated document is checked in at `schemas/generated/openapi.json`; a test fails when
the two drift. Regenerate with `python -m hub.server.openapi > schemas/generated/openapi.json`.
"""

from __future__ import annotations

import sys

import msgspec
import orjson

from hub import __version__
from schemas.errors import ERROR_TABLE
from schemas.frames import API_VERSION
from schemas.rest import ErrorEnvelope, Health, MessageAccepted, NotifyRequest, PeerDeleted, PeerList, PeerView, Trace

_STRUCTS = [ErrorEnvelope, Health, MessageAccepted, NotifyRequest, PeerDeleted, PeerList, PeerView, Trace]


def _ref(struct: type) -> dict:
    return {"$ref": f"#/components/schemas/{struct.__name__}"}


def _json(struct: type, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(struct)}}}


def _errors(*statuses: int) -> dict:
    return {str(s): _json(ErrorEnvelope, "error; `error.code` is from the code table") for s in statuses}


def openapi_document() -> dict:
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template="#/components/schemas/{name}")
    bearer = [{"bearer": []}]
    ref_param = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "a peer id, name or name@circle"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "repowire hub", "version": __version__, "description": f"wire contract {API_VERSION}",
                 "x-error-codes": {code.value: {"status": info.http_status, "meaning": info.meaning}
                                   for code, info in ERROR_TABLE.items()}},
        "servers": [{"url": "http://127.0.0.1:8377"}],
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "the hub token or a peer token"}}},
        "paths": {
            "/health": {"get": {"summary": "Is the hub up, and what is it", "security": [],
                                "responses": {"200": _json(Health, "the hub's facts")}}},
            "/peers": {"get": {
                "summary": "List peers", "security": bearer,
                "parameters": [{"name": "circle", "in": "query", "schema": {"type": "string"}},
                               {"name": "status", "in": "query",
                                "schema": {"enum": ["online", "busy", "offline"]}}],
                "responses": {"200": _json(PeerList, "peers sorted by circle and name"), **_errors(401, 422)}}},
            "/peers/{ref}": {
                "get": {"summary": "One peer", "security": bearer, "parameters": [ref_param],
                        "responses": {"200": _json(PeerView, "the peer"), **_errors(401, 404, 409)}},
                "delete": {"summary": "Delete a peer and its inbox", "security": bearer, "parameters": [ref_param],
                           "responses": {"200": _json(PeerDeleted, "deleted"), **_errors(401, 403, 404, 409)}}},
            "/messages": {"post": {
                "summary": "Notify a peer or a circle (durable, traced)", "security": bearer,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(NotifyRequest)}}},
                "responses": {"202": _json(MessageAccepted, "written; delivered or queued"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 429, 503)}}},
            "/traces/{trace_id}": {"get": {
                "summary": "A message's delivery trace", "security": bearer,
                "parameters": [{"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(Trace, "stages in order"), **_errors(401, 404)}}},
        },
    }


if __name__ == "__main__":
    sys.stdout.write(orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n")
