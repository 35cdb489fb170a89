"""REST routes for attachments: upload (multipart, streamed), download (a file to save, never a
page), and the route other hub nodes fetch a file through.

An upload is parsed as it arrives (python-multipart's push parser): the file part's bytes go
straight to the attachment service, which counts them and writes them to disk; nothing holds a
whole upload in memory. A download of a file on another node is streamed from that node.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import BinaryIO

import anyio
import httpx
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hub.core.attachments import download_headers, not_found
from hub.core.errors import HubError
from hub.runtime.attachments import AttachmentService, Located, node_unreachable
from hub.server.responses import JSON
from hub.server.rest import bearer, caller, hub_of, next_body_message
from hub.server.services import services
from schemas.errors import ErrorCode

MAX_FORM_FIELD_BYTES = 64 * 1024     # parts other than the file (ignored) may add up to this
DRAIN_MAX_BYTES = 8 * 1024 * 1024    # after refusing an upload, read this much more so the client sees the answer
DRAIN_MAX_S = 5.0
FILE_CHUNK = 64 * 1024            # a download is read from its file this much at a time
UPSTREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)


def attachments_of(request: Request) -> AttachmentService:
    return services(request).attachments


class FilePart:
    """The one file of a `multipart/form-data` body, fed chunk by chunk: `feed` returns the
    file's bytes found in a chunk. The file part is the one with a `filename` (or named `file`)."""

    def __init__(self, boundary: bytes):
        self.filename: str | None = None
        self.content_type: str | None = None
        self._found = False
        self._in_file = False
        self._ended = False
        self._field_bytes = 0
        self._pieces: list[bytes] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value_data, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_end": self._end})

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pieces = []
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise HubError(ErrorCode.INVALID_REQUEST, f"the multipart body cannot be read: {exc}") from None
        return self._pieces

    def finish(self) -> None:
        """The body ended: it must have been complete and held a file."""
        if not self._ended:
            raise HubError(ErrorCode.INVALID_REQUEST, "the multipart body ended before its closing boundary")
        if not self._found:
            raise HubError(ErrorCode.INVALID_REQUEST, "the body holds no file; send one form field with a file "
                           "name, e.g. `curl -F file=@report.log`")

    # python-multipart callbacks

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if b"filename" not in params and params.get(b"name") != b"file":
            return
        if self._found:
            raise HubError(ErrorCode.INVALID_REQUEST, "send one file per upload")
        self._found = self._in_file = True
        self.filename = params.get(b"filename", b"").decode("utf-8", errors="replace")
        self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pieces.append(bytes(data[start:end]))
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FORM_FIELD_BYTES:
            raise HubError(ErrorCode.INVALID_REQUEST, f"fields other than the file are over {MAX_FORM_FIELD_BYTES} bytes")

    def _end(self) -> None:
        self._ended = True


def multipart_boundary(content_type: str | None) -> bytes:
    media, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary", b"")
    if media != b"multipart/form-data" or not 1 <= len(boundary) <= 200:
        raise HubError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "upload the file as multipart/form-data with a boundary, e.g. "
                       "`curl -F file=@report.log`")
    return boundary


async def upload(request: Request) -> JSON:
    who = caller(request)
    service = attachments_of(request)
    idle_s = hub_of(request).settings.limits.body_idle_timeout_s
    more = True
    try:
        part = FilePart(multipart_boundary(request.headers.get("content-type")))
        async with service.upload(who) as into:
            while more:
                message = await next_body_message(request, idle_s)
                more = message.get("more_body", False)
                for piece in part.feed(message.get("body", b"")):
                    await into.write(piece)
            part.finish()
            result = await into.commit(part.filename or "", part.content_type)
    except HubError:
        if more:
            await _drain(request)
        raise
    return JSON(result, status_code=201)


async def _drain(request: Request) -> None:
    """Read (and drop) what is left of a refused upload, within a bound, so that the client
    reads the refusal instead of a reset connection."""
    received = 0
    try:
        async with asyncio.timeout(DRAIN_MAX_S):
            while received <= DRAIN_MAX_BYTES:
                message = await request.receive()
                received += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
    except TimeoutError:
        return


def _headers(meta: dict) -> tuple[str, dict[str, str]]:
    """The media type and the other headers of a download."""
    headers = download_headers(meta["filename"], meta["size"], meta["sha256"], meta["content_type"])
    return headers.pop("content-type"), headers


async def download(request: Request) -> Response:
    who = caller(request)
    located = await attachments_of(request).locate(who, request.path_params["attachment_id"])
    if located.path is not None:
        return await _file(located)
    return await _from_node(request, located)


def _open(path: Path | None) -> BinaryIO:
    if path is None:
        raise FileNotFoundError("the attachment is on another node")
    return path.open("rb")


async def _file(located: Located) -> StreamingResponse:
    """The file, opened before the answer starts: the sweep may remove an expired file at any
    moment, and an open file stays readable to the end (a file already gone is a 404)."""
    try:
        handle = await anyio.to_thread.run_sync(_open, located.path)
    except FileNotFoundError:
        raise not_found(located.meta["id"]) from None

    async def chunks():
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, FILE_CHUNK):
                yield chunk
        finally:
            await anyio.to_thread.run_sync(handle.close)

    media_type, headers = _headers(located.meta)
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


async def _from_node(request: Request, located: Located) -> StreamingResponse:
    service = attachments_of(request)
    client: httpx.AsyncClient = services(request).http
    if located.url is None:
        raise not_found(located.meta["id"])
    outgoing = client.build_request("GET", located.url, headers={"authorization": f"Bearer {service.mesh_key}"})
    try:
        upstream = await client.send(outgoing, stream=True)
    except httpx.HTTPError:
        raise node_unreachable(located.meta) from None
    if upstream.status_code != 200:
        await upstream.aclose()
        if upstream.status_code == 404:
            raise not_found(located.meta["id"])
        raise node_unreachable(located.meta)
    media_type, headers = _headers(located.meta)
    return StreamingResponse(upstream.aiter_raw(), media_type=media_type, headers=headers,
                             background=BackgroundTask(upstream.aclose))


async def from_node(request: Request) -> Response:
    """GET /internal/attachments/{id}: another hub node of the mesh fetches a file kept here."""
    service = attachments_of(request)
    if not hmac.compare_digest((bearer(request.headers) or "").encode(), service.mesh_key.encode()):
        raise HubError(ErrorCode.UNAUTHORIZED, "this route is for the hub's other nodes; they show the mesh key")
    meta = await service.local_meta(request.path_params["attachment_id"])
    return await _file(Located(meta, path=await service.local_path(meta)))
