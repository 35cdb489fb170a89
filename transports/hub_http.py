"""One HTTP request to the hub with the standard library only, over its Unix socket when it
has one: what the agent hooks use, since they run often and must start in milliseconds."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

import orjson

from transports.discovery import HubAddress


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(address: HubAddress, token: str, method: str, path: str, body: object = None, *,
            timeout: float) -> tuple[int, bytes]:
    """(status, body bytes); raises OSError or http.client.HTTPException when the hub does not answer."""
    url = urlsplit(address.http_url)
    if address.uds:
        conn: http.client.HTTPConnection = _UnixConnection(address.uds, timeout)
    elif url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}", "Host": url.netloc}
    payload = None
    if body is not None:
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, url.path.rstrip("/") + path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
