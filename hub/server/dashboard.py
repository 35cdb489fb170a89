"""The dashboard's routes: its static files, sign-in and sign-out, and its live socket.

- `GET /dashboard` and `/dashboard/{file}`: the files in `dashboard/`, as they are (no build
  step), with a strict content security policy: the page loads nothing from elsewhere and
  runs no inline script.
- `GET /dashboard/login?code=…`: the one-time link; sets an HttpOnly, SameSite=Strict cookie
  and sends the browser on to `/dashboard`, so the address that stays is the plain one.
- `POST /dashboard/links` (hub token): a new one-time link, for `repowire dashboard`.
- `GET /dashboard/session`, `POST /dashboard/logout`.
- `WS /dashboard/ws`: `subscribe` first, then the hub's events (see `schemas.dashboard`).

A signed-in browser acts as the person at the hub (the operator): the REST routes honour the
cookie when the request also carries `X-Repowire-Dashboard: 1`, a header no cross-site form
can send and no cross-origin script may send without a preflight the hub never grants.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.websockets import WebSocket

from hub import __version__
from hub.core.errors import HubError
from hub.core.ids import is_hex128
from hub.core.settings import Settings
from hub.runtime.connection import Connection
from hub.runtime.dashboard import LINK_TTL_S, SESSION_TTL_S, DashboardAccess, DashboardFeed, parse_cursor
from hub.server.responses import JSON
from hub.server.rest import bearer, caller
from hub.server.services import services
from hub.server.ws import Sink, close_with, frame_data, read_first_frame
from schemas.codec import FrameError, decode_dashboard_frame, encode, error_frame
from schemas.dashboard import SOCKET_PROTOCOL, Subscribe
from schemas.errors import ERROR_TABLE, ErrorCode
from schemas.frames import Ping, Pong
from schemas.rest import DashboardLink, DashboardSession

log = logging.getLogger(__name__)

COOKIE = "repowire_session"
KEY_HEADER = "x-repowire-dashboard"          # the page's key, on every REST call the page makes
KEY_PROTOCOL_PREFIX = "repowire.key."
FILES_DIR = Path(__file__).resolve().parents[2] / "dashboard"
FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
         "style.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin",
                "cache-control": "no-cache"}


def access_of(request: Request | WebSocket) -> DashboardAccess:
    return services(request).dashboard_access


def feed_of(websocket: WebSocket) -> DashboardFeed:
    return services(websocket).dashboard_feed


def session_secret(headers) -> str | None:
    """The dashboard session cookie's value, if the request carries one."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def page_key(scope_type: str, headers: dict[str, str]) -> str | None:
    """The key only the signed-in page holds: the `X-Repowire-Dashboard` header on REST, a
    `repowire.key.<key>` subprotocol on the socket (a browser cannot set headers there)."""
    if scope_type == "http":
        return headers.get(KEY_HEADER) or None
    for offered in headers.get("sec-websocket-protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(KEY_PROTOCOL_PREFIX):
            return offered[len(KEY_PROTOCOL_PREFIX):] or None
    return None


class SignedInBrowsers:
    """ASGI middleware: a request that carries both halves of a live dashboard session (the
    session cookie and the page's key) is marked `person_session` (read by `rest.caller`). A
    cookie alone counts for nothing: a browser sends it to every server on this host it visits,
    an agent's dev server included; the key never leaves the page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            state = scope.setdefault("state", {})
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                       if k in (b"cookie", KEY_HEADER.encode(), b"sec-websocket-protocol")}
            secret = session_secret(headers)
            key = page_key(scope["type"], headers)
            started = getattr(scope["app"].state, "services", None)   # None until the lifespan started
            if secret and key and started is not None:
                try:
                    state["person_session"] = await started.dashboard_access.is_signed_in(secret, key)
                except HubError:  # the store is down: not signed in, and the route says why
                    state["person_session"] = False
        await self.app(scope, receive, send)


# ---- pages -------------------------------------------------------------------------------------

async def _file(name: str) -> Response:
    data = await anyio.to_thread.run_sync((FILES_DIR / name).read_bytes)
    return Response(data, media_type=FILES[name], headers=PAGE_HEADERS)


async def index(request: Request) -> Response:
    return await _file("index.html")


async def static_file(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in FILES:
        raise HubError(ErrorCode.NOT_FOUND, f"the dashboard has no file {name!r}")
    return await _file(name)


async def login(request: Request) -> Response:
    code = request.query_params.get("code", "")
    try:
        secret_and_key = await access_of(request).sign_in(code)
    except HubError as exc:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        return Response(_refusal_page(exc), status_code=ERROR_TABLE[exc.code].http_status,
                        media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
    secret, key = secret_and_key
    # the key rides in the fragment: the browser keeps it for the page and sends it to no server
    question = request.query_params.get("question", "")
    opened = f"&question={question}" if is_hex128(question) else ""   # an alert's link opens its question
    response = RedirectResponse(f"/dashboard#key={key}{opened}", status_code=303,
                                headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})
    response.set_cookie(COOKIE, secret, max_age=SESSION_TTL_S, path="/", httponly=True, samesite="strict")
    return response


def _refusal_page(exc: HubError) -> bytes:
    return (b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>repowire: sign-in link</title>'
            b'<link rel="stylesheet" href="/dashboard/style.css"></head><body class="refusal"><main>'
            b"<h1>This sign-in link does not work</h1><p>" + _escape(exc.message).encode() + b"</p>"
            b"<p>A sign-in link works once, within " + str(LINK_TTL_S // 60).encode() + b" minutes. For a new one, "
            b"run this in a terminal on the hub's machine:</p><pre>repowire dashboard --open</pre>"
            b"<p><code>" + exc.code.value.encode() + b"</code></p></main></body></html>")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def new_link(request: Request) -> JSON:
    """A one-time sign-in link; only with the hub token (a signed-in browser cannot mint more)."""
    caller(request)   # no token at all: unauthorized
    if not _holds_hub_token(request):
        raise HubError(ErrorCode.FORBIDDEN, "only the hub token may make dashboard sign-in links")
    code = await access_of(request).new_link_code()
    base = services(request).hub.settings.local_url
    return JSON(DashboardLink(url=f"{base}/dashboard/login?code={quote(code)}", expires_in_s=LINK_TTL_S),
                status_code=201)


async def question_link(settings: Settings, access: DashboardAccess, question_id: str) -> str:
    """For an alert: a one-time sign-in that opens this question in the dashboard."""
    code = await access.new_link_code()
    return f"{settings.node_url}/dashboard/login?code={quote(code)}&question={question_id}"


def _holds_hub_token(request: Request) -> bool:
    return request.scope["state"].get("trusted_local", False) or services(request).hub.credentials.is_hub_token(
        bearer(request.headers))


async def session(request: Request) -> JSON:
    who = caller(request)
    hub = services(request).hub
    return JSON(DashboardSession(signed_in=True, as_=who.peer_ref, node=hub.node, version=__version__))


async def logout(request: Request) -> Response:
    secret = session_secret(request.headers)
    if secret:
        await access_of(request).sign_out(secret)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# ---- the live socket ---------------------------------------------------------------------------

async def dashboard_socket(websocket: WebSocket) -> None:
    hub = services(websocket).hub
    settings = hub.settings
    state = websocket.scope["state"]
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    await websocket.accept(subprotocol=SOCKET_PROTOCOL if SOCKET_PROTOCOL in offered else None)
    if not (state.get("person_session") or state.get("trusted_local") or hub.credentials.is_hub_token(bearer(websocket.headers))):
        await close_with(websocket, ErrorCode.UNAUTHORIZED, "sign in first: open the link `repowire dashboard` prints")
        return
    max_bytes = settings.limits.max_frame_bytes
    frame = await read_first_frame(websocket, settings.hello_timeout_s, max_bytes, decode_dashboard_frame, Subscribe,
                                   ErrorCode.SUBSCRIBE_REQUIRED)
    if frame is None:
        return
    try:
        if frame.cursor is not None:
            parse_cursor(frame.cursor)
    except HubError as exc:
        await close_with(websocket, exc.code, exc.message, exc.details, ref=frame.id,
                         close_code=ERROR_TABLE[ErrorCode.SUBSCRIBE_REQUIRED].close_code)
        return
    client = websocket.client
    conn = Connection(Sink(websocket), settings.limits.outbox_frames,
                      label=f"dashboard {client.host}:{client.port}" if client else "dashboard")
    conn.start()
    feed = feed_of(websocket)
    subscriber = None
    reading = asyncio.create_task(_read(websocket, conn, max_bytes), name=f"read {conn.label}")
    conn.on_abort = reading.cancel
    try:
        try:
            subscriber = await feed.subscribe(conn, frame.cursor, frame.backlog)
        except HubError as exc:  # the store is down: the dashboard reconnects with its cursor
            conn.abort(exc.code, exc.message)
        await asyncio.wait({reading})
    finally:
        reading.cancel()
        if subscriber is not None:
            feed.leave(subscriber)
        await conn.stop(close_grace_s=settings.heartbeat_s)


async def _read(websocket: WebSocket, conn: Connection, max_bytes: int) -> None:
    while not conn.closed:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            frame = decode_dashboard_frame(frame_data(message), max_bytes)
        except FrameError as exc:
            conn.push(error_frame(exc.code, exc.message, exc.ref, exc.details))
            continue
        if isinstance(frame, Ping):
            conn.push(encode(Pong(ref=frame.id)))
        else:
            conn.push(error_frame(ErrorCode.INVALID_FRAME, "this socket is already subscribed; to start from another "
                                  "cursor, open a new one", frame.id))
