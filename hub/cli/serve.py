"""`repowire serve`: prepare $REPOWIRE_HOME, start the store, bind, and run uvicorn.

Sockets are bound before the app is built so that `--port 0` works and the allow-lists name
the real port. The embedded store is started from the main thread (the kernel ties its life
to the thread that forked it) and stopped after uvicorn's graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import stat
import sys
from dataclasses import replace
from pathlib import Path
from typing import cast

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from hub.cli import logs
from hub.cli.bridge_process import BridgeSupervisor
from hub.core.approvals import QuestionPolicy
from hub.core.asks import AskPolicy
from hub.core.attachments import AttachmentPolicy
from hub.core.errors import HubError
from hub.core.ids import new_token
from hub.core.jobs import JobPolicy
from hub.core.nodes import LeaseHolder
from hub.core.schedules import SchedulePolicy
from hub.core.settings import AlertSettings, Settings, parse_limits
from hub.runtime.dashboard import LINK_TTL_S
from hub.runtime.mesh import NodeNameTaken, claim_node_name, new_lease_holder
from hub.server.app import ShutdownNotice, build_app
from hub.server.http_protocol import HubHttpProtocol
from hub.server.keepalive import KeepaliveWheel
from hub.server.ws_protocol import HubWebSocketProtocol
from hub.store.bus import NodeBus
from hub.store.connect import PersistenceOff, StoreUnreachable, TooFewReplicas, probe
from hub.store.embedded import EmbeddedStore, StoreBinaryMissing
from hub.store.link import StoreLink
from schemas.local import ALERT_SECRET_ENV, ALERT_SECRET_FILE, NTFY_TOKEN_ENV, TOKEN_FILE, home_folder
from schemas.names import NAME

log = logging.getLogger(__name__)


def prepare_home(home: Path) -> str:
    """Create the 0700 home and the 0600 hub token file; return the hub token."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    token_path = home / TOKEN_FILE
    if not token_path.exists():
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_token() + "\n")
    if stat.S_IMODE(token_path.stat().st_mode) != 0o600:
        os.chmod(token_path, 0o600)
    return token_path.read_text().strip()


