"""Local means local: Host and Origin allow-lists in front of every route and the upgrade.

A browser page on another site can open `ws://127.0.0.1:PORT` (cross-site WebSocket hijacking)
or reach the hub under a name that resolves to 127.0.0.1 (DNS rebinding). Both are refused
here, before any route runs and before a WebSocket is accepted. The Unix socket is trusted by
its file permissions; no browser can reach it.
"""

from __future__ import annotations

from schemas.codec import encode
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.rest import error_envelope


def default_hosts(host: str, port: int) -> tuple[str, ...]:
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    return tuple(sorted({f"{n}:{port}" for n in names} | ({n for n in names} if port == 80 else set())))


def default_origins(host: str, port: int) -> tuple[str, ...]:
    return tuple(f"http://{h}" for h in default_hosts(host, port))


class LocalGuard:
    def __init__(self, app, *, allowed_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]):
        self.app = app
        self.hosts = frozenset(h.lower() for h in allowed_hosts)
        self.origins = frozenset(o.lower() for o in allowed_origins)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        server = scope.get("server")
        trusted_local = bool(server) and server[1] is None
        state = scope.setdefault("state", {})
        state["trusted_local"] = trusted_local
        if not trusted_local:
            refusal = self._refusal(scope)
            if refusal is not None:
                return await _refuse(scope, receive, send, *refusal)
        return await self.app(scope, receive, send)

    def _refusal(self, scope) -> tuple[ErrorCode, str] | None:
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1").lower()
            elif name == b"origin":
                origin = value.decode("latin-1").lower()
        if host not in self.hosts:
            return ErrorCode.HOST_NOT_ALLOWED, f"Host {host!r} is not allowed; this hub answers only to local names"
        # Non-browser clients send no Origin. Browsers always do on an upgrade and on
        # cross-site requests; "null" (sandboxed frames, file://) is never allowed.
        if origin is not None and origin not in self.origins:
            return ErrorCode.ORIGIN_NOT_ALLOWED, f"Origin {origin!r} is not allowed"
        return None


async def _refuse(scope, receive, send, code: ErrorCode, message: str) -> None:
    body = encode(error_envelope(code, message))
    status = ERROR_TABLE[code].http_status
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    # WebSocket: answer the upgrade request with a plain HTTP refusal (ASGI denial response).
    await receive()  # websocket.connect
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
