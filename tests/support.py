"""Test helpers: a real hub in a subprocess, bounded waits, raw WebSocket and REST helpers.

Every hub runs `repowire serve --port 0` on 127.0.0.1 with its own $REPOWIRE_HOME, so it
starts its own embedded store; it is stopped by its pid at the end of the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import redis.asyncio as redis
from redis import Redis
from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import ClientConnection, connect

from hub.store.embedded import find_server_binary
from transports.client import HubClient
from transports.discovery import HubAddress

START_TIMEOUT_S = 30


def process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               every: float = 0.02) -> Any:
    """Poll `condition` every `every` seconds until it is truthy; fail after `timeout` seconds
    (a costly condition, such as one that asks six servers, polls less often)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


async def eventually(condition: Callable[[], Awaitable[Any] | Any], timeout: float = 10.0,
                     what: str = "condition") -> Any:
    """Poll `condition` (plain or async) until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def paced(count: int, rate: float):
    """Yield 0 .. count-1, each no earlier than its due time at `rate` a second: how load tests
    pace what they send (a schedule to keep, not a wait for something to happen)."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


@dataclass
class StoreProcess:
    """A Valkey server of the test's own (append-only on, Unix socket, no TCP), that a test may
    kill with SIGKILL and start again on the same files."""
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.folder / "store.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> StoreProcess:
        if self.socket.exists():
            self.socket.unlink()
        self.process = subprocess.Popen(
            [find_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--appendonly", "yes",
             "--save", "", "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.socket.exists, 10, "the store's socket")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class HubProcess:
    home: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    url: str = ""
    uds: str | None = None
    log_path: Path | None = None

    def start(self, expect_ready: bool = True) -> HubProcess:
        hub_file = self.home / "hub.json"
        if hub_file.exists():
            hub_file.unlink()
        self.log_path = self.home.parent / f"{self.home.name}-hub.log"
        env = {**os.environ, "REPOWIRE_HOME": str(self.home), **self.env}
        env.pop("REPOWIRE_URL", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli.main", "serve", "--port", "0", *self.args,
                 *([] if "--tmux-socket" in self.args else ["--no-bridge"])],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not expect_ready:
            return self
        wait_until(lambda: hub_file.exists() or self.process.poll() is not None, START_TIMEOUT_S, "hub.json")
        if self.process.poll() is not None:
            raise AssertionError(f"hub exited with {self.process.returncode}:\n{self.log()}")
        info = orjson.loads(hub_file.read_bytes())
        self.url, self.uds = info["url"], info["uds"]
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def token(self) -> str:
        return (self.home / "hub.token").read_text().strip()

    @property
    def address(self) -> HubAddress:
        return HubAddress(self.url)

    @property
    def ws_url(self) -> str:
        return self.address.ws_url

    def store_pid(self) -> int | None:
        try:
            return int((self.home / "store" / "valkey.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL, as a crash would; waits until the process is gone."""
        if self.process and self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(5)
        return self.process.returncode

    def restart(self) -> HubProcess:
        store_pid = self.store_pid()
        if store_pid:
            wait_until(lambda: process_gone(store_pid), 10, "the old store to exit")
        return self.start()

    # ---- REST ----

    def http(self, token: str | None = "hub") -> httpx.Client:
        headers = {}
        if token == "hub":
            headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def get(self, path: str, token: str | None = "hub", **kw) -> httpx.Response:
        with self.http(token) as client:
            return client.get(path, **kw)

    def post(self, path: str, body: Any = None, token: str | None = "hub", **kw) -> httpx.Response:
        with self.http(token) as client:
            return client.post(path, json=body, **kw)

    def peers(self) -> dict[str, dict]:
        return {p["name"]: p for p in self.get("/peers").json()["peers"]}

    # ---- WebSocket ----

    def client(self, name: str, **kw) -> HubClient:
        kw.setdefault("hub_token", self.token)
        return HubClient(name, address=self.address, **kw)

    async def raw(self, hub_token: bool = True, rcvbuf: int | None = None, **kw) -> ClientConnection:
        """A bare websockets connection. `rcvbuf` pins a small kernel receive buffer (no
        autotuning) so that a peer that stops reading pushes back on the hub quickly."""
        headers = {"Authorization": f"Bearer {self.token}"} if hub_token else {}
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            host, port = self.url.removeprefix("http://").rsplit(":", 1)
            sock.connect((host, int(port)))
            sock.setblocking(False)
            kw["sock"] = sock
        return await connect(self.ws_url, additional_headers=headers, ping_interval=None, **kw)

    async def raw_peer(self, name: str, circle: str = "default", rcvbuf: int | None = None,
                       max_queue: int | None = 16, **hello) -> tuple[ClientConnection, dict]:
        ws = await self.raw(rcvbuf=rcvbuf, max_queue=max_queue)
        await send(ws, {"type": "hello", "name": name, "circle": circle, **hello})
        welcome = await recv(ws)
        assert welcome["type"] == "welcome", welcome
        return ws, welcome


async def send(ws: ClientConnection, frame: dict | str | bytes) -> None:
    await ws.send(frame if isinstance(frame, (str, bytes)) else orjson.dumps(frame).decode())


async def recv(ws: ClientConnection, timeout: float = 10) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, frame_type: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        frame = await recv(ws, max(0.01, deadline - time.monotonic()))
        if frame["type"] == frame_type:
            return frame


# ---- tmux panes ----

RECORDER = Path(__file__).with_name("pane_recorder.py")


def recorder_command(record: Path, *options: str) -> str:
    """A pane command that records every byte it receives to `record` (see pane_recorder.py)."""
    return " ".join(shlex.quote(part) for part in (sys.executable, str(RECORDER), str(record), *options))


def screen(tmux, pane_id: str) -> str:
    return "\n".join(tmux.cmd("capture-pane", "-p", "-t", pane_id).stdout)


def start_recorder(tmux, record: Path, session: str = "agents", command: str | None = None):
    """A new tmux session whose pane runs the recorder; returns the pane once it is ready."""
    record.touch()
    created = tmux.new_session(session_name=session, window_command=command or recorder_command(record), detach=True,
                               x=200, y=50)
    pane = created.active_window.active_pane
    wait_until(lambda: "recorder ready" in screen(tmux, pane.pane_id), 10, "the recorder to start")
    return pane


def link_path(pane_id: str) -> str:
    return "/panes/%25" + pane_id.removeprefix("%") + "/link"


def repowire(hub: HubProcess, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the `repowire` command line against `hub` (found through its $REPOWIRE_HOME)."""
    full_env = {**os.environ, "REPOWIRE_HOME": str(hub.home), **(env or {})}
    full_env.pop("REPOWIRE_URL", None)
    return subprocess.run([sys.executable, "-m", "hub.cli.main", *args], env=full_env, capture_output=True,
                          text=True, timeout=60)


@contextlib.contextmanager
def person_watching(hub: HubProcess, log: Path | None = None) -> Iterator[Path]:
    """A person runs `repowire questions --follow` in a terminal for the length of the block:
    questions wait for an answer instead of taking the hub's fallback. Yields its output file."""
    out = log or hub.home / f"follow-{time.monotonic_ns()}.log"
    env = {**os.environ, "REPOWIRE_HOME": str(hub.home)}
    env.pop("REPOWIRE_URL", None)
    env.pop("REPOWIRE_TOKEN", None)
    with open(out, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "hub.cli.main", "questions", "--follow"], env=env,
                                   stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: b"watching for questions" in out.read_bytes() or process.poll() is not None, 20,
                   "`repowire questions --follow` to watch")
        assert process.poll() is None, out.read_text()
        yield out
    finally:
        process.kill()
        process.wait(10)


def store_client(url: str) -> redis.Redis | RedisCluster:
    """A client for the store at `url` as the hub would open it: a cluster client when the
    server there is part of a cluster."""
    probe = Redis.from_url(url)
    try:
        mode = probe.info("server").get("server_mode")
    finally:
        probe.close()
    return RedisCluster.from_url(url) if mode == "cluster" else redis.Redis.from_url(url)


async def bring_forward(store_url: str, template_id: str) -> int:
    """Make the recurring job's next occurrence due now (as if its minute had come), and wake
    the hubs: the store's due index and the template's next fire time, as the hub writes them."""
    client = redis.Redis.from_url(store_url)
    try:
        tag = template_id.removeprefix("cal-")
        key = f"rw:job:{{{tag}}}:{template_id}"
        due = int(time.time() * 1000) - 1
        assert await client.hget(key, "state") == b"active"
        await client.hset(key, "next_fire_at", due)
        await client.zadd("rw:jobs:due", {template_id: due})
        await client.publish("rw:jobs:changed", template_id)
        return due
    finally:
        await client.aclose()


def fire_of(template_id: str, due: int) -> str:
    """The id of the work item a recurring job's occurrence `due` makes (hub.core.jobs)."""
    return f"{template_id.removeprefix('cal-')}.{due}"


async def fire_now(hub: HubProcess, store_url: str, template_id: str, timeout: float = 120) -> dict:
    """Bring a recurring job's next occurrence forward and return its work item once it ended."""
    work_id = fire_of(template_id, await bring_forward(store_url, template_id))

    def ended() -> dict | None:
        response = hub.get(f"/jobs/{work_id}/status")
        job = response.json() if response.status_code == 200 else None
        return job if job is not None and job["state"] not in ("queued", "running") else None
    return await eventually(lambda: asyncio.to_thread(ended), timeout, f"the fire {work_id} to end")


class Gate:
    """Where executor scripts wait until the test lets them through: the test holds an exclusive
    lock on a file, and `waits` (one Python statement) takes a shared lock on it, which blocks
    until the test opens the gate, or ends (what waits never outlives the test)."""

    def __init__(self, folder: Path):
        self.path = folder / "gate.lock"
        self.path.touch()
        self._held = open(self.path, "r+")   # noqa: SIM115 (held until open() or close())
        fcntl.flock(self._held, fcntl.LOCK_EX)

    @property
    def waits(self) -> str:
        return f"__import__('fcntl').flock(open({str(self.path)!r}), __import__('fcntl').LOCK_SH)"

    def open(self) -> None:
        fcntl.flock(self._held, fcntl.LOCK_UN)

    def close(self) -> None:
        self._held.close()
