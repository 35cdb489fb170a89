"""uvicorn's h11 HTTP protocol with a deadline for each request's headers (no slowloris), and
the hub's JSON error (`bad_http`, 400) for a request that is not valid HTTP.

uvicorn closes a keep-alive connection that sends nothing, but once a byte of a request has
arrived it waits for the rest of the headers forever: a client that sends one header line a
minute holds a connection (and a file descriptor) as long as it likes. This protocol gives the
request line and headers `header_timeout_s` from the moment the hub starts waiting for them
(the connection opened, or the previous response was sent); past that it answers
`408 request_timeout` and closes. The body has its own idle deadline, enforced where it is read
(`hub.server.rest.next_body_message`).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from schemas.codec import encode
from schemas.errors import ErrorCode
from schemas.rest import error_envelope


def timeout_response(header_timeout_s: float) -> bytes:
    body = encode(error_envelope(ErrorCode.REQUEST_TIMEOUT,
                                 f"the request's headers did not arrive within {header_timeout_s:g} s",
                                 {"header_timeout_s": header_timeout_s}))
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n" % len(body)) + body


class HubHttpProtocol(H11Protocol):
    def __init__(self, *args, header_timeout_s: float = 10.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_deadline is not None and self.conn.their_state is not h11.IDLE:
            self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_headers()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop_waiting()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _stop_waiting(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def send_400_response(self, msg: str) -> None:
        """A request that is not valid HTTP/1.1 (a malformed line or header, an empty
        Content-Length): the error in the hub's own shape and code, not uvicorn's plain text."""
        body = encode(error_envelope(ErrorCode.BAD_HTTP, f"the request is not valid HTTP/1.1: {msg}"))
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        try:
            self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
            self.transport.write(self.conn.send(h11.Data(data=body)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:   # the connection is past where a response can be sent
            pass
        self.transport.close()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.write(timeout_response(self.header_timeout_s))
            self.transport.close()