BACKLOG = 2048   # uvicorn's default


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # asyncio does not set TCP_NODELAY on connections accepted from a socket handed to it, and
    # Nagle's algorithm meeting delayed ACKs costs 40 ms per small frame. Accepted sockets
    # inherit the option from the listener on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    # Listen at once: hub.json is written during the app's start-up, before uvicorn would call
    # listen(), and a client that read it in between was refused. Connections now wait in the
    # backlog until the server accepts them.
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def bind_uds(path: Path) -> socket.socket:
    """Listen on a Unix socket only this user may connect to (mode 0600). A folder made for it
    is 0700; a folder that was already there is left exactly as it was. A stale socket is
    replaced; any other file at `path` is refused, never removed."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        os.chmod(path.parent, 0o700)   # mkdir's mode is masked by the umask
    if path.is_socket():
        path.unlink()
    elif path.exists() or path.is_symlink():
        raise FileExistsError(errno.EEXIST, "something other than a socket is there", str(path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    return sock


class _HubServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which would kill the hub
    before it stops its store. We keep the graceful shutdown and then return normally. The
    app hears of the shutdown as it begins, so that held requests (tool-permission questions)
    are answered `deny` at once instead of holding the shutdown up."""

    def __init__(self, config: uvicorn.Config, shutdown: ShutdownNotice):
        super().__init__(config)
        self._shutdown = shutdown
        self.ready: asyncio.Event | None = None

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.ready is not None and self.started:
            self.ready.set()

    async def serve_with(self, sockets: list[socket.socket], bridge: BridgeSupervisor | None) -> None:
        """Serve; with a bridge supervisor, run the pane bridge beside the hub once it listens."""
        if bridge is None:
            await self.serve(sockets=sockets)
            return
        self.ready = asyncio.Event()
        supervising = asyncio.create_task(bridge.run(self.ready), name="pane bridge")
        try:
            await self.serve(sockets=sockets)
        finally:
            supervising.cancel()
            await bridge.stop()

    def handle_exit(self, sig, frame) -> None:
        self._shutdown.fire()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def serve(settings: Settings, log_level: str = "warning", *, bridge: bool = True,
          tmux_socket: str | None = None, json_logs: bool = False) -> int:
    hub_token = prepare_home(settings.home)
    try:
        tcp = bind_tcp(settings.host, settings.port)
    except OSError as exc:
        print(f"repowire: cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
              f"Is another hub running? Choose another port with --port.", file=sys.stderr)
        return 2
    sockets = [tcp]
    actual_port = tcp.getsockname()[1]

    settings = replace(settings, port=actual_port, starts_bridge=bridge)
    if settings.uds is not None:
        try:
            sockets.append(bind_uds(settings.uds))
        except OSError as exc:
            print(f"repowire: cannot listen on --uds {settings.uds}: {exc.strerror}. Choose another path.",
                  file=sys.stderr)
            return 2
    store: EmbeddedStore | None = None
    store_url = settings.redis_url
    if store_url is None:
        store = EmbeddedStore(settings.home)
        try:
            store.start()
        except (StoreBinaryMissing, RuntimeError) as exc:
            print(f"repowire: {exc}", file=sys.stderr)
            return 2
        store_url = store.url
    holder = new_lease_holder()
    try:
        facts = asyncio.run(probe(store_url, ephemeral=settings.ephemeral, replica_acks=settings.replica_acks))
        link = StoreLink(store_url, cluster=facts["cluster"], replica_acks=settings.replica_acks)
        if settings.mesh_node:
            asyncio.run(claim_node(link, settings, holder))
    except (PersistenceOff, StoreUnreachable, TooFewReplicas, NodeNameTaken, HubError) as exc:
        print(f"repowire: {getattr(exc, 'message', exc)}", file=sys.stderr)
        if store is not None:
            store.stop()
        return 2
    if store is not None:
        store.keep_alive()   # from here on, a store that dies is started again (see hub.store.embedded)
    shutdown = ShutdownNotice()
    app = build_app(settings, hub_token=hub_token, store=link,
                    store_facts={**facts, "embedded": store is not None, "replica_acks": settings.replica_acks}, shutdown=shutdown, announce=announce_ready,
                    lease_holder=holder)
    config = uvicorn_config(app, settings, log_level, json_logs=json_logs)
    server = _HubServer(config, shutdown)
    supervisor = BridgeSupervisor(str(settings.home), settings.local_url, hub_token, tmux_socket,
                                  log_level) if bridge else None
    try:
        asyncio.run(server.serve_with(sockets, supervisor))
    finally:
        if store is not None:
            store.stop()
        if settings.uds is not None and settings.uds.exists():
            settings.uds.unlink()
    if not server.started:
        print("repowire: the hub did not start; see the messages above", file=sys.stderr)
        return 1
    return 0


async def claim_node(link: StoreLink, settings: Settings, holder: LeaseHolder) -> None:
    """Take this node's name on the shared store before serving (see hub.runtime.mesh)."""
    client, listener = link.open_client(), link.listener()
    try:
        await claim_node_name(NodeBus(client, listener, settings.node), holder, settings.node_lease_s)
    finally:
        await client.aclose()
        await listener.aclose()


def uvicorn_config(app, settings: Settings, log_level: str, *, json_logs: bool = False) -> uvicorn.Config:
    """The HTTP and WebSocket stack the hub serves on (the Autobahn test runs on the same)."""
    # uvicorn calls `http` as it would a protocol class; a partial binds the header timeout
    http = cast("type[asyncio.Protocol]", functools.partial(HubHttpProtocol,
                                                          header_timeout_s=float(settings.limits.header_timeout_s)))
    # one keepalive wheel for every connection of this server (hub.server.keepalive)
    ws = cast("type[asyncio.Protocol]", functools.partial(HubWebSocketProtocol,
                                                        keepalive=KeepaliveWheel(settings.heartbeat_s)))
    return uvicorn.Config(app, ws=ws, http=http, lifespan="on", log_level=log_level,
                          ws_ping_interval=settings.heartbeat_s, ws_ping_timeout=settings.heartbeat_s,
                          ws_max_size=settings.limits.transport_max_frame_bytes,
                          # Loopback and LAN peers: compression would only cost CPU per message.
                          ws_per_message_deflate=False,
                          timeout_graceful_shutdown=5, access_log=False, server_header=False,
                          # JSON lines: uvicorn's loggers keep no handlers of their own and go through the root's
                          log_config=None if json_logs else LOGGING_CONFIG)


