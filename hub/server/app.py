"""The one place where objects are wired: store client, writer, Hub, routes, guard.

`build_app` returns an ASGI app whose lifespan opens the store, checks it persists, loads the
scripts, starts the writer and the Hub, and writes `hub.json` so clients can find this hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from hub.core.errors import HubError
from hub.core.ids import new_peer_id
from hub.core.nodes import LeaseHolder
from hub.core.presets import NAMES as PRESET_NAMES
from hub.core.settings import Settings
from hub.runtime.alerts import Alerts, People
from hub.runtime.asks import AskService
from hub.runtime.attachments import AttachmentService
from hub.runtime.credentials import Sender
from hub.runtime.dashboard import DashboardAccess, DashboardFeed
from hub.runtime.hub import Hub
from hub.runtime.jobs import JobService
from hub.runtime.mesh import Mesh, claim_node_name, new_lease_holder
from hub.runtime.panes import PaneService
from hub.runtime.policies import PolicyService
from hub.runtime.questions import QuestionService
from hub.runtime.schedules import ScheduleService
from hub.runtime.sessions import SessionService
from hub.server import approvals, attachments, dashboard, jobs, metrics, panes, rest, schedules, sessions
from hub.server.access import with_access
from hub.server.dashboard import question_link
from hub.server.guard import LocalGuard, default_hosts, default_origins
from hub.server.openapi import openapi_document
from hub.server.responses import JSON, error_response, hub_error_response
from hub.server.services import Services
from hub.server.ws import websocket_endpoint
from hub.store.asks import AskStore
from hub.store.attachments import AttachmentStore
from hub.store.bus import NodeBus
from hub.store.dashboard import DashboardStore
from hub.store.jobs import JobStore
from hub.store.link import StoreLink
from hub.store.questions import QuestionStore
from hub.store.schedules import ScheduleStore
from hub.store.state import StoreState
from hub.store.writer import load_scripts
from schemas.errors import ErrorCode
from schemas.local import HUB_FILE, PRESET_FILE

log = logging.getLogger(__name__)

# How long after start-up the pane routes wait for the bridge `repowire serve` started (it says
# hello a fraction of a second after the hub listens), instead of answering bridge_unavailable.
STARTED_BRIDGE_GRACE_S = 10.0

ROUTES = with_access([
    Route("/health", rest.health, methods=["GET"]),
    Route("/peers", rest.list_peers, methods=["GET"]),
    Route("/peers", rest.create_peer, methods=["POST"]),
    Route("/whoami", rest.whoami, methods=["GET"]),
    Route("/peers/{ref}", rest.get_peer, methods=["GET"]),
    Route("/peers/{ref}", rest.delete_peer, methods=["DELETE"]),
    Route("/peers/{ref}/output", panes.output, methods=["GET"]),
    Route("/peers/{ref}/keys", panes.keys, methods=["POST"]),
    Route("/peers/{ref}/doctor", panes.doctor, methods=["GET"]),
    Route("/peers/{ref}/rehook", panes.rehook, methods=["POST"]),
    Route("/peers/{ref}/unlink", panes.unlink, methods=["POST"]),
    Route("/peers/{ref}/presence", sessions.presence, methods=["POST"]),
    Route("/peers/{ref}/inbox/take", sessions.take_inbox, methods=["POST"]),
    Route("/peers/{ref}/inbox/wait", sessions.wait_inbox, methods=["POST"]),
    Route("/sessions", sessions.start, methods=["POST"]),
    Route("/panes/orphans", panes.orphans, methods=["GET"]),
    Route("/panes/{pane_id}/link", panes.link, methods=["POST"]),
    Route("/messages", rest.post_message, methods=["POST"]),
    Route("/traces/{trace_id}", rest.get_trace, methods=["GET"]),
    Route("/ask", rest.post_ask, methods=["POST"]),
    Route("/ack", rest.post_ack, methods=["POST"]),
    Route("/answer", rest.post_answer, methods=["POST"]),
    Route("/asks/pending", rest.pending_asks, methods=["GET"]),
    Route("/asks/{correlation_id}", rest.get_ask, methods=["GET"]),
    Route("/asks/{correlation_id}/wait", rest.wait_ask, methods=["POST"]),
    Route("/questions/ask-blocking", approvals.ask_blocking, methods=["POST"]),
    Route("/questions", approvals.list_questions, methods=["GET"]),
    Route("/questions/{question_id}", approvals.get_question, methods=["GET"]),
    Route("/questions/{question_id}/answer", approvals.answer_question, methods=["POST"]),
    Route("/decisions", approvals.list_decisions, methods=["GET"]),
    Route("/policies", approvals.list_policies, methods=["GET"]),
    Route("/policies", approvals.create_policy, methods=["POST"]),
    Route("/policies/evaluate", approvals.evaluate_policy, methods=["POST"]),
    Route("/policies/preset", approvals.choose_preset, methods=["PUT"]),
    Route("/policies/{policy_id}", approvals.replace_policy, methods=["PUT"]),
    Route("/policies/{policy_id}", approvals.delete_policy, methods=["DELETE"]),
    Route("/schedules", schedules.create, methods=["POST"]),
    Route("/schedules", schedules.list_schedules, methods=["GET"]),
    Route("/schedules/{schedule_id}", schedules.get, methods=["GET"]),
    Route("/schedules/{schedule_id}", schedules.delete, methods=["DELETE"]),
    Route("/schedules/{schedule_id}/pause", schedules.pause, methods=["POST"]),
    Route("/schedules/{schedule_id}/resume", schedules.resume, methods=["POST"]),
    Route("/metrics", metrics.metrics_page, methods=["GET"]),
    Route("/nodes", rest.list_nodes, methods=["GET"]),
    Route("/jobs", jobs.create, methods=["POST"]),
    Route("/jobs", jobs.list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}/status", jobs.status, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", jobs.cancel, methods=["POST"]),
    Route("/attachments", attachments.upload, methods=["POST"]),
    Route("/attachments/{attachment_id}", attachments.download, methods=["GET"]),
    Route("/internal/attachments/{attachment_id}", attachments.from_node, methods=["GET"]),
    Route("/dashboard", dashboard.index, methods=["GET"]),
    Route("/dashboard/login", dashboard.login, methods=["GET"]),
    Route("/dashboard/links", dashboard.new_link, methods=["POST"]),
    Route("/dashboard/session", dashboard.session, methods=["GET"]),
    Route("/dashboard/logout", dashboard.logout, methods=["POST"]),
    Route("/dashboard/{name}", dashboard.static_file, methods=["GET"]),
])


async def _openapi(request: Request) -> Response:
    """The OpenAPI document (generated from the schemas structs and the route table)."""
    return Response(orjson.dumps(openapi_document()), media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HTTPException)
    code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    return error_response(code, exc.detail if isinstance(exc.detail, str) else code.value)


async def _hub_error(request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HubError)
    return hub_error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(ErrorCode.INTERNAL, "an unexpected error in the hub; it was logged")


class ShutdownNotice:
    """Tells the app that the server began to shut down (from a signal handler: callbacks run
    on the event loop, scheduled thread-safely), so that long-held requests end at once."""

    def __init__(self) -> None:
        self._callbacks: list = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, callback) -> None:
        self._loop = asyncio.get_running_loop()
        self._callbacks.append(callback)

    def fire(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            for callback in self._callbacks:
                self._loop.call_soon_threadsafe(callback)


def write_hub_file(settings: Settings, pid: int) -> Path:
    path = settings.home / HUB_FILE
    info = {"url": f"http://{settings.host}:{settings.port}", "uds": str(settings.uds) if settings.uds else None,
            "pid": pid, "node": settings.node}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(info))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


async def apply_chosen_preset(home: Path, policies: PolicyService) -> None:
    """`repowire hooks install --approvals NAME` ran while no hub answered: it left the choice
    in the home folder for the next hub to apply, once."""
    path = home / PRESET_FILE
    try:
        name = (await anyio.to_thread.run_sync(path.read_text)).strip()
    except FileNotFoundError:
        return
    if name in PRESET_NAMES:
        await policies.choose_preset(Sender(None), name)
    else:
        log.warning("ignoring %s: %r is not an approval preset", path, name)
    await anyio.to_thread.run_sync(functools.partial(path.unlink, missing_ok=True))


def build_app(settings: Settings, *, hub_token: str, store: StoreLink, store_facts: dict,
              shutdown: ShutdownNotice | None = None, announce: Callable[[str], None] | None = None,
              lease_holder: LeaseHolder | None = None) -> LocalGuard:
    """`store_facts` come from `hub.store.connect.probe`, run before serving. `shutdown` is
    fired by the server when a graceful shutdown begins, before it waits for open requests.
    `announce` is handed a one-time dashboard sign-in link once the hub is ready. On a shared
    store, `lease_holder` is the node lease `serve` already claimed (claimed here when None)."""
    shutdown = shutdown or ShutdownNotice()
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # One exit stack: whatever started is stopped, in reverse order, whether the hub shuts
        # down or its start-up fails halfway (nothing is left running behind a failed start).
        async with contextlib.AsyncExitStack() as started:
            client = store.open_client()
            started.push_async_callback(client.aclose)
            listener = store.listener()   # pub/sub and the dashboard's blocking reads
            started.push_async_callback(listener.aclose)
            await load_scripts(client)
            mesh_node = settings.mesh_node
            bus = NodeBus(client, listener, mesh_node) if mesh_node else None
            holder = lease_holder or new_lease_holder()
            if bus is not None and lease_holder is None:
                await claim_node_name(bus, holder, settings.node_lease_s)
            writer = await store.open_writer()
            started.push_async_callback(writer.close)
            state = StoreState(client, writer, mesh_node)
            started.callback(state.flush_trace_events)
            epoch = await state.ensure_epoch(new_peer_id())
            hub = Hub(settings, state, hub_token=hub_token, epoch=epoch, store_facts=store_facts,
                      instance=holder.instance)
            writer.observe = hub.metrics.store_packet
            await hub.start()
            started.push_async_callback(hub.stop)
            asks = AskService(hub, state, AskStore(client), settings.asks)
            await asks.start()
            started.push_async_callback(asks.stop)
            question_store = QuestionStore(client)
            http = httpx.AsyncClient(timeout=attachments.UPSTREAM_TIMEOUT, trust_env=False)
            started.push_async_callback(http.aclose)
            dashboard_store = DashboardStore(client, listener.client, mesh_node)
            access = DashboardAccess(dashboard_store, hub.now_ms)
            feed = DashboardFeed(dashboard_store)
            started.push_async_callback(feed.stop)
            if not mesh_node:   # alone on its store: only this hub's dashboards read the events
                state.events_watched = lambda: bool(feed.subscribers)
            alerts = Alerts(settings.alerts, http, lambda qid: question_link(settings, access, qid))
            started.push_async_callback(alerts.stop)
            people = People(hub, writer, question_store, lambda: len(feed.subscribers), alerts,
                            bus.live_nodes if bus is not None else None)
            feed.on_watchers_changed = people.changed
            policies = PolicyService(hub, state, question_store, settings.questions.max_policies)
            questions = QuestionService(hub, state, question_store, policies, settings.questions, people)
            await apply_chosen_preset(settings.home, policies)
            await questions.start()
            started.callback(questions.stop)
            shutdown.subscribe(questions.stop)
            pane_service = PaneService(hub, state, link_timeout_s=settings.link_timeout_s,
                                       started_bridge_grace_s=STARTED_BRIDGE_GRACE_S if settings.starts_bridge else 0.0)
            started.push_async_callback(pane_service.stop)
            schedule_service = ScheduleService(hub, state, asks, ScheduleStore(client), settings.schedules, listener)
            schedule_service.start()
            started.push_async_callback(schedule_service.stop)
            job_service = JobService(hub, state, asks, JobStore(client), settings.jobs, listener)
            job_service.start()
            started.push_async_callback(job_service.stop)
            attachment_service = AttachmentService(hub, AttachmentStore(client, settings.node), settings.attachments,
                                                   settings.home / "attachments" / settings.node, url=settings.node_url)
            await attachment_service.start()
            started.push_async_callback(attachment_service.stop)
            if bus is not None:
                mesh = Mesh(hub, state, asks, questions, access, bus, holder, settings.node_lease_s)
                mesh.start()
                started.push_async_callback(mesh.stop)
            app.state.services = Services(
                hub=hub, asks=asks, questions=questions, policies=policies, panes=pane_service,
                sessions=SessionService(hub, pane_service, questions, policies), schedules=schedule_service,
                jobs=job_service, attachments=attachment_service, dashboard_access=access, dashboard_feed=feed, http=http)
            hub_file = write_hub_file(settings, os.getpid())
            started.callback(hub_file.unlink, missing_ok=True)
            if announce is not None:
                announce(f"{settings.local_url}/dashboard/login?code={await access.new_link_code()}")
            # What start-up made (modules, settings, services) lives as long as the process: out
            # of the collector's generations, no full collection walks it again.
            gc.freeze()
            log.info("hub %s ready on http://%s:%s", settings.node, settings.host, settings.port)
            yield

    app = Starlette(
        routes=[*ROUTES, Route("/openapi.json", _openapi, methods=["GET"]),
                WebSocketRoute("/ws", websocket_endpoint),
                WebSocketRoute("/dashboard/ws", dashboard.dashboard_socket)],
        middleware=[Middleware(dashboard.SignedInBrowsers)],
        exception_handlers={HTTPException: _http_error, HubError: _hub_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    hosts = settings.allowed_hosts or default_hosts(settings.host, settings.port)
    if settings.advertise_url:  # the name the other nodes of a mesh use for this one
        hosts = (*hosts, urlsplit(settings.advertise_url).netloc)
    origins = settings.allowed_origins or default_origins(settings.host, settings.port)
    return LocalGuard(PeerSocketsFirst(app), allowed_hosts=hosts, allowed_origins=origins)


class PeerSocketsFirst:
    """`/ws` straight to its endpoint, everything else to the Starlette app (its route is listed
    there too, for the route table). A peer's socket lives as long as the peer: each layer it
    passes keeps a suspended frame for that long, and Starlette's middleware, router and
    exception wrappers are ten of them (3.5 KB a connection; bench/RESULTS.md)."""

    def __init__(self, app: Starlette):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            scope["app"] = self.app
            await websocket_endpoint(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)
