"""The hooks' own HTTP/1.1 client (transports.hub_http: a plain socket, no HTTP library) against
a real uvicorn, served exactly as the hub serves (its protocol class and options), for the
answers a hub or a proxy in front of one can give: a Content-Length body, a chunked body, a
body that ends early, and no answer at all."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from hub.cli.serve import uvicorn_config
from hub.core.settings import Settings
from tests.support import wait_until
from transports import hub_http
from transports.discovery import HubAddress


async def plain(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path, "auth": request.headers.get("authorization"),
                         "body": (await request.body()).decode()}, status_code=201)


async def chunked(request: Request) -> StreamingResponse:
    async def parts():
        for part in (b'{"parts": [', b'"one", ', b'"two"', b"]}"):
            yield part
    return StreamingResponse(parts(), media_type="application/json")


async def cut(request: Request) -> StreamingResponse:
    async def parts():
        yield b'{"never": '
        raise RuntimeError("the server died in the middle of the answer")
    return StreamingResponse(parts(), media_type="application/json", headers={"content-length": "100"})


@pytest.fixture
def server(tmp_path):
    app = Starlette(routes=[Route("/base/plain", plain, methods=["POST"]), Route("/base/chunked", chunked),
                            Route("/base/cut", cut)])
    server = uvicorn.Server(uvicorn_config(app, Settings(home=tmp_path), "critical"))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "uvicorn")
    yield HubAddress(f"http://127.0.0.1:{sock.getsockname()[1]}/base")
    server.should_exit = True
    thread.join(10)


def test_a_body_with_its_length_and_the_request_as_sent(server):
    status, body = hub_http.request(server, "tok", "POST", "/plain", {"a": "é"}, timeout=5)
    assert status == 201
    assert body == b'{"path":"/base/plain","auth":"Bearer tok","body":"{\\"a\\":\\"\xc3\xa9\\"}"}'


def test_a_chunked_body_is_read_whole(server):
    assert hub_http.request(server, "tok", "GET", "/chunked", timeout=5) == (200, b'{"parts": ["one", "two"]}')


def test_a_body_that_ends_early_is_an_error_not_a_short_answer(server):
    with pytest.raises(OSError):
        hub_http.request(server, "tok", "GET", "/cut", timeout=5)


def test_nobody_listening_is_an_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        hub_http.request(HubAddress(f"http://127.0.0.1:{port}"), "tok", "GET", "/health", timeout=2)