def announce_ready(sign_in_link: str) -> None:
    """What `serve` prints once the hub answers: the dashboard's one-time sign-in link."""
    print(f"repowire: dashboard sign-in link (opens once, within {LINK_TTL_S // 60} minutes; "
          f"`repowire dashboard` prints another):\n  {sign_in_link}", flush=True)


def check_node_name(node: str) -> None:
    """A node's name names its folder of attachment files: letters, digits, '.', '_', '-'."""
    if not NAME.fullmatch(node):
        raise ValueError(f"--node takes letters, digits, '.', '_' and '-' (up to 64, starting with a letter or "
                         f"digit), not {node!r}")


def check_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} takes a number above 0, not {value:g}")


def alert_secret(home: Path) -> bytes:
    """The webhook's signing secret: $REPOWIRE_ALERT_SECRET, else `alert-secret` in the home
    folder, made (0600) the first time a webhook is set."""
    given = os.environ.get(ALERT_SECRET_ENV)
    if given:
        return given.encode()
    path = home / ALERT_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = new_token().encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(secret + b"\n")
    print(f"repowire serve: webhook alerts are signed with a new secret in {path}; give your receiver a copy",
          file=sys.stderr)
    return secret


def alert_settings(args, home: Path) -> AlertSettings:
    return AlertSettings(webhook_url=args.alert_webhook,
                         webhook_secret=alert_secret(home) if args.alert_webhook else b"",
                         ntfy_url=args.alert_ntfy, ntfy_token=os.environ.get(NTFY_TOKEN_ENV) or None,
                         desktop=args.alert_desktop)


def serve_command(args) -> int:
    """`repowire serve`: the settings from the command line, then `serve`."""
    logs.configure(args.log_level, args.log_format, args.node)
    try:
        limits = parse_limits(args.limit)
        check_node_name(args.node)
        if args.replica_acks < 0 or (args.replica_acks and not args.redis_url):
            raise ValueError("--replica-acks needs --redis-url and a number of replicas (0 or more): "
                             "the embedded store has no replicas")
        check_positive(node_lease=args.node_lease)
        check_positive(attachment_max_bytes=args.attachment_max_bytes, attachment_peer_quota=args.attachment_peer_quota,
                       attachment_hub_quota=args.attachment_hub_quota, attachment_ttl=args.attachment_ttl,
                       attachment_sweep=args.attachment_sweep)
    except ValueError as exc:
        print(f"repowire serve: {exc}", file=sys.stderr)
        return 2
    home = Path(home_folder(args.home))
    settings = Settings(home=home, limits=limits, host=args.host, port=args.port, uds=args.uds,
                        redis_url=args.redis_url, ephemeral=args.ephemeral, replica_acks=args.replica_acks,
                        node=args.node,
                        node_lease_s=args.node_lease,
                        heartbeat_s=args.heartbeat, queue_ttl_s=args.queue_ttl,
                        trace_retention_s=args.trace_retention, sweep_interval_s=args.sweep_interval,
                        asks=AskPolicy(default_timeout_s=args.ask_timeout, max_timeout_s=args.ask_timeout_max,
                                       reply_ttl_s=args.reply_ttl, max_fanout=args.ask_fanout),
                        questions=QuestionPolicy(max_timeout_s=args.question_timeout_max,
                                                 margin_s=args.question_margin, max_policies=args.max_policies,
                                                 fallback=args.fallback),
                        alerts=alert_settings(args, home),
                        schedules=SchedulePolicy(max_per_peer=args.max_schedules, grace_s=args.schedule_grace,
                                                 claim_lease_s=args.schedule_lease),
                        jobs=JobPolicy(max_per_peer=args.max_jobs, max_running_per_node=args.max_executors,
                                       max_output_bytes=args.job_output_max, default_timeout_s=args.job_timeout,
                                       lease_s=args.job_lease, env_names=tuple(args.job_env),
                                       retention_s=args.job_retention),
                        attachments=AttachmentPolicy(max_file_bytes=args.attachment_max_bytes,
                                                     max_peer_bytes=args.attachment_peer_quota,
                                                     max_hub_bytes=args.attachment_hub_quota,
                                                     ttl_s=args.attachment_ttl,
                                                     sweep_interval_s=args.attachment_sweep),
                        advertise_url=args.advertise_url, link_timeout_s=args.link_timeout)
    return serve(settings, args.log_level, bridge=not args.no_bridge, tmux_socket=args.tmux_socket,
                 json_logs=args.log_format == "json")
