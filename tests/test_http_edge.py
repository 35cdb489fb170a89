"""The HTTP edge holds nothing forever: a request's headers and each part of its body have
deadlines (`header_timeout_s`, `body_idle_timeout_s`), answered `408 request_timeout`.

The clients here are raw sockets, so that a test can stop in the middle of a request exactly
where a slowloris client would."""

from __future__ import annotations

import socket

import orjson
import pytest

from tests.support import wait_until


def _connect(hub) -> socket.socket:
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=15)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body) if body else {}


@pytest.fixture
def edge_hub(start_hub):
    return start_hub("--limit", "header_timeout_s=1", "--limit", "body_idle_timeout_s=1")


def test_headers_that_stop_arriving_get_408_and_the_connection_closes(edge_hub):
    """F9: a partial request header was held forever."""
    with _connect(edge_hub) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + edge_hub.url.removeprefix("http://").encode() + b"\r\n")
        status, body = _status_and_body(_read_until_closed(sock))
    assert status == 408
    assert body == {"error": {"code": "request_timeout", "message": "the request's headers did not arrive within 1 s",
                              "details": {"header_timeout_s": 1.0}}}


def test_headers_in_pieces_within_the_deadline_are_served(edge_hub):
    host = edge_hub.url.removeprefix("http://").encode()
    with _connect(edge_hub) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        sock.sendall(b"Host: " + host + b"\r\nConnection: close\r\n\r\n")
        status, body = _status_and_body(_read_until_closed(sock))
    assert status == 200 and body["ok"] is True


def test_the_deadline_starts_again_for_the_next_request_on_a_kept_connection(edge_hub):
    host = edge_hub.url.removeprefix("http://").encode()
    with _connect(edge_hub) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        first = b""
        while b'"ok":true' not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        status, body = _status_and_body(_read_until_closed(sock))
    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_a_body_that_stops_arriving_gets_408_and_writes_nothing(edge_hub):
    edge_hub.post("/peers", {"name": "bob"})
    host = edge_hub.url.removeprefix("http://").encode()
    body = b'{"to": "bob", "text": "never finished"}'
    with _connect(edge_hub) as sock:
        sock.sendall(b"POST /messages HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer " +
                     edge_hub.token.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body[:10])
        status, answer = _status_and_body(_read_until_closed(sock))
    assert status == 408
    assert answer["error"] == {"code": "request_timeout", "message": "no part of the request body arrived for 1 s",
                               "details": {"body_idle_timeout_s": 1}}
    assert edge_hub.peers()["bob"]["pending"] == 0


def test_a_stalled_upload_gets_408_and_leaves_no_file(edge_hub):
    """F8: a stalled upload was held forever (and its bytes with it)."""
    host = edge_hub.url.removeprefix("http://").encode()
    part = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 50_000)
    with _connect(edge_hub) as sock:
        sock.sendall(b"POST /attachments HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer " +
                     edge_hub.token.encode() + b"\r\nContent-Type: multipart/form-data; boundary=b0undary\r\n"
                     b"Content-Length: 1000000\r\nConnection: close\r\n\r\n" + part)
        status, answer = _status_and_body(_read_until_closed(sock))
    assert status == 408 and answer["error"]["code"] == "request_timeout"
    folder = edge_hub.home / "attachments"
    wait_until(lambda: not any(folder.rglob("*.part")), 10, "the partial upload to be removed")
    assert not [p for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize("request_bytes", [
    b"GET /health HTTP/1.1\r\nHost: HOST\r\nContent-Length: \r\n\r\n",      # an empty Content-Length (schemathesis)
    b"GET /health HTTP/1.1\r\nHost: HOST\r\nBad Header\r\n\r\n",           # a header line without a colon
    b"GET /he alth HTTP/1.1\r\nHost: HOST\r\n\r\n",                        # a request line with a space in the path
])
def test_a_request_that_is_not_http_gets_the_hubs_own_400(hub, request_bytes):
    with _connect(hub) as sock:
        sock.sendall(request_bytes.replace(b"HOST", hub.url.removeprefix("http://").encode()))
        raw = _read_until_closed(sock)
    status, body = _status_and_body(raw)
    assert status == 400 and b"content-type: application/json" in raw.partition(b"\r\n\r\n")[0].lower()
    assert body["error"]["code"] == "bad_http" and body["error"]["message"].startswith(
        "the request is not valid HTTP/1.1: ")
