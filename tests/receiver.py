"""A local HTTP receiver for alerts: a real server on 127.0.0.1 (port 0) that records every
request it gets (method, path, headers, body, when) and answers 200, or the status it is set to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float   # time.time() when it arrived


class Receiver:
    """`hold`: every request waits for this event before it is recorded and answered (a slow
    receiver); `arrived` counts the requests as they come in, held or not."""

    def __init__(self, status: int = 200, hold: threading.Event | None = None):
        self.status = status
        self.hold = hold
        self.arrived: list[str] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.arrived.append(self.path)
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                with receiver._lock:
                    receiver.received.append(Received(self.command, self.path, {k.lower(): v for k, v in
                                                                                self.headers.items()}, body, time.time()))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def got(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]
