"""One HTTP request to the hub with the standard library only, over its Unix socket when it
has one: what the agent hooks use, since they run often and must start in milliseconds."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

import orjson

from transports.discovery import HubAddress

ACT_AS_HEADER = "X-Repowire-Peer"   # with the hub token: act as this peer (name, name@circle or id)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(address: HubAddress, token: str, method: str, path: str, body: object = None, *,
            timeout: float, as_peer: str | None = None) -> tuple[int, bytes]:
    """(status, body bytes); raises OSError or http.client.HTTPException when the hub does not answer."""
    url = urlsplit(address.http_url)
    if address.uds:
        conn: http.client.HTTPConnection = _UnixConnection(address.uds, timeout)
    elif url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}", "Host": url.netloc}
    if as_peer:
        headers[ACT_AS_HEADER] = as_peer
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
