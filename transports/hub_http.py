"""One HTTP request to the hub over a plain socket (its Unix socket when it has one): what the
agent hooks use. They run on every tool call, prompt and stop, so this module imports almost
nothing: `http.client` alone costs more than the rest of a hook. HTTP/1.1 with
`Connection: close`; the answer is read to its end (Content-Length, chunked, or EOF).
"""

from __future__ import annotations

import importlib
import socket

from transports import lean_json
from transports.discovery import HubAddress

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class HubHttpError(OSError):
    """The hub's answer is not HTTP we can read."""


def request(address: HubAddress, token: str, method: str, path: str, body: object = None, *,
            timeout: float) -> tuple[int, bytes]:
    """(status, body bytes); raises OSError (HubHttpError included) when the hub does not answer."""
    scheme, netloc, host, port, base = split_url(address.http_url)
    payload = b"" if body is None else body if isinstance(body, bytes) else lean_json.dumps(body)
    head = [f"{method} {base.rstrip('/') + path} HTTP/1.1", f"Host: {netloc}",
            f"Authorization: Bearer {token}", "Connection: close", "Accept: application/json"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    with _connect(address, scheme, host, port, timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        return _read_response(sock)


def split_url(url: str) -> tuple[str, str, str, int | None, str]:
    """(scheme, host:port, host, port, path) of the hub's base URL, e.g. http://127.0.0.1:8377
    or http://[::1]:8377/hub (urllib.parse costs a hook more to import than this)."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    host, port = netloc, None
    if netloc.startswith("["):                       # [IPv6]:port
        host, _, after = netloc[1:].partition("]")
        port = int(after[1:]) if after.startswith(":") and after[1:].isdigit() else None
    elif netloc.count(":") == 1:
        name, _, number = netloc.partition(":")
        host, port = name, int(number) if number.isdigit() else None
    return scheme.lower(), netloc, host, port, slash + path


def _connect(address: HubAddress, scheme: str, host: str, port: int | None, timeout: float) -> socket.socket:
    if address.uds:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address.uds)
        except OSError:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((host, port or (443 if scheme == "https" else 80)), timeout=timeout)
    if scheme == "https":
        # only a hub on another machine is https; its TLS module is loaded for it alone
        ssl = importlib.import_module("ssl")
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise HubHttpError("the hub closed the connection before answering")
        data += chunk
        if len(data) > MAX_HEAD and b"\r\n\r\n" not in data[:MAX_HEAD]:
            raise HubHttpError("the hub's answer has no end of headers")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HubHttpError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return int(parts[1]), _dechunk(sock, rest)
    length = headers.get("content-length")
    wanted = int(length) if length and length.isdigit() else MAX_BODY
    while len(rest) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    if length and len(rest) < wanted:
        raise HubHttpError("the hub's answer ended early")
    return int(parts[1]), rest[:wanted]


def _dechunk(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise HubHttpError("the hub's answer ended early")
            data += chunk
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return body
        while len(data) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise HubHttpError("the hub's answer ended early")
            data += chunk
        body += data[:size]
        data = data[size + 2:]
        if len(body) > MAX_BODY:
            raise HubHttpError("the hub's answer is too long")
